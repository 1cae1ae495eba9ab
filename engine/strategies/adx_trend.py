"""ADX trend following: enter when a strong, directional trend begins.

Rule, on every closed 1m candle of a symbol (Wilder's DMI over ``period`` candles, an EMA of the
close over ``trend`` candles):

* the symbol is **in an up-trend state** when ADX ≥ ``adx_min`` (the trend is strong),
  +DI − −DI ≥ ``di_margin`` (up-moves dominate) and the close is above the trend EMA;
* it is **in a down-trend state** on the mirror image (−DI − +DI ≥ ``di_margin``, close below);
* a LONG (SHORT) signal is emitted on the candle where the symbol *enters* the up (down) state —
  whether because ADX rose through ``adx_min`` or because the DIs crossed while ADX was high. Staying
  in the state emits nothing; leaving and re-entering emits again.

No signal during the warm-up (``max(3 × period, trend)`` candles) or for ``cooldown_bars`` candles
after a signal on the same symbol (the state is still tracked during the cooldown, so a trend that
began inside it is not signalled late).

Strength = min(1, ADX / 50). Indicator arithmetic is float; the signal's price is the candle's exact
Decimal close.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.model import Candle, Direction, Signal
from engine.strategies.base import register
from engine.strategies.indicators import Dmi
from engine.strategies.params import parse_params
from engine.strategies.stats import SignalCounter, SignalStats

NAME = "adx_trend"


@dataclass(frozen=True)
class AdxTrendParams:
    period: int = 14
    """DMI/ADX period (Wilder smoothing), in 1m candles."""
    adx_min: float = 30.0
    """ADX at or above this counts as a trend (classic daily-chart threshold is 20–25; 1m is noisier)."""
    di_margin: float = 2.0
    """The leading directional index must exceed the other by at least this many points."""
    trend: int = 100
    """Trend filter EMA period: longs only above it, shorts only below it."""
    cooldown_bars: int = 60
    """Candles to wait after a signal on the same symbol."""

    def __post_init__(self) -> None:
        if self.period < 2:
            raise ValueError(f"period must be >= 2, got {self.period}")
        if not (0.0 < self.adx_min < 100.0):
            raise ValueError(f"adx_min must be > 0 and < 100, got {self.adx_min}")
        if not (0.0 <= self.di_margin < 100.0):
            raise ValueError(f"di_margin must be >= 0 and < 100, got {self.di_margin}")
        if self.trend < 1:
            raise ValueError(f"trend must be >= 1, got {self.trend}")
        if self.cooldown_bars < 0:
            raise ValueError(f"cooldown_bars must be >= 0, got {self.cooldown_bars}")


class _SymState:
    __slots__ = ("n", "dmi", "ema", "state", "cooldown")

    def __init__(self, period: int) -> None:
        self.n = 0
        self.dmi = Dmi(period)
        self.ema = 0.0
        self.state = 0  # +1 up-trend state, -1 down-trend state, 0 neither
        self.cooldown = 0


class AdxTrend:
    """See the module docstring for the rule."""

    __slots__ = ("name", "params", "_alpha", "_warmup", "_state", "_counter")

    def __init__(self, params: AdxTrendParams | None = None) -> None:
        self.name = NAME
        self.params = p = params or AdxTrendParams()
        self._alpha = 2.0 / (p.trend + 1)
        self._warmup = max(3 * p.period, p.trend)
        self._state: dict[str, _SymState] = {}
        self._counter = SignalCounter(NAME)

    def signal_stats(self) -> SignalStats:
        return self._counter.snapshot()

    def on_candle(self, candle: Candle) -> Signal | None:
        if not candle.closed:
            return None
        st = self._state.get(candle.symbol)
        if st is None:
            st = self._state[candle.symbol] = _SymState(self.params.period)
        c = candle.close_f
        dmi = st.dmi
        dmi.update(candle.high_f, candle.low_f, c)
        n = st.n
        st.n = n + 1
        if n == 0:
            st.ema = c
            return None
        ema = st.ema = st.ema + (c - st.ema) * self._alpha
        p = self.params
        adx = dmi.adx
        spread = dmi.plus_di - dmi.minus_di
        if adx >= p.adx_min and spread >= p.di_margin and c > ema:
            state = 1
        elif adx >= p.adx_min and -spread >= p.di_margin and c < ema:
            state = -1
        else:
            state = 0
        prev = st.state
        st.state = state
        if st.cooldown:
            st.cooldown -= 1
            return None
        if state == 0 or state == prev or n < self._warmup:
            return None
        st.cooldown = p.cooldown_bars
        direction = Direction.LONG if state > 0 else Direction.SHORT
        up = state > 0
        return self._counter.record(Signal(
            strategy=NAME,
            symbol=candle.symbol,
            direction=direction,
            strength=round(min(1.0, adx / 50.0), 4),
            reason=(
                f"ADX{p.period} {adx:.1f} >= {p.adx_min:g}, "
                f"{'+DI' if up else '-DI'} {dmi.plus_di if up else dmi.minus_di:.1f} leads "
                f"{'-DI' if up else '+DI'} {dmi.minus_di if up else dmi.plus_di:.1f}, "
                f"close {'above' if up else 'below'} EMA{p.trend}"
            ),
            candle_open_time_ms=candle.open_time_ms,
            price=candle.close,
            time_ms=candle.close_time_ms,
        ))


@register(NAME, "ADX trend following: enter when ADX >= adx_min with the DIs and an EMA filter agreeing")
def _factory(raw: dict) -> AdxTrend:
    return AdxTrend(parse_params(AdxTrendParams, NAME, raw))
