"""{{name}}: an Ashlar volume driver, in Python.

The four methods below are what every volume driver must answer; until they are written
they answer "not supported". Every optional feature (extend, snapshots, clones, revert,
manage, retype, …) answers "not supported" too until you override it: see
``ashlar_sdk.VolumeDriver`` for the full list. The guide, section by section, is
docs/driver-guide.md in Ashlar's source.
"""

from ashlar_sdk import VolumeDriver, config, log, not_supported, volume_exports


def not_written(method: str):
    """What a stub answers until it is written."""
    return not_supported(
        f'{{name}} does not implement {method} yet (docs/driver-guide.md, "{method}")'
    )


class {{type}}(VolumeDriver):
    def __init__(self):
        self.example_setting = None

    def do_setup(self):
        """Read settings (config.get, config.require) and prepare the backend."""
        self.example_setting = config.get("example_setting")
        log.info(f"{{name}} is set up (example_setting: {self.example_setting!r})")

    def get_volume_stats(self, refresh):
        """Required: capacity and capabilities of each pool, in Cinder's stats keys
        (``volume_stats`` and ``pool_stats``; docs/driver-guide.md, "get-volume-stats")."""
        raise not_written("get-volume-stats")

    def create_volume(self, volume):
        """Required: make the volume's storage; answer where it lives with
        ``model_update(location=...)`` (docs/driver-guide.md, "create-volume")."""
        raise not_written("create-volume")

    def delete_volume(self, volume):
        """Required: remove it; a volume already gone is deleted
        (docs/driver-guide.md, "delete-volume")."""
        raise not_written("delete-volume")

    def initialize_connection(self, volume, connector):
        """Required: how a host reaches the volume, ``connection_info(kind, {...})``;
        asked with ``wants_local(connector)``, the volume's local device for a target
        driver (docs/driver-guide.md, "initialize-connection")."""
        raise not_written("initialize-connection")


VolumeDriverCore, VolumeDriverExtras, VolumeDriverHealth = volume_exports({{type}})
