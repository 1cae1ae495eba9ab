"""Ensemble: members vote, weighted by how their own recent signals would have done.

Every closed candle goes to every member strategy. Each member's signals are also followed as
**virtual trades** (no orders — bookkeeping only): a signal opens one at the signal candle's close;
it is closed at the close of the ``horizon_bars``-th candle *after* it (or earlier, at the close of
the candle on which the same member signals again on that symbol). Its net return in % is
``direction × (exit / entry − 1) × 100 − cost_pct``. A member's **performance** is the mean net
return of its last ``window_trades`` closed virtual trades, shrunk towards 0 by ``prior_trades``
pseudo-trades of zero return: ``perf_m = Σ window returns / (trades in window + prior_trades)`` — so
one lucky trade does not swing the weights (0 before it has any).

Weights are a softmax of performance: ``w_m = exp(sensitivity × perf_m) / Σ_j exp(sensitivity ×
perf_j)`` — equal at the start, shifting towards members whose signals have been paying. Outcomes
only ever use candles after the signal, and the weights used on a candle include only virtual
trades closed by that candle: there is no look-ahead.

Voting: a member's signal is a vote of +1 (LONG) or −1 (SHORT) for its symbol that stays valid for
``vote_ttl_bars`` candles (1 = that candle only). Member strengths are not used: they are not on a
common scale. On a candle where at least one member signalled, ``net = Σ w_m × vote_m`` over valid
votes; if ``|net| ≥ threshold`` the ensemble signals in the direction of ``net`` with strength
``min(1, |net|)``, then stays quiet on that symbol for ``cooldown_bars`` candles. With equal weights
a lone member (weight 1/N) can only fire when 1/N ≥ threshold; otherwise it needs agreement, or a
weight it earned.

Weights are exposed for display by :meth:`Ensemble.weights` and :meth:`Ensemble.member_stats`.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Mapping

from engine.model import Candle, Direction, Signal
from engine.strategies.base import SafeStrategy, Strategy, StrategyError, register
from engine.strategies.params import parse_params, split_names
from engine.strategies.members import build_members, forward_external_signal
from engine.strategies.stats import SignalCounter, SignalStats

NAME = "ensemble"


@dataclass(frozen=True)
class EnsembleParams:
    members: str = "ema_trend,adx_trend,bollinger_reversion,donchian_breakout"
    """Comma-separated member strategy names (a TOML list works too)."""
    horizon_bars: int = 30
    """A virtual trade closes this many candles after its signal."""
    window_trades: int = 20
    """Trailing window: a member's performance uses its last this-many closed virtual trades."""
    prior_trades: int = 5
    """Zero-return pseudo-trades added to the window's count (shrinks performance of thin records)."""
    cost_pct: float = 0.1
    """Round-trip cost (fees + slippage) charged to each virtual trade, in %."""
    sensitivity: float = 2.0
    """Softmax sharpness: weights ∝ exp(sensitivity × performance in %). 0 = always equal weights."""
    threshold: float = 0.3
    """|weighted vote| needed to signal (0 < threshold <= 1)."""
    vote_ttl_bars: int = 3
    """Candles a member's vote stays valid (1 = only the candle it was cast on)."""
    cooldown_bars: int = 15
    """Candles to wait after an ensemble signal on the same symbol."""

    def __post_init__(self) -> None:
        names = split_names(self.members)
        if not names:
            raise ValueError("members must name at least one strategy")
        if len(set(names)) != len(names):
            raise ValueError(f"members must not repeat a name, got {self.members!r}")
        if self.horizon_bars < 1:
            raise ValueError(f"horizon_bars must be >= 1, got {self.horizon_bars}")
        if self.window_trades < 1:
            raise ValueError(f"window_trades must be >= 1, got {self.window_trades}")
        if self.prior_trades < 0:
            raise ValueError(f"prior_trades must be >= 0, got {self.prior_trades}")
        if not (self.cost_pct >= 0.0):
            raise ValueError(f"cost_pct must be >= 0, got {self.cost_pct}")
        if not (0.0 <= self.sensitivity <= 100.0):
            raise ValueError(f"sensitivity must be between 0 and 100, got {self.sensitivity}")
        if not (0.0 < self.threshold <= 1.0):
            raise ValueError(f"threshold must be > 0 and <= 1, got {self.threshold}")
        if self.vote_ttl_bars < 1:
            raise ValueError(f"vote_ttl_bars must be >= 1, got {self.vote_ttl_bars}")
        if self.cooldown_bars < 0:
            raise ValueError(f"cooldown_bars must be >= 0, got {self.cooldown_bars}")

    @property
    def member_names(self) -> tuple[str, ...]:
        return split_names(self.members)


@dataclass(frozen=True, slots=True)
class MemberStats:
    """One member's standing, for display."""

    name: str
    weight: float
    signals: int
    virtual_trades: int  # closed virtual trades, all time
    wins: int  # closed virtual trades with a positive net return, all time
    performance: float  # the shrunk mean net return (%) the weight is computed from
    window_pnl_pct: float  # net return sum over the trailing window
    total_pnl_pct: float  # net return sum, all time
    open_virtual: int  # virtual trades still open

    @property
    def win_rate(self) -> float | None:
        return self.wins / self.virtual_trades if self.virtual_trades else None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "weight": round(self.weight, 6), "signals": self.signals,
                "virtual_trades": self.virtual_trades, "wins": self.wins,
                "performance": round(self.performance, 6), "window_pnl_pct": round(self.window_pnl_pct, 6),
                "total_pnl_pct": round(self.total_pnl_pct, 6),
                "open_virtual": self.open_virtual}


class _Member:
    __slots__ = ("name", "strategy", "fn", "signals", "closed", "wins", "window", "window_sum", "total", "open")

    def __init__(self, name: str, strategy: Strategy, window: int) -> None:
        self.name = name
        self.strategy = strategy
        self.fn = strategy.on_candle
        self.signals = 0
        self.closed = 0
        self.wins = 0
        self.window: deque[float] = deque(maxlen=window)
        self.window_sum = 0.0
        self.total = 0.0
        # symbol -> [sign, entry price, candles left]
        self.open: dict[str, list] = {}

    def close(self, ret: float) -> None:
        w = self.window
        if len(w) == w.maxlen:
            self.window_sum -= w[0]
        w.append(ret)
        self.window_sum += ret
        self.closed += 1
        self.total += ret
        if ret > 0.0:
            self.wins += 1


class _SymState:
    __slots__ = ("n", "votes", "cooldown")

    def __init__(self) -> None:
        self.n = 0
        self.votes: dict[str, tuple[int, int]] = {}  # member -> (sign, last valid candle index)
        self.cooldown = 0


class Ensemble:
    """See the module docstring."""

    def __init__(self, params: EnsembleParams | None = None, *, members: Mapping[str, Strategy] | None = None,
                 member_params: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.name = NAME
        self.params = p = params or EnsembleParams()
        names = p.member_names
        if members is None:
            built = build_members(names, NAME, member_params)
        else:
            missing = [n for n in names if n not in members]
            if missing:
                raise StrategyError(f"strategies.{NAME}: no member strategy for {missing}")
            built = {n: (members[n] if isinstance(members[n], SafeStrategy) else SafeStrategy(members[n]))
                     for n in names}
        self._members = tuple(_Member(n, built[n], p.window_trades) for n in names)
        self._by_name = {m.name: m for m in self._members}
        self._state: dict[str, _SymState] = {}
        self._weights: dict[str, float] | None = None
        self._counter = SignalCounter(NAME)

    # -- weights ----------------------------------------------------------------------------------

    def weights(self) -> dict[str, float]:
        """Current member weights (sum 1), in member order."""
        if self._weights is None:
            k = self.params.sensitivity
            perf = [k * self._performance(m) for m in self._members]
            top = max(perf)
            ex = [math.exp(x - top) for x in perf]
            s = sum(ex)
            self._weights = {m.name: e / s for m, e in zip(self._members, ex)}
        return self._weights

    def _performance(self, m: _Member) -> float:
        d = len(m.window) + self.params.prior_trades
        return m.window_sum / d if d else 0.0

    def member_stats(self) -> tuple[MemberStats, ...]:
        """Each member's weight, performance and virtual-trade record, in member order."""
        w = self.weights()
        return tuple(MemberStats(m.name, w[m.name], m.signals, m.closed, m.wins, self._performance(m), m.window_sum,
                                 m.total, len(m.open)) for m in self._members)

    def signal_stats(self) -> SignalStats:
        return self._counter.snapshot()

    # -- the strategy -----------------------------------------------------------------------------

    def on_candle(self, candle: Candle) -> Signal | None:
        if not candle.closed:
            return None
        sym = candle.symbol
        st = self._state.get(sym)
        if st is None:
            st = self._state[sym] = _SymState()
        n = st.n
        st.n = n + 1
        c = candle.close_f
        p = self.params
        cost = p.cost_pct
        # 1. follow the virtual trades opened on earlier candles of this symbol
        for m in self._members:
            vt = m.open.get(sym)
            if vt is not None:
                vt[2] -= 1
                if vt[2] <= 0:
                    del m.open[sym]
                    m.close(vt[0] * (c / vt[1] - 1.0) * 100.0 - cost)
                    self._weights = None
        # 2. the members see the candle
        fresh: list[tuple[_Member, Signal]] = []
        for m in self._members:
            sig = m.fn(candle)
            if sig is not None:
                fresh.append((m, sig))
        if not fresh:
            if st.cooldown:
                st.cooldown -= 1
            return None
        # 3. votes, weights from outcomes known so far, 4. the combined decision
        votes = st.votes
        for m, sig in fresh:
            m.signals += 1
            votes[m.name] = (sig.direction.sign, n + p.vote_ttl_bars - 1)
        w = self.weights()
        net = 0.0
        for name, (sign, until) in list(votes.items()):
            if until < n:
                del votes[name]
            else:
                net += w[name] * sign
        # 5. open the new virtual trades at this close (after the decision: no look-ahead)
        for m, sig in fresh:
            vt = m.open.get(sym)
            if vt is not None:
                m.close(vt[0] * (c / vt[1] - 1.0) * 100.0 - cost)
                self._weights = None
            if c > 0.0:
                m.open[sym] = [sig.direction.sign, c, p.horizon_bars]
        if st.cooldown:
            st.cooldown -= 1
            return None
        if abs(net) < p.threshold:
            return None
        st.cooldown = p.cooldown_bars
        votes.clear()
        direction = Direction.LONG if net > 0 else Direction.SHORT
        parts = ", ".join(f"{m.name} {sig.direction.value} w{w[m.name]:.2f}" for m, sig in fresh)
        return self._counter.record(Signal(
            strategy=NAME,
            symbol=sym,
            direction=direction,
            strength=round(min(1.0, abs(net)), 4),
            reason=f"weighted vote {net:+.2f} (threshold {p.threshold:g}): {parts}",
            candle_open_time_ms=candle.open_time_ms,
            price=candle.close,
            time_ms=candle.close_time_ms,
        ))

    def process_signal(self, message_type: Any, message_id: Any, symbol: Any, data: Any, time_ms: Any) -> list[Any]:
        """Forward an external signal to every member that takes them; their results, in member order."""
        return forward_external_signal((m.strategy for m in self._members), message_type, message_id, symbol, data,
                                       time_ms)


@register(NAME, "Ensemble: members' votes weighted by their recent out-of-sample virtual PnL", takes_members=True)
def _factory(raw: dict, member_params: Mapping[str, Mapping[str, Any]] | None = None) -> Ensemble:
    return Ensemble(parse_params(EnsembleParams, NAME, raw), member_params=member_params)
