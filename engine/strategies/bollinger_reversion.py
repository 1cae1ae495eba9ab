"""Bollinger mean reversion: fade closes stretched outside the bands when RSI agrees.

Rule, on every closed 1m candle of a symbol (Bollinger bands over the last ``period`` closes,
this candle's included: mean ± ``band_k`` population standard deviations; Wilder RSI over
``rsi_period``):

* LONG when the close is **below the lower band**, RSI ≤ ``rsi_low`` (oversold) and the mean lies
  at least ``min_edge_pct`` % above the close (the reversion target must be worth the fees);
* SHORT on the mirror image: close above the upper band, RSI ≥ ``rsi_high``, mean at least
  ``min_edge_pct`` % below the close.

No signal during the warm-up (``max(period, rsi_period + 1)`` candles) or for ``cooldown_bars``
candles after a signal on the same symbol.

Strength = min(1, |z| / (2 × band_k)) where z = (close − mean) / std: 0.5 at the band, 1 at twice
its distance. Mean reversion loses in strong trends and crashes — pair it with the regime switcher
(``regime_switch``), which routes it to ranging markets only.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.model import Candle, Direction, Signal
from engine.strategies.base import register
from engine.strategies.indicators import RollingStats, Rsi
from engine.strategies.params import parse_params
from engine.strategies.stats import SignalCounter, SignalStats

NAME = "bollinger_reversion"


@dataclass(frozen=True)
class BollingerReversionParams:
    period: int = 20
    """Bollinger window, in 1m candles."""
    band_k: float = 2.5
    """Band half-width in standard deviations (2.5 on 1m: only real stretches)."""
    rsi_period: int = 14
    """RSI period (Wilder smoothing)."""
    rsi_low: float = 25.0
    """Longs need RSI at or below this (oversold)."""
    rsi_high: float = 75.0
    """Shorts need RSI at or above this (overbought)."""
    min_edge_pct: float = 0.15
    """The mean must be at least this % away from the close (covers round-trip fees and slippage)."""
    cooldown_bars: int = 15
    """Candles to wait after a signal on the same symbol."""

    def __post_init__(self) -> None:
        if self.period < 2:
            raise ValueError(f"period must be >= 2, got {self.period}")
        if not (self.band_k > 0.0):
            raise ValueError(f"band_k must be > 0, got {self.band_k}")
        if self.rsi_period < 1:
            raise ValueError(f"rsi_period must be >= 1, got {self.rsi_period}")
        if not (0.0 <= self.rsi_low < self.rsi_high <= 100.0):
            raise ValueError(f"rsi_low must be >= 0 and < rsi_high <= 100 (rsi_low={self.rsi_low}, "
                             f"rsi_high={self.rsi_high})")
        if not (self.min_edge_pct >= 0.0):
            raise ValueError(f"min_edge_pct must be >= 0, got {self.min_edge_pct}")
        if self.cooldown_bars < 0:
            raise ValueError(f"cooldown_bars must be >= 0, got {self.cooldown_bars}")


class _SymState:
    __slots__ = ("n", "bands", "rsi", "cooldown")

    def __init__(self, p: BollingerReversionParams) -> None:
        self.n = 0
        self.bands = RollingStats(p.period)
        self.rsi = Rsi(p.rsi_period)
        self.cooldown = 0


class BollingerReversion:
    """See the module docstring for the rule."""

    __slots__ = ("name", "params", "_warmup", "_edge", "_state", "_counter")

    def __init__(self, params: BollingerReversionParams | None = None) -> None:
        self.name = NAME
        self.params = p = params or BollingerReversionParams()
        self._warmup = max(p.period, p.rsi_period + 1)
        self._edge = p.min_edge_pct / 100.0
        self._state: dict[str, _SymState] = {}
        self._counter = SignalCounter(NAME)

    def signal_stats(self) -> SignalStats:
        return self._counter.snapshot()

    def on_candle(self, candle: Candle) -> Signal | None:
        if not candle.closed:
            return None
        st = self._state.get(candle.symbol)
        if st is None:
            st = self._state[candle.symbol] = _SymState(self.params)
        c = candle.close_f
        bands = st.bands
        bands.push(c)
        rsi = st.rsi.update(c)
        st.n += 1
        if st.cooldown:
            st.cooldown -= 1
            return None
        if st.n < self._warmup:
            return None
        std = bands.std
        if std <= 0.0:
            return None
        mean = bands.mean
        z = (c - mean) / std
        p = self.params
        if z < -p.band_k and rsi <= p.rsi_low and mean - c >= self._edge * c:
            direction = Direction.LONG
        elif z > p.band_k and rsi >= p.rsi_high and c - mean >= self._edge * c:
            direction = Direction.SHORT
        else:
            return None
        st.cooldown = p.cooldown_bars
        long = direction is Direction.LONG
        return self._counter.record(Signal(
            strategy=NAME,
            symbol=candle.symbol,
            direction=direction,
            strength=round(min(1.0, abs(z) / (2.0 * p.band_k)), 4),
            reason=(
                f"close {'below lower' if long else 'above upper'} Bollinger({p.period}, {p.band_k:g}) "
                f"at z {z:+.2f}, RSI{p.rsi_period} {rsi:.1f}, mean {abs(mean - c) / c * 100:.3f}% "
                f"{'above' if long else 'below'}"
            ),
            candle_open_time_ms=candle.open_time_ms,
            price=candle.close,
            time_ms=candle.close_time_ms,
        ))


@register(NAME, "Bollinger mean reversion: fade closes outside mean ± k·std when RSI is stretched")
def _factory(raw: dict) -> BollingerReversion:
    return BollingerReversion(parse_params(BollingerReversionParams, NAME, raw))
