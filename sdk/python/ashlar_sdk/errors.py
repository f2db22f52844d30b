"""Driver errors: each helper returns componentize-py's ``Err`` carrying one case of the
contract's ``driver-error``, for the driver to ``raise``::

    raise not_found(f"volume-{volume.id} does not exist")
"""

from componentize_py_types import Err
from wit_world.imports import types

#: What a driver method raises to answer with a driver error.
DriverFailure = Err


def not_found(message: str) -> Err:
    return Err(types.DriverError_NotFound(message))


def invalid_argument(message: str) -> Err:
    return Err(types.DriverError_InvalidArgument(message))


def not_supported(message: str) -> Err:
    return Err(types.DriverError_NotSupported(message))


def capacity_exceeded(message: str) -> Err:
    return Err(types.DriverError_CapacityExceeded(message))


def backend_unavailable(message: str) -> Err:
    return Err(types.DriverError_BackendUnavailable(message))


def internal(message: str) -> Err:
    return Err(types.DriverError_Internal(message))


def unsupported(what: str) -> Err:
    return not_supported(f"this driver does not support {what}")


def message_of(error: Err) -> str:
    """The text of a driver error (any case)."""
    return getattr(error.value, "value", str(error.value))


def is_not_found(error: BaseException) -> bool:
    return isinstance(error, Err) and isinstance(error.value, types.DriverError_NotFound)


def guarded(call, *args):
    """Runs one driver method: a driver error passes through; any other exception (a bug in
    the driver) becomes an internal error naming it, rather than a trap that costs the
    instance."""
    try:
        return call(*args)
    except Err:
        raise
    except Exception as e:  # noqa: BLE001 - every driver bug must come back as an error
        from . import log

        message = f"{type(e).__name__}: {e}"
        log.error(f"{getattr(call, '__qualname__', 'call')} failed: {message}")
        raise internal(message) from None
