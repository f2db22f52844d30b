"""Target drivers: export a block device or file over a protocol (Cinder's target
helpers, such as tgtadm or LIO), for a volume driver that only provides the local
device."""

from componentize_py_types import Err

from .errors import guarded, message_of, unsupported
from .model import CONTRACT_0_3, health_report


class TargetDriver:
    """A Cinder target helper. The host asks the paired volume driver for a volume's local
    device and hands its path to :meth:`create_export`.

    Required: :meth:`create_export`, :meth:`remove_export`, :meth:`initialize_connection`,
    :meth:`terminate_connection`.
    """

    def do_setup(self) -> None:
        pass

    def check_for_setup_error(self) -> None:
        pass

    def create_export(self, volume, device_path: str):
        raise unsupported("exporting volumes")

    def remove_export(self, volume) -> None:
        raise unsupported("exporting volumes")

    def initialize_connection(self, volume, connector):
        raise unsupported("attaching volumes")

    def terminate_connection(self, volume, connector) -> None:
        raise unsupported("attaching volumes")

    def health(self):
        """Contract 0.3.0 and later; by default :meth:`check_for_setup_error`'s answer."""
        try:
            self.check_for_setup_error()
        except Err as e:
            return health_report(False, message_of(e))
        return health_report(True, "")


def target_exports(driver_class):
    """The class componentize-py looks for in the app module::

    TargetDriverCore = target_exports(MyTarget)
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
        "create_export",
        "remove_export",
        "initialize_connection",
        "terminate_connection",
    ]
    if CONTRACT_0_3:
        names.append("health")
    return type("TargetDriverCore", (), {n: forward(n) for n in names})
