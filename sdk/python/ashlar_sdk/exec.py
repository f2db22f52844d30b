"""Run granted programs, without a shell. The host checks the program and every argument
against the operator's grant before anything runs."""

from typing import List, Optional, Sequence

from componentize_py_types import Err
from wit_world.imports import exec as _exec

from .errors import backend_unavailable, internal

Output = _exec.Output


def run(program: str, args: Sequence[str], timeout_ms: Optional[int] = None) -> _exec.Output:
    """Runs ``program`` with ``args`` and returns its output, whatever its exit status; a
    refused or failed start raises the driver error an operator should see."""
    try:
        return _exec.run(program, [str(a) for a in args], timeout_ms)
    except Err as e:
        raise from_exec_error(program, e.value) from None


def check(program: str, args: Sequence[str], timeout_ms: Optional[int] = None) -> str:
    """Runs ``program`` and returns its stdout, decoded, when it exits 0; otherwise an
    internal error carrying the command and its stderr."""
    out = run(program, args, timeout_ms)
    if out.status != 0:
        raise internal(
            f"`{program} {' '.join(args)}` exited with status {out.status}: {stderr_of(out)}"
        )
    return stdout_of(out)


def stdout_of(out: _exec.Output) -> str:
    return out.stdout.decode("utf-8", "replace")


def stderr_of(out: _exec.Output) -> str:
    return out.stderr.decode("utf-8", "replace").strip()


def from_exec_error(program: str, error) -> Err:
    """Maps a refused or failed exec to the driver error an operator should see."""
    m = getattr(error, "value", str(error))
    if isinstance(error, _exec.ExecError_Denied):
        return backend_unavailable(f"exec of {program} refused: {m}")
    if isinstance(error, _exec.ExecError_NotInstalled):
        return backend_unavailable(f"{program} is not installed: {m}")
    if isinstance(error, _exec.ExecError_TimedOut):
        return backend_unavailable(f"{program} timed out: {m}")
    return internal(f"{program} failed: {m}")


__all__: List[str] = ["Output", "check", "from_exec_error", "run", "stderr_of", "stdout_of"]
