"""EMA trend with a volatility filter.

Long when the fast EMA crosses above the slow EMA while the close is above the trend EMA; short on
the mirror image. A cross only counts when volatility is tradable: ATR (Wilder) as a fraction of
price must lie within [``min_atr_pct``, ``max_atr_pct``] — too quiet and fees eat the move, too
wild and the stop is noise. After a signal the symbol is quiet for ``cooldown_bars`` candles.

Strength = |fast − slow| / ATR, capped at 1. Indicator arithmetic is float (statistics, not
money); the signal's price is the candle's exact Decimal close.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.model import Candle, Direction, Signal
from engine.strategies.base import params_from, register

NAME = "ema_trend"


@dataclass(frozen=True)
class EmaTrendParams:
    fast: int = 12
    """Fast EMA period, in 1m candles."""
    slow: int = 48
    """Slow EMA period, in 1m candles."""
    trend: int = 240
    """Trend filter EMA period: longs only above it, shorts only below it."""
    atr_period: int = 14
    """ATR period (Wilder smoothing)."""
    min_atr_pct: float = 0.04
    """Skip signals when ATR is below this % of price (dead market)."""
    max_atr_pct: float = 1.0
    """Skip signals when ATR is above this % of price (chaos)."""
    cooldown_bars: int = 30
    """Candles to wait after a signal on the same symbol."""

    def __post_init__(self) -> None:
        if not (1 <= self.fast < self.slow):
            raise ValueError(f"fast must be >= 1 and < slow (fast={self.fast}, slow={self.slow})")
        if self.trend < self.slow:
            raise ValueError(f"trend must be >= slow (trend={self.trend}, slow={self.slow})")
        if self.atr_period < 1:
            raise ValueError(f"atr_period must be >= 1, got {self.atr_period}")
        if not (0 <= self.min_atr_pct < self.max_atr_pct):
            raise ValueError("min_atr_pct must be >= 0 and < max_atr_pct")
        if self.cooldown_bars < 0:
            raise ValueError(f"cooldown_bars must be >= 0, got {self.cooldown_bars}")


class _SymState:
    __slots__ = ("n", "fast", "slow", "trend", "atr", "prev_close", "prev_diff", "cooldown")

    def __init__(self) -> None:
        self.n = 0
        self.fast = 0.0
        self.slow = 0.0
        self.trend = 0.0
        self.atr = 0.0
        self.prev_close = 0.0
        self.prev_diff = 0.0
        self.cooldown = 0


class EmaTrend:
    __slots__ = ("name", "params", "_af", "_as", "_at", "_aa", "_warmup", "_min_atr", "_max_atr", "_state")

    def __init__(self, params: EmaTrendParams | None = None) -> None:
        self.name = NAME
        self.params = p = params or EmaTrendParams()
        self._af = 2.0 / (p.fast + 1)
        self._as = 2.0 / (p.slow + 1)
        self._at = 2.0 / (p.trend + 1)
        self._aa = 1.0 / p.atr_period
        self._warmup = p.trend
        self._min_atr = p.min_atr_pct / 100.0
        self._max_atr = p.max_atr_pct / 100.0
        self._state: dict[str, _SymState] = {}

    def on_candle(self, candle: Candle) -> Signal | None:
        if not candle.closed:
            return None
        st = self._state.get(candle.symbol)
        if st is None:
            st = self._state[candle.symbol] = _SymState()
        c = candle.close_f
        n = st.n
        if n == 0:
            st.fast = st.slow = st.trend = st.prev_close = c
            st.atr = candle.high_f - candle.low_f
            st.n = 1
            return None
        h = candle.high_f
        lo = candle.low_f
        pc = st.prev_close
        tr = h - lo
        if h - pc > tr:
            tr = h - pc
        if pc - lo > tr:
            tr = pc - lo
        atr = st.atr = st.atr + (tr - st.atr) * self._aa
        fast = st.fast = st.fast + (c - st.fast) * self._af
        slow = st.slow = st.slow + (c - st.slow) * self._as
        trend = st.trend = st.trend + (c - st.trend) * self._at
        st.prev_close = c
        diff = fast - slow
        prev = st.prev_diff
        st.prev_diff = diff
        st.n = n + 1
        if st.cooldown:
            st.cooldown -= 1
            return None
        if n < self._warmup:
            return None
        if prev <= 0.0 < diff:
            if c <= trend:
                return None
            direction = Direction.LONG
        elif prev >= 0.0 > diff:
            if c >= trend:
                return None
            direction = Direction.SHORT
        else:
            return None
        atr_frac = atr / c
        if atr_frac < self._min_atr or atr_frac > self._max_atr:
            return None
        st.cooldown = self.params.cooldown_bars
        strength = min(1.0, abs(diff) / atr) if atr > 0 else 0.0
        return Signal(
            strategy=NAME,
            symbol=candle.symbol,
            direction=direction,
            strength=round(strength, 4),
            reason=(
                f"EMA{self.params.fast} crossed {'above' if direction is Direction.LONG else 'below'} "
                f"EMA{self.params.slow}, close {'above' if direction is Direction.LONG else 'below'} "
                f"EMA{self.params.trend}, ATR {atr_frac * 100:.3f}%"
            ),
            candle_open_time_ms=candle.open_time_ms,
            price=candle.close,
            time_ms=candle.close_time_ms,
        )


@register(NAME, "EMA fast/slow cross in the direction of a long EMA, with an ATR volatility filter")
def _factory(raw: dict) -> EmaTrend:
    return EmaTrend(params_from(EmaTrendParams, NAME, raw))
