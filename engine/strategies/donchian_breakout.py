"""Donchian breakout: trade a close beyond the recent range, confirmed by volume.

Rule, on every closed 1m candle of a symbol, against the ``channel`` candles *before* it (this
candle excluded): H = their highest high, L = their lowest low, V = their mean volume, and ATR
(Wilder, ``atr_period``) as of the previous candle:

* LONG when close > H + ``buffer_atr`` × ATR;
* SHORT when close < L − ``buffer_atr`` × ATR;
* both only when the channel is wide enough to matter, (H − L) / close ≥ ``min_width_pct`` %, and
  the candle's volume ≥ ``volume_mult`` × V (``volume_mult = 0`` turns the volume check off).

No signal until ``channel`` candles have been seen, nor for ``cooldown_bars`` candles after a signal
on the same symbol. Strength = min(1, 0.5 + excess / (2 × ATR)), where excess is how far the close
cleared the channel (0.5 for a bare breakout, 1 when it cleared it by an ATR).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.model import Candle, Direction, Signal
from engine.strategies.base import register
from engine.strategies.indicators import Atr, RollingExtreme, RollingSum
from engine.strategies.params import parse_params
from engine.strategies.stats import SignalCounter, SignalStats

NAME = "donchian_breakout"


@dataclass(frozen=True)
class DonchianBreakoutParams:
    channel: int = 120
    """Lookback of the channel, in 1m candles (the current candle is not part of it): two hours."""
    buffer_atr: float = 0.1
    """The close must clear the channel by this many ATRs (filters bare pokes)."""
    atr_period: int = 14
    """ATR period (Wilder smoothing)."""
    volume_mult: float = 1.5
    """The breakout candle's volume must be at least this multiple of the channel's mean volume; 0 = off."""
    min_width_pct: float = 0.2
    """Skip channels narrower than this % of price (a breakout of a dead range is noise)."""
    cooldown_bars: int = 30
    """Candles to wait after a signal on the same symbol."""

    def __post_init__(self) -> None:
        if self.channel < 2:
            raise ValueError(f"channel must be >= 2, got {self.channel}")
        if not (self.buffer_atr >= 0.0):
            raise ValueError(f"buffer_atr must be >= 0, got {self.buffer_atr}")
        if self.atr_period < 1:
            raise ValueError(f"atr_period must be >= 1, got {self.atr_period}")
        if not (self.volume_mult >= 0.0):
            raise ValueError(f"volume_mult must be >= 0, got {self.volume_mult}")
        if not (self.min_width_pct >= 0.0):
            raise ValueError(f"min_width_pct must be >= 0, got {self.min_width_pct}")
        if self.cooldown_bars < 0:
            raise ValueError(f"cooldown_bars must be >= 0, got {self.cooldown_bars}")


class _SymState:
    __slots__ = ("n", "highs", "lows", "volume", "atr", "cooldown")

    def __init__(self, p: DonchianBreakoutParams) -> None:
        self.n = 0
        self.highs = RollingExtreme(p.channel, 1)
        self.lows = RollingExtreme(p.channel, -1)
        self.volume = RollingSum(p.channel)
        self.atr = Atr(p.atr_period)
        self.cooldown = 0


class DonchianBreakout:
    """See the module docstring for the rule."""

    __slots__ = ("name", "params", "_width", "_use_volume", "_state", "_counter")

    def __init__(self, params: DonchianBreakoutParams | None = None) -> None:
        self.name = NAME
        self.params = p = params or DonchianBreakoutParams()
        self._width = p.min_width_pct / 100.0
        self._use_volume = p.volume_mult > 0.0
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
        h = candle.high_f
        lo = candle.low_f
        c = candle.close_f
        vol = float(candle.volume) if self._use_volume else 0.0
        direction = None
        p = self.params
        if st.n >= p.channel and not st.cooldown:
            hi_ch = st.highs.value
            lo_ch = st.lows.value
            atr = st.atr.value
            vmean = st.volume.mean
            buf = p.buffer_atr * atr
            if c > hi_ch + buf:
                direction = Direction.LONG
                excess = c - hi_ch
            elif c < lo_ch - buf:
                direction = Direction.SHORT
                excess = lo_ch - c
            if direction is not None:
                if hi_ch - lo_ch < self._width * c:
                    direction = None
                elif self._use_volume and vol < p.volume_mult * vmean:
                    direction = None
        elif st.cooldown:
            st.cooldown -= 1
        st.highs.push(h)
        st.lows.push(lo)
        st.volume.push(vol)
        st.atr.update(h, lo, c)
        st.n += 1
        if direction is None:
            return None
        st.cooldown = p.cooldown_bars
        long = direction is Direction.LONG
        strength = min(1.0, 0.5 + excess / (2.0 * atr)) if atr > 0.0 else 1.0
        vol_txt = f", volume {vol / vmean:.1f}x the mean" if self._use_volume and vmean > 0.0 else ""
        return self._counter.record(Signal(
            strategy=NAME,
            symbol=candle.symbol,
            direction=direction,
            strength=round(strength, 4),
            reason=(
                f"close {'above' if long else 'below'} the {p.channel}-candle "
                f"{'high' if long else 'low'} {hi_ch if long else lo_ch:.8g} "
                f"by {excess / atr if atr > 0 else 0:.2f} ATR"
                f"{vol_txt}"
            ),
            candle_open_time_ms=candle.open_time_ms,
            price=candle.close,
            time_ms=candle.close_time_ms,
        ))


@register(NAME, "Donchian breakout: close beyond the prior N-candle high/low, with ATR buffer and volume check")
def _factory(raw: dict) -> DonchianBreakout:
    return DonchianBreakout(parse_params(DonchianBreakoutParams, NAME, raw))
