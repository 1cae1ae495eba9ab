"""What a strategy knows about its own output: how many signals, which way, on which symbols.

Trades, win rate and PnL belong to the journal (the strategy never sees fills); this module only
counts what the strategy itself emitted, so the console and the journal can show it next to the
trade statistics. Every strategy in this package exposes ``signal_stats() -> SignalStats``;
:func:`signal_stats` reads it from any strategy (``SafeStrategy`` wrappers included) and returns
``None`` for strategies that do not keep counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.model import Direction, Signal


@dataclass(frozen=True, slots=True)
class SignalStats:
    """A strategy's own signal counts since it was built."""

    strategy: str
    signals: int
    longs: int
    shorts: int
    by_symbol: tuple[tuple[str, int], ...]  # sorted by symbol
    last_signal_ms: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "signals": self.signals,
            "longs": self.longs,
            "shorts": self.shorts,
            "by_symbol": dict(self.by_symbol),
            "last_signal_ms": self.last_signal_ms,
        }


class SignalCounter:
    """Counts emitted signals. ``record`` returns its argument so it can wrap a ``return``."""

    __slots__ = ("name", "signals", "longs", "by_symbol", "last_ms")

    def __init__(self, name: str) -> None:
        self.name = name
        self.signals = 0
        self.longs = 0
        self.by_symbol: dict[str, int] = {}
        self.last_ms: int | None = None

    def record(self, sig: Signal) -> Signal:
        self.signals += 1
        if sig.direction is Direction.LONG:
            self.longs += 1
        self.by_symbol[sig.symbol] = self.by_symbol.get(sig.symbol, 0) + 1
        self.last_ms = sig.time_ms
        return sig

    def snapshot(self) -> SignalStats:
        return SignalStats(
            strategy=self.name,
            signals=self.signals,
            longs=self.longs,
            shorts=self.signals - self.longs,
            by_symbol=tuple(sorted(self.by_symbol.items())),
            last_signal_ms=self.last_ms,
        )


def signal_stats(strategy: Any) -> SignalStats | None:
    """The strategy's :class:`SignalStats`, looking through ``SafeStrategy``; ``None`` if it keeps none."""
    inner = getattr(strategy, "inner", strategy)
    fn = getattr(inner, "signal_stats", None)
    return fn() if callable(fn) else None
