"""Volume drivers (Cinder's ``cinder/interface/volume_driver.py``)."""

from .errors import guarded, message_of, unsupported
from .model import CONTRACT_0_3, health_report, model_update, retype_migrate

from componentize_py_types import Err


class VolumeDriver:
    """A Cinder volume driver. One object lives per component instance, made on the first
    call into it; the host never calls an instance from two threads at once.

    Required: :meth:`get_volume_stats`, :meth:`create_volume`, :meth:`delete_volume`,
    :meth:`initialize_connection`. Everything else answers "not supported" (or, for the
    export steps most drivers do not need, does nothing) until overridden. Methods raise
    a driver error (``raise not_found(...)``) to fail.
    """

    def do_setup(self) -> None:
        """Reads config, prepares the backend; called once per instance first."""

    def check_for_setup_error(self) -> None:
        """Raises, with a message an operator can act on, when the backend is unusable."""

    def get_volume_stats(self, refresh: bool):
        raise unsupported("reporting volume stats")

    def create_volume(self, volume):
        raise unsupported("creating volumes")

    def delete_volume(self, volume) -> None:
        raise unsupported("deleting volumes")

    def extend_volume(self, volume, new_size_gib: int) -> None:
        raise unsupported("extending volumes")

    def create_snapshot(self, snapshot, volume):
        raise unsupported("snapshots")

    def delete_snapshot(self, snapshot, volume) -> None:
        raise unsupported("snapshots")

    def create_volume_from_snapshot(self, volume, snapshot):
        raise unsupported("creating a volume from a snapshot")

    def create_cloned_volume(self, volume, source):
        raise unsupported("cloning volumes")

    def create_export(self, volume, connector):
        return model_update()

    def remove_export(self, volume) -> None:
        pass

    def initialize_connection(self, volume, connector):
        raise unsupported("attaching volumes")

    def terminate_connection(self, volume, connector) -> None:
        pass

    def revert_to_snapshot(self, volume, snapshot) -> None:
        raise unsupported("reverting to a snapshot")

    def manage_existing(self, volume, reference: str):
        raise unsupported("managing existing volumes")

    def manage_existing_get_size(self, volume, reference: str) -> int:
        raise unsupported("managing existing volumes")

    def unmanage(self, volume) -> None:
        raise unsupported("unmanaging volumes")

    def get_manageable_volumes(self):
        raise unsupported("listing manageable volumes")

    def get_manageable_snapshots(self):
        """Contract 0.3.0 and later."""
        raise unsupported("listing manageable snapshots")

    def retype(self, volume, new_type_name: str, new_extra_specs):
        """Answer :func:`retype_in_place` or :func:`retype_migrate` (the default)."""
        return retype_migrate()

    def health(self):
        """A cheap "can you serve?", the host's health probe; by default the answer of
        :meth:`check_for_setup_error`."""
        try:
            self.check_for_setup_error()
        except Err as e:
            return health_report(False, message_of(e))
        return health_report(True, "")


def volume_exports(driver_class):
    """The classes componentize-py looks for in the app module, each forwarding to one
    ``driver_class`` object per instance::

        VolumeDriverCore, VolumeDriverExtras, VolumeDriverHealth = volume_exports(MyDriver)
    """
    state = {}

    def driver():
        d = state.get("driver")
        if d is None:
            d = state["driver"] = driver_class()
        return d

    def forward(name):
        def method(self, *args):
            return guarded(getattr(driver(), name), *args)

        method.__name__ = name
        return method

    core = [
        "do_setup",
        "check_for_setup_error",
        "get_volume_stats",
        "create_volume",
        "delete_volume",
        "extend_volume",
        "create_snapshot",
        "delete_snapshot",
        "create_volume_from_snapshot",
        "create_cloned_volume",
        "create_export",
        "remove_export",
        "initialize_connection",
        "terminate_connection",
    ]
    extras = [
        "revert_to_snapshot",
        "manage_existing",
        "manage_existing_get_size",
        "unmanage",
        "get_manageable_volumes",
        "retype",
    ]
    if CONTRACT_0_3:
        extras.append("get_manageable_snapshots")
    Core = type("VolumeDriverCore", (), {n: forward(n) for n in core})
    Extras = type("VolumeDriverExtras", (), {n: forward(n) for n in extras})
    Health = type("VolumeDriverHealth", (), {"health": forward("health")})
    return Core, Extras, Health
