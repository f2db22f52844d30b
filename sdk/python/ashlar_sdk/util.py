"""Small checks every driver needs."""

from .errors import invalid_argument

GIB = 1 << 30


def check_id(kind: str, id: str) -> None:
    """Checks an id the host passed (a volume's or a snapshot's) before it becomes part of
    a file or target name: a plain UUID-like token of letters, digits and ``-``."""
    if not id or len(id) > 64 or not all(c.isascii() and (c.isalnum() or c == "-") for c in id):
        raise invalid_argument(f"{kind} id `{id}` is not a valid id")


def parse_bool(key: str, value, default: bool) -> bool:
    """A boolean setting (true/yes/1, false/no/0, any case), ``default`` when absent; the
    error names the key."""
    if value is None:
        return default
    v = value.lower()
    if v in ("true", "yes", "1"):
        return True
    if v in ("false", "no", "0"):
        return False
    raise invalid_argument(f"{key} `{value}` must be true or false")


def gib_rounded_up(size_bytes: int) -> int:
    return (size_bytes + GIB - 1) // GIB
