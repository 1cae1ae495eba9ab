"""Market regimes on closed candles, per symbol, and a regime → strategy switching helper.

:class:`RegimeDetector` classifies each symbol after every closed candle (O(1) per candle) as one
of :class:`Regime`, checking in this order (the first that applies wins):

1. ``crash`` — the close is at least ``crash_drop_pct`` % (3 %) below the close
   ``crash_lookback`` candles (15) earlier. Held for ``crash_hold_bars`` (30) more candles after the
   last candle that met the condition.
2. ``volatility_spike`` — ATR(``atr_period`` = 14) is at least ``spike_ratio`` (2.5) × the baseline
   ATR (an EMA of the true range over ``baseline_period`` = 240 candles, as of the previous
   candle), or this candle's true range alone is at least ``spike_candle_mult`` (6) × that baseline.
   Held for ``spike_hold_bars`` (10) more candles after the last trigger.
3. ``trending_up`` / ``trending_down`` — ADX(``adx_period`` = 20) ≥ ``trend_adx`` (25) and the EMAs
   agree: EMA(``fast_ema`` = 50) above EMA(``slow_ema`` = 200) with the close above the slow EMA
   (up), or the mirror image (down). Once trending, the regime holds while ADX stays at or above
   ``range_adx`` (18) with the same EMA alignment (hysteresis).
4. ``ranging`` — anything else.

Changes between the calm regimes (3 and 4) take effect only after the new classification held for
``confirm_bars`` (10) consecutive candles; entering ``crash`` or ``volatility_spike`` is immediate,
and when a hold ends the regime becomes the current calm classification at once. Until
``warmup`` candles (the longest lookback) have been seen a symbol is ``unknown``.

:class:`StrategySwitcher` maps regimes to strategy names (``None``/``"flat"`` = no strategy) and
turns each :class:`RegimeChange` into a :class:`StrategySwitch` record when the mapped strategy
changes — data the engine can journal and log as is (``as_dict``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Mapping

from engine.model import Candle
from engine.strategies.indicators import Atr, Dmi, Lag


class Regime(str, Enum):
    UNKNOWN = "unknown"  # still warming up
    TRENDING_UP = "trending_up"
    TRENDING_DOWN = "trending_down"
    RANGING = "ranging"
    VOLATILITY_SPIKE = "volatility_spike"
    CRASH = "crash"


_CALM = (Regime.TRENDING_UP, Regime.TRENDING_DOWN, Regime.RANGING)


@dataclass(frozen=True)
class RegimeParams:
    adx_period: int = 20
    """DMI/ADX period (Wilder), in 1m candles."""
    trend_adx: float = 25.0
    """ADX at or above this (with EMA alignment) starts a trend."""
    range_adx: float = 18.0
    """A trend lasts while ADX stays at or above this (hysteresis; <= trend_adx)."""
    fast_ema: int = 50
    """Fast EMA period for the trend direction."""
    slow_ema: int = 200
    """Slow EMA period for the trend direction."""
    atr_period: int = 14
    """Short ATR period (Wilder) compared with the baseline."""
    baseline_period: int = 240
    """Baseline volatility: EMA of the true range over this many candles (4 hours)."""
    spike_ratio: float = 2.5
    """ATR / baseline at or above this is a volatility spike."""
    spike_candle_mult: float = 6.0
    """One candle's true range at or above this × baseline is a volatility spike."""
    crash_lookback: int = 15
    """Crash window, in candles."""
    crash_drop_pct: float = 3.0
    """A close this % or more below the close crash_lookback candles ago is a crash."""
    crash_hold_bars: int = 30
    """Candles the crash regime lasts after the last crash candle."""
    spike_hold_bars: int = 10
    """Candles the spike regime lasts after the last spike candle."""
    confirm_bars: int = 10
    """Consecutive candles a new calm regime (trend/range) must hold before it is adopted."""

    def __post_init__(self) -> None:
        for name in ("adx_period", "fast_ema", "atr_period", "baseline_period", "crash_lookback", "confirm_bars"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.adx_period < 2:
            raise ValueError(f"adx_period must be >= 2, got {self.adx_period}")
        if self.slow_ema <= self.fast_ema:
            raise ValueError(f"slow_ema must be > fast_ema (fast_ema={self.fast_ema}, slow_ema={self.slow_ema})")
        if not (0.0 < self.range_adx <= self.trend_adx < 100.0):
            raise ValueError(f"need 0 < range_adx <= trend_adx < 100 (range_adx={self.range_adx}, "
                             f"trend_adx={self.trend_adx})")
        if not (self.spike_ratio > 1.0):
            raise ValueError(f"spike_ratio must be > 1, got {self.spike_ratio}")
        if not (self.spike_candle_mult > 1.0):
            raise ValueError(f"spike_candle_mult must be > 1, got {self.spike_candle_mult}")
        if not (0.0 < self.crash_drop_pct < 100.0):
            raise ValueError(f"crash_drop_pct must be > 0 and < 100, got {self.crash_drop_pct}")
        if self.crash_hold_bars < 0:
            raise ValueError(f"crash_hold_bars must be >= 0, got {self.crash_hold_bars}")
        if self.spike_hold_bars < 0:
            raise ValueError(f"spike_hold_bars must be >= 0, got {self.spike_hold_bars}")

    @property
    def warmup(self) -> int:
        """Candles before a symbol leaves ``unknown``: the longest lookback."""
        return max(self.slow_ema, self.baseline_period, 3 * self.adx_period, self.crash_lookback + 1)


@dataclass(frozen=True, slots=True)
class RegimeChange:
    """A symbol's regime changed on the candle that closed at ``time_ms``."""

    symbol: str
    previous: Regime
    regime: Regime
    time_ms: int
    candle_open_time_ms: int
    reason: str
    adx: float
    atr_ratio: float  # ATR / baseline ATR
    change_pct: float  # close vs crash_lookback candles earlier, %

    def as_dict(self) -> dict[str, Any]:
        return {"symbol": self.symbol, "previous": self.previous.value, "regime": self.regime.value,
                "time_ms": self.time_ms, "candle_open_time_ms": self.candle_open_time_ms, "reason": self.reason,
                "adx": round(self.adx, 4), "atr_ratio": round(self.atr_ratio, 4),
                "change_pct": round(self.change_pct, 4)}


@dataclass(frozen=True, slots=True)
class RegimeState:
    """A symbol's current regime and the figures behind it (for display)."""

    symbol: str
    regime: Regime
    since_ms: int | None  # close time of the candle that started it; None while unknown
    candles: int
    adx: float
    plus_di: float
    minus_di: float
    atr_ratio: float
    change_pct: float


class _SymState:
    __slots__ = ("n", "dmi", "atr", "base", "fast", "slow", "lag", "regime", "since_ms", "candidate",
                 "candidate_n", "crash_left", "spike_left", "atr_ratio", "change_pct")

    def __init__(self, p: RegimeParams) -> None:
        self.n = 0
        self.dmi = Dmi(p.adx_period)
        self.atr = Atr(p.atr_period)
        self.base = 0.0
        self.fast = 0.0
        self.slow = 0.0
        self.lag = Lag(p.crash_lookback)
        self.regime = Regime.UNKNOWN
        self.since_ms: int | None = None
        self.candidate = Regime.UNKNOWN
        self.candidate_n = 0
        self.crash_left = 0
        self.spike_left = 0
        self.atr_ratio = 0.0
        self.change_pct = 0.0


class RegimeDetector:
    """Per-symbol regime classification; see the module docstring for the rules and thresholds."""

    def __init__(self, params: RegimeParams | None = None) -> None:
        self.params = p = params or RegimeParams()
        self._af = 2.0 / (p.fast_ema + 1)
        self._as = 2.0 / (p.slow_ema + 1)
        self._ab = 2.0 / (p.baseline_period + 1)
        self._warmup = p.warmup
        self._state: dict[str, _SymState] = {}

    def regime(self, symbol: str) -> Regime:
        st = self._state.get(symbol)
        return st.regime if st is not None else Regime.UNKNOWN

    def regimes(self) -> dict[str, Regime]:
        return {s: st.regime for s, st in sorted(self._state.items())}

    def state(self, symbol: str) -> RegimeState | None:
        st = self._state.get(symbol)
        if st is None:
            return None
        return RegimeState(symbol, st.regime, st.since_ms, st.n, st.dmi.adx, st.dmi.plus_di, st.dmi.minus_di,
                           st.atr_ratio, st.change_pct)

    def update(self, candle: Candle) -> RegimeChange | None:
        """Classify after this closed candle; the change, if the symbol's regime changed."""
        if not candle.closed:
            return None
        st = self._state.get(candle.symbol)
        if st is None:
            st = self._state[candle.symbol] = _SymState(self.params)
        p = self.params
        h, lo, c = candle.high_f, candle.low_f, candle.close_f
        st.dmi.update(h, lo, c)
        atr = st.atr.update(h, lo, c)
        tr = st.atr.tr
        base_prev = st.base
        old = st.lag.push(c)
        n = st.n
        st.n = n + 1
        if n == 0:
            st.base = tr
            st.fast = st.slow = c
            return None
        st.base = base_prev + (tr - base_prev) * self._ab
        fast = st.fast = st.fast + (c - st.fast) * self._af
        slow = st.slow = st.slow + (c - st.slow) * self._as
        st.atr_ratio = ratio = atr / base_prev if base_prev > 0.0 else 0.0
        st.change_pct = change = (c / old - 1.0) * 100.0 if old else 0.0
        if st.n < self._warmup:
            return None
        adx = st.dmi.adx
        reason = ""
        # 1. crash
        if old is not None and change <= -p.crash_drop_pct:
            st.crash_left = p.crash_hold_bars
            crash = True
            reason = f"close {change:+.2f}% over {p.crash_lookback} candles (<= -{p.crash_drop_pct:g}%)"
        elif st.crash_left > 0:
            st.crash_left -= 1
            crash = True
            reason = f"crash held ({st.crash_left} more candles without a {p.crash_drop_pct:g}% drop to clear)"
        else:
            crash = False
        # 2. volatility spike (tracked even during a crash so its hold runs in parallel)
        spike_now = False
        if base_prev > 0.0:
            if ratio >= p.spike_ratio:
                spike_now = True
                spike_reason = f"ATR{p.atr_period}/baseline {ratio:.2f} >= {p.spike_ratio:g}"
            elif tr >= p.spike_candle_mult * base_prev:
                spike_now = True
                spike_reason = f"candle range {tr / base_prev:.1f}x baseline ATR >= {p.spike_candle_mult:g}"
        if spike_now:
            st.spike_left = p.spike_hold_bars
            spike = True
        elif st.spike_left > 0:
            st.spike_left -= 1
            spike = True
            spike_reason = f"volatility spike held ({st.spike_left} more calm candles to clear)"
        else:
            spike = False
        if crash:
            new = Regime.CRASH
        elif spike:
            new = Regime.VOLATILITY_SPIKE
            reason = spike_reason
        else:
            # 3./4. calm regimes
            up = fast > slow and c > slow
            down = fast < slow and c < slow
            cur = st.regime
            if adx >= p.trend_adx and up:
                calm = Regime.TRENDING_UP
                reason = (f"ADX {adx:.1f} >= {p.trend_adx:g}, EMA{p.fast_ema} > EMA{p.slow_ema}, "
                          f"close above EMA{p.slow_ema}")
            elif adx >= p.trend_adx and down:
                calm = Regime.TRENDING_DOWN
                reason = (f"ADX {adx:.1f} >= {p.trend_adx:g}, EMA{p.fast_ema} < EMA{p.slow_ema}, "
                          f"close below EMA{p.slow_ema}")
            elif cur is Regime.TRENDING_UP and up and adx >= p.range_adx:
                calm = cur
            elif cur is Regime.TRENDING_DOWN and down and adx >= p.range_adx:
                calm = cur
            else:
                calm = Regime.RANGING
                reason = (f"ADX {adx:.1f} < {p.trend_adx:g}" if adx < p.trend_adx
                          else f"ADX {adx:.1f} but EMA{p.fast_ema}/EMA{p.slow_ema}/close not aligned")
            if cur not in _CALM or calm is cur:
                new = calm
                st.candidate_n = 0
            else:
                if calm is st.candidate:
                    st.candidate_n += 1
                else:
                    st.candidate = calm
                    st.candidate_n = 1
                if st.candidate_n >= p.confirm_bars:
                    new = calm
                    reason += f" (held {st.candidate_n} candles)"
                    st.candidate_n = 0
                else:
                    new = cur
        if new is st.regime:
            return None
        prev = st.regime
        st.regime = new
        st.since_ms = candle.close_time_ms
        st.candidate_n = 0
        return RegimeChange(candle.symbol, prev, new, candle.close_time_ms, candle.open_time_ms,
                            reason, adx, ratio, change)


# -- regime → strategy -------------------------------------------------------------------------------

FLAT = "flat"


def default_regime_map() -> dict[Regime, str | None]:
    """Trend following in trends, mean reversion in ranges, breakouts in volatility spikes, flat in
    crashes and while warming up."""
    return {
        Regime.UNKNOWN: None,
        Regime.TRENDING_UP: "adx_trend",
        Regime.TRENDING_DOWN: "adx_trend",
        Regime.RANGING: "bollinger_reversion",
        Regime.VOLATILITY_SPIKE: "donchian_breakout",
        Regime.CRASH: None,
    }


@dataclass(frozen=True, slots=True)
class StrategySwitch:
    """The strategy in charge of a symbol changed because its regime changed."""

    symbol: str
    time_ms: int
    regime: Regime
    previous_regime: Regime
    from_strategy: str | None  # None = flat
    to_strategy: str | None  # None = flat
    reason: str  # the regime change's reason

    def describe(self) -> str:
        return (f"{self.symbol}: {self.previous_regime.value} -> {self.regime.value} ({self.reason}); "
                f"strategy {self.from_strategy or FLAT} -> {self.to_strategy or FLAT}")

    def as_dict(self) -> dict[str, Any]:
        return {"symbol": self.symbol, "time_ms": self.time_ms, "regime": self.regime.value,
                "previous_regime": self.previous_regime.value, "from_strategy": self.from_strategy,
                "to_strategy": self.to_strategy, "reason": self.reason}


class StrategySwitcher:
    """Keeps, per symbol, which strategy its regime calls for, and reports each switch.

    ``mapping`` maps every :class:`Regime` (or its value) to a strategy name, or to ``None`` /
    ``"flat"`` for no strategy; regimes left out map to flat. Pure bookkeeping: it never builds or
    calls strategies.
    """

    def __init__(self, mapping: Mapping[Regime | str, str | None] | None = None) -> None:
        src = default_regime_map() if mapping is None else mapping
        self.mapping: dict[Regime, str | None] = {r: None for r in Regime}
        for key, name in src.items():
            try:
                regime = Regime(key)
            except ValueError:
                raise ValueError(f"unknown regime {key!r}; expected one of {[r.value for r in Regime]}") from None
            if name is not None and not isinstance(name, str):
                raise ValueError(f"{regime.value}: expected a strategy name or 'flat', got {name!r}")
            name = name.strip() if isinstance(name, str) else None
            self.mapping[regime] = None if not name or name == FLAT else name
        self._active: dict[str, str | None] = {}

    def strategy_for(self, regime: Regime) -> str | None:
        return self.mapping[regime]

    def strategies(self) -> tuple[str, ...]:
        """Every strategy name the map can select, sorted."""
        return tuple(sorted({n for n in self.mapping.values() if n is not None}))

    def active(self, symbol: str) -> str | None:
        """The strategy in charge of ``symbol`` now (``None`` = flat, also before its first regime)."""
        return self._active.get(symbol, self.mapping[Regime.UNKNOWN])

    def active_by_symbol(self) -> dict[str, str | None]:
        return dict(sorted(self._active.items()))

    def on_regime_change(self, change: RegimeChange) -> StrategySwitch | None:
        """Apply a regime change; the switch if the symbol's strategy changed."""
        old = self.active(change.symbol)
        new = self.mapping[change.regime]
        self._active[change.symbol] = new
        if new == old:
            return None
        return StrategySwitch(change.symbol, change.time_ms, change.regime, change.previous, old, new, change.reason)
