"""The backend's settings from the operator's config."""

from wit_world.imports import config as _config

from .errors import invalid_argument
from .util import parse_bool


def get(key: str, default=None):
    """A setting, or ``default`` when the backend's section leaves it out."""
    v = _config.get(key)
    return default if v is None else v


def require(key: str) -> str:
    """A setting that must be present; the error names the key and the backend."""
    v = _config.get(key)
    if v is None:
        raise invalid_argument(
            f"backend {backend_name()} has no `{key}` setting; add it to the backend's "
            "section of the config"
        )
    return v


def get_bool(key: str, default: bool) -> bool:
    return parse_bool(key, _config.get(key), default)


def all() -> dict:  # noqa: A001 - the contract's name
    return dict(_config.all())


def backend_name() -> str:
    return _config.backend_name()


def host_name() -> str:
    return _config.host_name()
