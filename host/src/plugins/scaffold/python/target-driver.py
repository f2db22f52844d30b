"""{{name}}: an Ashlar target driver, in Python, exporting the local device a paired
volume driver provides over a protocol (Cinder's target helpers).

The four methods below are what every target driver must answer; until they are written
they answer "not supported". The guide, section by section, is docs/driver-guide.md
in Ashlar's source.
"""

from ashlar_sdk import TargetDriver, config, log, not_supported, target_exports


def not_written(method: str):
    """What a stub answers until it is written."""
    return not_supported(
        f'{{name}} does not implement {method} yet (docs/driver-guide.md, "{method}")'
    )


class {{type}}(TargetDriver):
    def __init__(self):
        self.example_setting = None

    def do_setup(self):
        """Read settings (config.get, config.require) and prepare the target."""
        self.example_setting = config.get("example_setting")
        log.info(f"{{name}} is set up (example_setting: {self.example_setting!r})")

    def create_export(self, volume, device_path):
        """Required: export ``device_path`` for the volume; answer what to record with
        ``model_update(...)`` (docs/driver-guide.md, "create-export")."""
        raise not_written("create-export")

    def remove_export(self, volume):
        """Required: remove the export; one already gone is removed
        (docs/driver-guide.md, "remove-export")."""
        raise not_written("remove-export")

    def initialize_connection(self, volume, connector):
        """Required: the connection info a host uses to reach the export
        (docs/driver-guide.md, "initialize-connection")."""
        raise not_written("initialize-connection")

    def terminate_connection(self, volume, connector):
        """Required: forget that host (docs/driver-guide.md, "terminate-connection")."""
        raise not_written("terminate-connection")


TargetDriverCore = target_exports({{type}})
