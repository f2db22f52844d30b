"""{{name}}: an Ashlar backup driver, in Python: the object side of a chunked backup. The
host cuts volumes into chunks, compresses and hashes them; this driver only moves named
objects in and out of containers of its store.

The methods below are what every backup driver must answer; until they are written they
answer "not supported". The guide, section by section, is docs/driver-guide.md in
Ashlar's source.
"""

from ashlar_sdk import BackupDriver, backup_exports, config, log, not_supported


def not_written(method: str):
    """What a stub answers until it is written."""
    return not_supported(
        f'{{name}} does not implement {method} yet (docs/driver-guide.md, "{method}")'
    )


class {{type}}(BackupDriver):
    def __init__(self):
        self.example_setting = None

    def do_setup(self):
        """Read settings (config.get, config.require) and prepare the store."""
        self.example_setting = config.get("example_setting")
        log.info(f"{{name}} is set up (example_setting: {self.example_setting!r})")

    def put_container(self, container):
        """Required: create the container if missing
        (docs/driver-guide.md, "put-container")."""
        raise not_written("put-container")

    def put_object(self, container, name, data):
        """Required: store ``data`` as ``name``, durable when it returns
        (docs/driver-guide.md, "put-object")."""
        raise not_written("put-object")

    def get_object(self, container, name):
        """Required: the whole object, not-found when missing
        (docs/driver-guide.md, "get-object")."""
        raise not_written("get-object")

    def delete_object(self, container, name):
        """Required: remove it; a missing one is removed
        (docs/driver-guide.md, "delete-object")."""
        raise not_written("delete-object")

    def list_objects(self, container, prefix, marker, limit):
        """Required: up to ``limit`` objects named ``prefix…`` after ``marker``, in byte
        order, each ``object_info(name, size)`` (docs/driver-guide.md, "list-objects")."""
        raise not_written("list-objects")


BackupDriverCore = backup_exports({{type}})
