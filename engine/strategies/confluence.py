"""External-signal confluence (note 002) as a strategy: FOMO + Alpha on one symbol → go long.

External signals arrive through :meth:`ConfluenceStrategy.process_signal` (or :meth:`ingest` with
an already parsed :class:`~engine.strategies.external.ExternalSignal`), stamped by the caller with
the event/exchange clock. They are matched by a
:class:`~engine.strategies.external.ConfluenceAggregator` (see ``engine.strategies.external`` for
the score). A confluence scoring at least ``min_signal_score`` is held for its symbol, and on the
**next closed candle of that symbol that closes at or after the confluence** the strategy emits a
LONG signal at that candle's close:

* direction — always LONG: in note 002 FOMO means sentiment heating up ("may rise fast") and Alpha
  an excess-return opportunity, both bullish; the note trades the pair as a buy (FOMO intensified,
  type 112, only strengthens it);
* strength — the confluence's score re-computed at the candle's close time (freshness may have
  fallen if no candle came for a long time); below ``min_signal_score`` by then, the confluence is
  dropped instead (counted as expired);
* one held confluence per symbol: a newer one replaces an older one not yet emitted.

A candle that closed before the confluence existed never carries it — no look-ahead in backtests.
``on_candle`` is a dictionary lookup when nothing is held, so idle cost is negligible.
"""

from __future__ import annotations

from typing import Any

from engine.model import Candle, Direction, Signal
from engine.strategies.base import register
from engine.strategies.external import (
    Confluence,
    ConfluenceAggregator,
    ConfluenceParams,
    ExternalSignal,
    IngestResult,
    IngestStatus,
    parse_external_signal,
)
from engine.strategies.params import parse_params
from engine.strategies.stats import SignalCounter, SignalStats

NAME = "confluence"


class ConfluenceStrategy:
    """See the module docstring. Params: :class:`~engine.strategies.external.ConfluenceParams`."""

    def __init__(self, params: ConfluenceParams | None = None) -> None:
        self.name = NAME
        self.params = params or ConfluenceParams()
        self.aggregator = ConfluenceAggregator(self.params)
        self._held: dict[str, Confluence] = {}
        self._counter = SignalCounter(NAME)
        self.expired = 0
        self.replaced = 0

    # -- external signals -------------------------------------------------------------------------

    def process_signal(self, message_type: Any, message_id: Any, symbol: Any, data: Any,
                       time_ms: Any) -> IngestResult:
        """Parse, de-duplicate and match one external signal stamped ``time_ms`` (event clock).

        Raises :class:`~engine.strategies.external.ExternalSignalError` (naming the field) for bad
        input. Returns what became of it; a ``CONFLUENCE`` result is now held for its symbol.
        """
        return self.ingest(parse_external_signal(message_type, message_id, symbol, data, time_ms,
                                                 quote=self.params.quote))

    def ingest(self, sig: ExternalSignal) -> IngestResult:
        """Match an already parsed signal (see :meth:`process_signal`)."""
        res = self.aggregator.add(sig)
        if res.status is IngestStatus.CONFLUENCE and res.confluence is not None:
            if res.confluence.symbol in self._held:
                self.replaced += 1
            self._held[res.confluence.symbol] = res.confluence
        return res

    def held(self) -> tuple[Confluence, ...]:
        """Confluences waiting for their symbol's next closed candle, by symbol."""
        return tuple(self._held[s] for s in sorted(self._held))

    # -- candles ----------------------------------------------------------------------------------

    def on_candle(self, candle: Candle) -> Signal | None:
        if not self._held or not candle.closed:
            return None
        conf = self._held.get(candle.symbol)
        if conf is None or candle.close_time_ms < conf.time_ms:
            return None
        del self._held[candle.symbol]
        scored = conf.rescore(candle.close_time_ms, self.params)
        if scored.score < self.params.min_signal_score:
            self.expired += 1
            return None
        return self._counter.record(Signal(
            strategy=NAME,
            symbol=candle.symbol,
            direction=Direction.LONG,
            strength=round(min(1.0, scored.score), 4),
            reason=f"confluence {conf.describe()}; {scored.describe()}",
            candle_open_time_ms=candle.open_time_ms,
            price=candle.close,
            time_ms=candle.close_time_ms,
        ))

    # -- statistics -------------------------------------------------------------------------------

    def signal_stats(self) -> SignalStats:
        return self._counter.snapshot()

    def external_stats(self) -> dict[str, int]:
        """External-signal counters for display: received, duplicates, ignored, matches, held …"""
        c = self.aggregator.counts()
        return {
            "received": c.received, "duplicates": c.duplicates, "ignored": c.ignored,
            "below_threshold": c.below_threshold, "confluences": c.confluences,
            "pending_fomo": c.pending_fomo, "pending_alpha": c.pending_alpha,
            "held": len(self._held), "expired": self.expired, "replaced": self.replaced,
            "signals": self._counter.signals,
        }


@register(NAME, "External FOMO + Alpha confluence (note 002): long on the next candle after a scored match")
def _factory(raw: dict) -> ConfluenceStrategy:
    return ConfluenceStrategy(parse_params(ConfluenceParams, NAME, raw))
