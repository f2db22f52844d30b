"""Wall-clock time and sleeping (which counts against the call's deadline)."""

from wit_world.imports import clock as _clock


def now_ms() -> int:
    return _clock.now_ms()


def sleep_ms(ms: int) -> None:
    _clock.sleep_ms(ms)
