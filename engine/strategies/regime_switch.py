"""Regime switching as a strategy: each symbol is traded by the strategy its regime calls for.

Every closed candle goes to a :class:`~engine.strategies.regime.RegimeDetector` and to **every**
member strategy (so each one stays warmed up and can take over at once); only the signal of the
member in charge of the candle's symbol is returned. The map from regime to member is configured
per regime (``flat`` = no strategy); defaults: ``trending_up``/``trending_down`` → ``adx_trend``,
``ranging`` → ``bollinger_reversion``, ``volatility_spike`` → ``donchian_breakout``, ``crash`` and
``unknown`` (warming up) → flat.

Each switch is recorded as a :class:`~engine.strategies.regime.StrategySwitch` carrying the regime
change that caused it, and logged at INFO (``engine.strategies.regime_switch``: symbol, the
candle's UTC minute, previous and new regime with the detector's reason, old and new strategy) —
so it reaches the run's log file and the console's log pane. The switches also wait in an outbox
(the last ``OUTBOX_MAX``) for whoever wants them: :meth:`RegimeSwitch.drain_switches` empties it,
:meth:`recent_switches` shows the last ``recent_switches`` without emptying. Signals keep the member's
name in ``Signal.strategy`` (so per-strategy statistics and loss limits see the member) unless
``attribute_to_member`` is off, and their reason is prefixed with the regime.

A switch never touches open positions: the guard and the order manager own those. A crash regime
only stops new entries from this strategy.

Parameters: the regime map fields below plus every :class:`~engine.strategies.regime.RegimeParams`
field (same names), e.g. ``[strategies.regime_switch] ranging = "flat"  crash_drop_pct = 4``.
Members are built with the user's ``[strategies.<member>]`` overrides (the engine passes every
strategy's table as ``member_params``), else with their defaults.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import deque
from datetime import datetime, timezone
from dataclasses import dataclass
from typing import Any, Mapping

from engine.model import Candle, Signal
from engine.strategies.base import SafeStrategy, Strategy, StrategyError, register
from engine.strategies.members import build_members, forward_external_signal
from engine.strategies.params import parse_params
from engine.strategies.regime import (
    FLAT,
    Regime,
    RegimeChange,
    RegimeDetector,
    RegimeParams,
    RegimeState,
    StrategySwitch,
    StrategySwitcher,
)
from engine.strategies.stats import SignalCounter, SignalStats, signal_stats

NAME = "regime_switch"
OUTBOX_MAX = 10_000  # undrained switches kept (oldest dropped); every switch is logged anyway

log = logging.getLogger(__name__)


def _utc_minute(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")

@dataclass(frozen=True)
class RegimeMapParams:
    unknown: str = FLAT
    """Strategy while a symbol is still warming up."""
    trending_up: str = "adx_trend"
    """Strategy in an up-trend."""
    trending_down: str = "adx_trend"
    """Strategy in a down-trend."""
    ranging: str = "bollinger_reversion"
    """Strategy in a range."""
    volatility_spike: str = "donchian_breakout"
    """Strategy during a volatility spike."""
    crash: str = FLAT
    """Strategy during a crash."""
    attribute_to_member: bool = True
    """Signals carry the member's name (true) or 'regime_switch' (false) in Signal.strategy."""
    recent_switches: int = 100
    """How many recent switches are kept for display."""

    def __post_init__(self) -> None:
        if self.recent_switches < 0:
            raise ValueError(f"recent_switches must be >= 0, got {self.recent_switches}")

    def mapping(self) -> dict[Regime, str | None]:
        return {r: (None if getattr(self, r.value).strip() in ("", FLAT) else getattr(self, r.value).strip())
                for r in Regime}


class RegimeSwitch:
    """See the module docstring."""

    def __init__(self, params: RegimeMapParams | None = None, regime_params: RegimeParams | None = None, *,
                 members: Mapping[str, Strategy] | None = None,
                 member_params: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.name = NAME
        self.params = params or RegimeMapParams()
        self.detector = RegimeDetector(regime_params)
        try:
            self.switcher = StrategySwitcher(self.params.mapping())
        except ValueError as exc:
            raise StrategyError(f"strategies.{NAME}: {exc}") from None
        needed = self.switcher.strategies()
        if members is None:
            self.members: dict[str, Strategy] = build_members(needed, NAME, member_params)
        else:
            missing = [n for n in needed if n not in members]
            if missing:
                raise StrategyError(f"strategies.{NAME}: no member strategy for {missing}")
            self.members = {n: (m if isinstance(m, SafeStrategy) else SafeStrategy(m)) for n, m in members.items()}
        self._member_list = tuple(self.members.items())
        self._outbox: deque[StrategySwitch] = deque(maxlen=OUTBOX_MAX)  # bounded: nobody may drain it
        self._recent: deque[StrategySwitch] = deque(maxlen=self.params.recent_switches or None)
        self.switch_count = 0
        self._counter = SignalCounter(NAME)

    # -- the strategy -----------------------------------------------------------------------------

    def on_candle(self, candle: Candle) -> Signal | None:
        if not candle.closed:
            return None
        change = self.detector.update(candle)
        if change is not None:
            self._on_change(change)
        active = self.switcher.active(candle.symbol)
        out = None
        for name, member in self._member_list:
            sig = member.on_candle(candle)
            if sig is not None and name == active:
                out = sig
        if out is None:
            return None
        regime = self.detector.regime(candle.symbol).value
        label = out.strategy if self.params.attribute_to_member else NAME
        return self._counter.record(dataclasses.replace(out, strategy=label,
                                                        reason=f"[{regime} -> {active}] {out.reason}"))

    def _on_change(self, change: RegimeChange) -> None:
        sw = self.switcher.on_regime_change(change)
        if sw is not None:
            self.switch_count += 1
            log.info("regime switch %s at the candle of %s UTC: regime %s -> %s (%s); strategy %s -> %s",
                     sw.symbol, _utc_minute(change.candle_open_time_ms), sw.previous_regime.value, sw.regime.value,
                     sw.reason, sw.from_strategy or FLAT, sw.to_strategy or FLAT)
            self._outbox.append(sw)
            if self.params.recent_switches:
                self._recent.append(sw)

    def process_signal(self, message_type: Any, message_id: Any, symbol: Any, data: Any, time_ms: Any) -> list[Any]:
        """Forward an external signal to every member that takes them; their results, in member order."""
        return forward_external_signal(self.members.values(), message_type, message_id, symbol, data, time_ms)

    # -- what the engine reads --------------------------------------------------------------------

    def drain_switches(self) -> list[StrategySwitch]:
        """Switches since the last call, oldest first (the outbox is emptied)."""
        out = list(self._outbox)
        self._outbox.clear()
        return out

    def recent_switches(self) -> tuple[StrategySwitch, ...]:
        return tuple(self._recent)

    def regimes(self) -> dict[str, Regime]:
        return self.detector.regimes()

    def regime_state(self, symbol: str) -> RegimeState | None:
        return self.detector.state(symbol)

    def active_by_symbol(self) -> dict[str, str | None]:
        return self.switcher.active_by_symbol()

    def signal_stats(self) -> SignalStats:
        return self._counter.snapshot()

    def member_stats(self) -> dict[str, SignalStats | None]:
        """Each member's own signal counts (including signals that were not passed on)."""
        return {n: signal_stats(m) for n, m in self.members.items()}


_MAP_FIELDS = {f.name for f in dataclasses.fields(RegimeMapParams)}
_REGIME_FIELDS = {f.name for f in dataclasses.fields(RegimeParams)}


def build_regime_switch(raw: Mapping[str, Any] | None = None,
                        member_params: Mapping[str, Mapping[str, Any]] | None = None) -> RegimeSwitch:
    """Build from config (map fields + RegimeParams fields); members from ``member_params`` or defaults."""
    raw = dict(raw or {})
    unknown = set(raw) - _MAP_FIELDS - _REGIME_FIELDS
    if unknown:
        raise StrategyError(f"strategies.{NAME}: unknown parameter(s) {sorted(unknown)}; "
                            f"expected {sorted(_MAP_FIELDS | _REGIME_FIELDS)}")
    mp = parse_params(RegimeMapParams, NAME, {k: v for k, v in raw.items() if k in _MAP_FIELDS})
    rp = parse_params(RegimeParams, NAME, {k: v for k, v in raw.items() if k in _REGIME_FIELDS})
    return RegimeSwitch(mp, rp, member_params=member_params)


@register(NAME, "Regime switching: trend following in trends, mean reversion in ranges, flat in crashes",
          takes_members=True)
def _factory(raw: dict, member_params: Mapping[str, Mapping[str, Any]] | None = None) -> RegimeSwitch:
    return build_regime_switch(raw, member_params)
