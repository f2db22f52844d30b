"""Byte access to granted devices and files. Handles are context managers::

    with block.open(path) as h:
        h.write_at(0, b"...")
"""

from componentize_py_types import Err
from wit_world.imports import block as _block

from .errors import backend_unavailable, internal, invalid_argument, not_found

OpenMode = _block.OpenMode
READ_ONLY = _block.OpenMode.READ_ONLY
READ_WRITE = _block.OpenMode.READ_WRITE
CREATE = _block.OpenMode.CREATE


def from_io_error(error) -> Err:
    m = getattr(error, "value", str(error))
    if isinstance(error, _block.IoError_Denied):
        return backend_unavailable(f"block access refused: {m}")
    if isinstance(error, _block.IoError_NotFound):
        return not_found(m)
    if isinstance(error, _block.IoError_InvalidArgument):
        return invalid_argument(m)
    return internal(m)


class Handle:
    """An open device or file; every method raises a driver error on failure."""

    def __init__(self, inner):
        self._inner = inner

    def _call(self, f, *args):
        try:
            return f(*args)
        except Err as e:
            raise from_io_error(e.value) from None

    def read_at(self, offset: int, length: int) -> bytes:
        return self._call(self._inner.read_at, offset, length)

    def write_at(self, offset: int, data: bytes) -> int:
        return self._call(self._inner.write_at, offset, data)

    def size(self) -> int:
        return self._call(self._inner.size)

    def set_size(self, size: int) -> None:
        self._call(self._inner.set_size, size)

    def flush(self) -> None:
        self._call(self._inner.flush)

    def discard(self, offset: int, length: int) -> None:
        self._call(self._inner.discard, offset, length)

    def close(self) -> None:
        self._inner.__exit__(None, None, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return None


def open(path: str, mode=READ_ONLY) -> Handle:  # noqa: A001 - the contract's name
    try:
        return Handle(_block.open(path, mode))
    except Err as e:
        raise from_io_error(e.value) from None


def copy(src: Handle, src_offset: int, dst: Handle, dst_offset: int, length: int) -> int:
    """Copies ``length`` bytes between two handles inside the host, so bulk data never
    crosses into the guest."""
    try:
        return _block.copy(src._inner, src_offset, dst._inner, dst_offset, length)
    except Err as e:
        raise from_io_error(e.value) from None
