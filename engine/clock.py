"""Time for engine logic comes from events (exchange or replay time), never the wall clock.

:class:`EventClock` is advanced by the pipeline from candle close times and exchange event
times, so sim, backtest and live behave alike and tests are deterministic. :class:`WallClock`
exists for the few things that are genuinely about wall time (heartbeat file stamps, replay
pacing) and is kept here so there is exactly one place that reads it.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int: ...


class EventClock:
    """Monotonic clock driven by event times. Going backwards is ignored (late events)."""

    __slots__ = ("_now_ms",)

    def __init__(self, start_ms: int = 0) -> None:
        self._now_ms = start_ms

    def now_ms(self) -> int:
        return self._now_ms

    def advance(self, t_ms: int) -> None:
        if t_ms > self._now_ms:
            self._now_ms = t_ms


class TestClock(EventClock):
    """An event clock tests set by hand."""

    __test__ = False  # not a pytest test class

    def set(self, t_ms: int) -> None:
        self._now_ms = t_ms


class WallClock:
    """Real time. Only for heartbeat stamps and pacing a replay; never for trading logic."""

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def monotonic_s(self) -> float:
        return time.monotonic()
