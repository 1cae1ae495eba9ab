"""Per-symbol 1m ATR as a % of price, for volatility sizing (``BalanceSizer(atr_max_pct=...)``).

Wilder's ATR on the true range, computed on the candles' float views (``high_f``/``low_f``/
``close_f``: indicator arithmetic, never money):

* TR of the first candle of a symbol = high − low; later TR = max(high, prev close) − min(low,
  prev close), i.e. max(high − low, |high − prev close|, |low − prev close|).
* The first ATR is the mean of the first ``period`` TRs; after that
  ATR = (ATR × (period − 1) + TR) / period.
* ATR% = ATR / close × 100 of the candle just seen.

O(1) per candle; one small state object per symbol, created on its first candle and mutated in
place afterwards (no per-candle containers). A candle that is not closed, or whose ``open_time_ms`` is not
after the last one seen for the symbol (a replayed or duplicate candle), changes nothing.
"""

from __future__ import annotations

from typing import Iterator, Mapping

from engine.model import Candle


class _SymbolAtr:
    """One symbol's running state (mutated in place: no allocation per candle)."""

    __slots__ = ("n", "atr", "prev_close", "last_open_ms", "pct")

    def __init__(self, last_open_ms: int) -> None:
        self.n = 0  # candles counted, capped at ``period``
        self.atr = 0.0  # running TR sum while warming up, then the ATR
        self.prev_close = 0.0
        self.last_open_ms = last_open_ms  # open_time_ms of the last candle used
        self.pct: float | None = None  # latest ATR % of close


class _PctView(Mapping[str, float]):
    """Read-only live mapping symbol → ATR% over the tracker's state (warmed-up symbols only)."""

    __slots__ = ("_state",)

    def __init__(self, state: dict[str, _SymbolAtr]) -> None:
        self._state = state

    def __getitem__(self, symbol: str) -> float:
        s = self._state.get(symbol)
        if s is None or s.pct is None:
            raise KeyError(symbol)
        return s.pct

    def get(self, symbol: str, default=None):  # type: ignore[override]  # faster than Mapping.get
        s = self._state.get(symbol)
        if s is None or s.pct is None:
            return default
        return s.pct

    def __iter__(self) -> Iterator[str]:
        return (k for k, s in self._state.items() if s.pct is not None)

    def __len__(self) -> int:
        return sum(1 for s in self._state.values() if s.pct is not None)


class AtrTracker:
    def __init__(self, period: int) -> None:
        if period < 1:
            raise ValueError(f"ATR period must be at least 1, got {period}")
        self.period = period
        self._p1 = period - 1
        self._state: dict[str, _SymbolAtr] = {}
        self._view = _PctView(self._state)

    @property
    def pcts(self) -> Mapping[str, float]:
        """Live, read-only symbol → latest ATR% (warmed-up symbols only); pass it as
        ``GuardView.atr_pct`` (nothing is copied)."""
        return self._view

    def pct(self, symbol: str) -> float | None:
        """Latest ATR% of ``symbol``; None until ``period`` candles have been seen."""
        s = self._state.get(symbol)
        return None if s is None else s.pct

    def update(self, candle: Candle) -> float | None:
        """Feed one closed candle; returns the symbol's ATR% after it (None while warming up)."""
        s = self._state.get(candle.symbol)
        t = candle.open_time_ms
        if s is None:
            if not candle.closed:
                return None
            s = self._state[candle.symbol] = _SymbolAtr(t - 1)
        elif t <= s.last_open_ms or not candle.closed:
            return s.pct  # replayed, duplicate or still-forming candle: no change
        s.last_open_ms = t
        n = s.n
        p = self.period
        high = candle.high_f
        low = candle.low_f
        if n >= p:  # the common case: warmed up
            pc = s.prev_close
            atr = s.atr = (s.atr * self._p1 + (high if high > pc else pc) - (low if low < pc else pc)) / p
        else:
            if n:
                pc = s.prev_close
                tr = (high if high > pc else pc) - (low if low < pc else pc)
            else:
                tr = high - low
            n += 1
            s.n = n
            if n < p:
                s.atr += tr
                s.prev_close = candle.close_f
                return None
            atr = s.atr = (s.atr + tr) / p
        close = s.prev_close = candle.close_f
        if close > 0:
            pct = s.pct = atr / close * 100.0
            return pct
        return s.pct

    def reset(self, symbol: str | None = None) -> None:
        """Forget one symbol (or all): its ATR warms up again from the next candle."""
        if symbol is None:
            self._state.clear()
        else:
            self._state.pop(symbol, None)
