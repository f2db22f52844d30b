"""Backup drivers: the object side of a chunked backup (Cinder's ``backup_driver``). The
host chunks, hashes, compresses and decides what an incremental stores; a backup driver
only moves named objects in and out of a container of its store."""

from componentize_py_types import Err

from .errors import guarded, message_of, unsupported
from .model import CONTRACT_0_3, health_report


class BackupDriver:
    """A backup store. Required: every object method."""

    def do_setup(self) -> None:
        pass

    def check_for_setup_error(self) -> None:
        pass

    def put_container(self, container: str) -> None:
        raise unsupported("containers")

    def put_object(self, container: str, name: str, data: bytes) -> None:
        raise unsupported("storing objects")

    def get_object(self, container: str, name: str) -> bytes:
        raise unsupported("reading objects")

    def delete_object(self, container: str, name: str) -> None:
        raise unsupported("deleting objects")

    def list_objects(self, container: str, prefix: str, marker, limit: int):
        raise unsupported("listing objects")

    def health(self):
        """Contract 0.3.0 and later; by default :meth:`check_for_setup_error`'s answer."""
        try:
            self.check_for_setup_error()
        except Err as e:
            return health_report(False, message_of(e))
        return health_report(True, "")


def object_info(name: str, size: int):
    from wit_world.exports import backup_driver_core

    return backup_driver_core.ObjectInfo(name, size)


def backup_exports(driver_class):
    """The class componentize-py looks for in the app module::

    BackupDriverCore = backup_exports(MyStore)
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

    names = [
        "do_setup",
        "check_for_setup_error",
        "put_container",
        "put_object",
        "get_object",
        "delete_object",
        "list_objects",
    ]
    if CONTRACT_0_3:
        names.append("health")
    return type("BackupDriverCore", (), {n: forward(n) for n in names})
