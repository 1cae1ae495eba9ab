"""A reproducible synthetic stream of external signals (for ``perpdeck signal --simulate``).

:class:`SignalSimulator` yields :class:`SimulatedSignal` records in time order: Poisson arrivals
(mean ``mean_interval_s`` apart) on random symbols, a share ``confluence_prob`` of which are pairs
— a FOMO and an Alpha on the same symbol, the second up to ``1.5 × window_s`` after the first (so
some pairs fall outside the matching window, as in real feeds) — the rest lone Alpha or FOMO
signals. FOMO signals are type 112 (intensified) with probability ``intensify_prob``, else 113.
Symbols are written sometimes bare (``BTC``) and sometimes in full (``BTCUSDT``), and a share
``duplicate_prob`` of messages is sent twice a few seconds apart with the same id, so consumers see
what a real feed throws at them.

Same seed and arguments → the same stream, always; times start at ``start_ms`` (the caller's clock,
never the wall clock). Feed it to ``ConfluenceStrategy.process_signal(*s.args())``.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Iterator

from engine.strategies.external import ALPHA, FOMO, FOMO_INTENSIFIED


@dataclass(frozen=True, slots=True)
class SimulatedSignal:
    """One synthetic external message, in the shape ``process_signal`` takes."""

    message_type: int
    message_id: str
    symbol: str
    time_ms: int
    data: dict[str, Any] = field(default_factory=dict, compare=True, hash=False)

    def args(self) -> tuple[int, str, str, dict[str, Any], int]:
        """``(message_type, message_id, symbol, data, time_ms)`` for ``process_signal``."""
        return self.message_type, self.message_id, self.symbol, dict(self.data), self.time_ms

    def as_dict(self) -> dict[str, Any]:
        return {"message_type": self.message_type, "message_id": self.message_id, "symbol": self.symbol,
                "time_ms": self.time_ms, "data": dict(self.data)}


class SignalSimulator:
    """Seeded generator of external signals; iterate it (endless) or use :meth:`take` / :meth:`until`."""

    def __init__(
        self,
        seed: int = 0,
        symbols: tuple[str, ...] | list[str] = ("BTC", "ETH", "SOL"),
        start_ms: int = 0,
        *,
        mean_interval_s: float = 600.0,
        confluence_prob: float = 0.35,
        window_s: float = 300.0,
        intensify_prob: float = 0.3,
        duplicate_prob: float = 0.03,
        full_symbol_prob: float = 0.5,
        quote: str = "USDT",
    ) -> None:
        if not symbols:
            raise ValueError("symbols: need at least one")
        if mean_interval_s <= 0:
            raise ValueError(f"mean_interval_s must be > 0, got {mean_interval_s}")
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        for name, v in (("confluence_prob", confluence_prob), ("intensify_prob", intensify_prob),
                        ("duplicate_prob", duplicate_prob), ("full_symbol_prob", full_symbol_prob)):
            if not (0.0 <= v <= 1.0):
                raise ValueError(f"{name} must be between 0 and 1, got {v}")
        q = quote.upper()
        self.seed = seed
        self.bases = tuple(s.upper()[: -len(q)] if s.upper().endswith(q) and len(s) > len(q) else s.upper()
                           for s in symbols)
        self.start_ms = start_ms
        self.mean_interval_s = mean_interval_s
        self.confluence_prob = confluence_prob
        self.window_s = window_s
        self.intensify_prob = intensify_prob
        self.duplicate_prob = duplicate_prob
        self.full_symbol_prob = full_symbol_prob
        self.quote = q

    def __iter__(self) -> Iterator[SimulatedSignal]:
        rng = random.Random(self.seed)
        heap: list[tuple[int, int, SimulatedSignal]] = []
        seq = 0
        msg = 0
        t = self.start_ms

        def push(sig: SimulatedSignal) -> None:
            nonlocal seq
            heapq.heappush(heap, (sig.time_ms, seq, sig))
            seq += 1

        def make(kind: int, base: str, at: int, pair: int | None) -> SimulatedSignal:
            nonlocal msg
            msg += 1
            sym = base + self.quote if rng.random() < self.full_symbol_prob else base
            data: dict[str, Any] = {"source": "simulated", "seq": msg}
            if pair is not None:
                data["pair"] = pair
            sig = SimulatedSignal(kind, f"sim-{self.seed}-{msg:07d}", sym, at, data)
            if rng.random() < self.duplicate_prob:
                push(SimulatedSignal(kind, sig.message_id, sig.symbol, at + rng.randint(1_000, 10_000), dict(data)))
            return sig

        def fomo_kind() -> int:
            return FOMO_INTENSIFIED if rng.random() < self.intensify_prob else FOMO

        pairs = 0
        while True:
            t += 1 + int(rng.expovariate(1.0 / self.mean_interval_s) * 1000)
            base = rng.choice(self.bases)
            if rng.random() < self.confluence_prob:
                pairs += 1
                first_fomo = rng.random() < 0.5
                k1, k2 = (fomo_kind(), ALPHA) if first_fomo else (ALPHA, fomo_kind())
                gap = int(rng.uniform(0.0, 1.5 * self.window_s) * 1000)
                push(make(k1, base, t, pairs))
                push(make(k2, base, t + gap, pairs))
            else:
                push(make(ALPHA if rng.random() < 0.5 else fomo_kind(), base, t, None))
            while heap and heap[0][0] <= t:
                yield heapq.heappop(heap)[2]

    def take(self, n: int) -> list[SimulatedSignal]:
        """The first ``n`` signals."""
        return list(islice(iter(self), n))

    def until(self, end_ms: int) -> list[SimulatedSignal]:
        """Every signal with ``time_ms < end_ms``."""
        out = []
        for s in self:
            if s.time_ms >= end_ms:
                break
            out.append(s)
        return out
