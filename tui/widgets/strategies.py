"""The strategies screen's tables: per-strategy record, regimes and switches, ensemble weights,
external signals and the confluences they formed. Rows are built from snapshot fields only."""

from __future__ import annotations

from engine.facade import (
    ConfluenceView,
    EngineSnapshot,
    ExternalSignalView,
    MemberWeightView,
    RegimeSwitchView,
    RegimeView,
    StrategyStatsView,
)
from tui import format as fmt
from tui.widgets.positions import pnl_tone
from tui.widgets.tables import Cell, Col, DeckTable, Row

FLAT = "flat"
"""Shown where a regime puts no strategy in charge."""
REGIME_LABELS = {"trending_up": "trend ↑", "trending_down": "trend ↓", "ranging": "range",
                 "volatility_spike": "vol spike", "crash": "crash", "unknown": "warm-up"}
"""Short names of the detector's regimes (``engine.strategies.regime.Regime``)."""
REGIME_TONES = {"trending_up": "long", "trending_down": "short", "crash": "denied", "volatility_spike": "warn",
                "unknown": "muted"}
"""Regimes coloured like the direction they lean to; a crash red, a spike amber, warming up grey."""
EXTERNAL_TYPES = {"110": "110 Alpha", "112": "112 FOMO+", "113": "113 FOMO"}
"""External message types with their note-002 names (112 is FOMO intensified)."""
OUTCOME_TONES = {"confluence": "accepted", "below_threshold": "warn", "rejected": "denied", "duplicate": "muted",
                 "ignored": "muted", "unused": "muted", "pending": None}
EXTERNAL_SHOWN = 50
"""Newest external signals listed."""
OUTCOME_WIDTH = {False: 56, True: 36}
"""Cells an outcome with its reason may take (wide, compact): longer reasons end in an ellipsis, so
the table never scrolls sideways."""


def clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` cells, ending in ``…`` when cut."""
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def hm(ms: int) -> str:
    """``12:31`` (UTC): regimes change on 1m candle closes, so seconds say nothing."""
    return fmt.hms(ms)[:5]


def percent(value: float | None, places: int = 0) -> str:
    """A share 0..1 as ``62%``."""
    return fmt.DASH if value is None else f"{value * 100:.{places}f}%"


def signed_pct(value: float) -> str:
    """A return in % with its sign: ``+1.25%``."""
    text = f"{value:+.2f}%"
    return "0.00%" if text in ("+0.00%", "-0.00%") else text


# -- per-strategy record -------------------------------------------------------------------------


def stats_rows(snap: EngineSnapshot) -> list[Row]:
    """One row per strategy with a record, plus the active one; the active one is marked, and one
    the guard disabled for its losses says so."""
    stats = {s.name: s for s in snap.strategy_stats}
    if snap.strategy and snap.strategy not in stats:
        stats[snap.strategy] = StrategyStatsView(snap.strategy)
    disabled = set(snap.status.disabled_strategies)
    rows: list[Row] = []
    for name in sorted(stats):
        s = stats[name]
        if name == snap.strategy:
            state = Cell("● active", "accepted")
        elif name in disabled:
            state = Cell("disabled", "denied")
        else:
            state = Cell("")
        rows.append((name, {
            "name": Cell(name),
            "state": state,
            "accepted": Cell(str(s.accepted), right=True),
            "denied": Cell(str(s.denied), "denied" if s.denied else None, right=True),
            "trades": Cell(str(s.trades), right=True),
            "wins": Cell(str(s.wins), right=True),
            "win_rate": Cell(percent(s.win_rate), None if s.trades else "muted", right=True),
            "pnl": Cell(fmt.signed_money(s.net_pnl), pnl_tone(s.net_pnl), right=True),
        }))
    return rows


class StrategyStatsTable(DeckTable):
    """Signals accepted and denied, round trips, wins, win rate and net PnL per strategy."""

    COLUMNS = (
        Col("name", "Strategy"),
        Col("state", "State"),
        Col("accepted", "Accepted", right=True),
        Col("denied", "Denied", right=True),
        Col("trades", "Trades", right=True),
        Col("wins", "Wins", right=True, compact=False),
        Col("win_rate", "Win rate", right=True),
        Col("pnl", "Net PnL", right=True),
    )

    def show(self, snap: EngineSnapshot, compact: bool) -> int:
        rows = stats_rows(snap)
        self.sync(rows, compact=compact)
        return len(rows)


# -- regimes ---------------------------------------------------------------------------------------


def regime_label(regime: str) -> str:
    return REGIME_LABELS.get(regime, regime)


def regime_cell(regime: str) -> Cell:
    return Cell(regime_label(regime), REGIME_TONES.get(regime))


def regime_rows(regimes: tuple[RegimeView, ...], now_ms: int) -> list[Row]:
    rows: list[Row] = []
    for r in regimes:
        rows.append((r.symbol, {
            "symbol": Cell(r.symbol),
            "regime": regime_cell(r.regime),
            "strategy": Cell(r.strategy or FLAT, None if r.strategy else "muted"),
            "since": Cell(fmt.duration(now_ms - r.since_ms) if r.since_ms is not None else fmt.DASH,
                          None if r.since_ms is not None else "muted", right=True),
            "adx": Cell(f"{r.adx:.1f}" if r.adx is not None else fmt.DASH, right=True),
        }))
    return rows


class RegimesTable(DeckTable):
    """Each symbol's regime, the strategy it puts in charge, for how long, and its ADX."""

    COLUMNS = (
        Col("symbol", "Symbol"),
        Col("regime", "Regime"),
        Col("strategy", "Strategy"),
        Col("since", "For", right=True),
        Col("adx", "ADX", right=True),
    )

    def show(self, snap: EngineSnapshot, compact: bool) -> int:
        regimes = snap.regimes or ()
        self.sync(regime_rows(regimes, snap.exchange_time_ms), compact=compact)
        return len(regimes)


def switch_rows(switches: tuple[RegimeSwitchView, ...]) -> list[Row]:
    """Oldest first: the newest switch is at the bottom, like the log."""
    rows: list[Row] = []
    for sw in switches:
        rows.append((f"{sw.symbol}@{sw.time_ms}", {
            "time": Cell(hm(sw.time_ms)),
            "symbol": Cell(sw.symbol),
            "change": Cell(f"{regime_label(sw.previous_regime)} → {regime_label(sw.regime)}",
                           REGIME_TONES.get(sw.regime)),
            "to": Cell(sw.to_strategy or FLAT, None if sw.to_strategy else "muted"),
        }))
    return rows


class SwitchesTable(DeckTable):
    """The last strategy switches (newest at the bottom): the regime change that caused each and
    the strategy put in charge (``flat``: none)."""

    COLUMNS = (
        Col("time", "Time"),
        Col("symbol", "Symbol"),
        Col("change", "Regime change"),
        Col("to", "Strategy now"),
    )

    def show(self, snap: EngineSnapshot, compact: bool) -> int:
        rows = switch_rows(snap.regime_switches)
        if self.sync(rows, compact=compact) and not self.has_focus:
            self.call_after_refresh(self.scroll_end, animate=False, immediate=True, x_axis=False)
        return len(rows)


# -- ensemble ---------------------------------------------------------------------------------------


def weight_bar(weight: float, width: int = 10) -> str:
    """A weight 0..1 as a bar of ``width`` cells: ``██████▌   ``."""
    eighths = round(max(0.0, min(1.0, weight)) * width * 8)
    full, part = divmod(eighths, 8)
    return ("█" * full + (" ▏▎▍▌▋▊▉"[part] if part else "")).ljust(width)


def weight_rows(weights: tuple[MemberWeightView, ...]) -> list[Row]:
    rows: list[Row] = []
    for m in weights:
        rows.append((m.name, {
            "name": Cell(m.name),
            "weight": Cell(f"{m.weight:.2f}", right=True),
            "bar": Cell(weight_bar(m.weight), "accepted"),
            "signals": Cell(str(m.signals), right=True),
            "trades": Cell(str(m.virtual_trades), right=True),
            "win_rate": Cell(percent(m.win_rate), None if m.virtual_trades else "muted", right=True),
            "perf": Cell(signed_pct(m.performance_pct), pnl_tone(m.performance_pct), right=True),
            "total": Cell(signed_pct(m.total_pnl_pct), pnl_tone(m.total_pnl_pct), right=True),
        }))
    return rows


class WeightsTable(DeckTable):
    """Ensemble members: weight, the virtual-trade record it comes from."""

    COLUMNS = (
        Col("name", "Member"),
        Col("weight", "Weight", right=True),
        Col("bar", ""),
        Col("signals", "Signals", right=True, compact=False),
        Col("trades", "Virtual trades", right=True, compact=False),
        Col("win_rate", "Win rate", right=True),
        Col("perf", "Perf/trade", right=True),
        Col("total", "Total", right=True, compact=False),
    )

    def show(self, snap: EngineSnapshot, compact: bool) -> int:
        weights = snap.ensemble_weights or ()
        self.sync(weight_rows(weights), compact=compact)
        return len(weights)


# -- external signals and confluences -----------------------------------------------------------------


def outcome_cell(v: ExternalSignalView, width: int = OUTCOME_WIDTH[False]) -> Cell:
    """The outcome, with the reason or the bad field when there is one (cut to ``width``)."""
    text = v.status.replace("_", " ")
    if v.status in ("rejected", "unused") and v.detail:
        text = f"{text}: {v.detail}"
    return Cell(clip(text, width), OUTCOME_TONES.get(v.status))


def external_rows(signals: tuple[ExternalSignalView, ...], compact: bool = False) -> list[Row]:
    """Oldest first, so the newest is at the bottom."""
    rows: list[Row] = []
    seen: set[str] = set()
    for v in signals:
        key = f"{v.message_id}@{v.time_ms}"
        while key in seen:  # the same id at the same instant (a duplicate sent twice at once)
            key += "+"
        seen.add(key)
        rows.append((key, {
            "time": Cell(fmt.hms(v.time_ms)),
            "type": Cell(EXTERNAL_TYPES.get(v.message_type, v.message_type)),
            "id": Cell(v.message_id, "muted"),
            "symbol": Cell(v.symbol),
            "source": Cell(v.source or fmt.DASH, "muted"),
            "score": Cell(fmt.score(v.score) if v.score is not None else fmt.DASH,
                          None if v.score is not None else "muted", right=True),
            "outcome": outcome_cell(v, OUTCOME_WIDTH[compact]),
        }))
    return rows


class ExternalSignalsTable(DeckTable):
    """The newest external signals and what became of each; follows new rows unless focused."""

    COLUMNS = (
        Col("time", "Time"),
        Col("type", "Type"),
        Col("id", "Id", compact=False),
        Col("symbol", "Symbol"),
        Col("source", "Source", compact=False),
        Col("score", "Score", right=True),
        Col("outcome", "Outcome"),
    )

    def show(self, snap: EngineSnapshot, compact: bool) -> int:
        signals = snap.external_signals[-EXTERNAL_SHOWN:]
        if self.sync(external_rows(signals, compact), compact=compact) and not self.has_focus:
            self.call_after_refresh(self.scroll_end, animate=False, immediate=True, x_axis=False)
        return len(snap.external_signals)


def confluence_rows(confluences: tuple[ConfluenceView, ...], now_ms: int) -> list[Row]:
    rows: list[Row] = []
    for c in confluences:
        rows.append((f"{c.strategy}:{c.symbol}", {
            "symbol": Cell(c.symbol),
            "score": Cell(fmt.score(c.score), "accepted", right=True),
            "pair": Cell(f"{c.fomo} + Alpha {c.alpha}"),
            "gap": Cell(fmt.duration(c.gap_ms), right=True),
            "age": Cell(fmt.duration(now_ms - c.time_ms), right=True),
            "strategy": Cell(c.strategy, "muted"),
        }))
    return rows


class ConfluencesTable(DeckTable):
    """Confluences formed and held until their symbol's next closed candle."""

    COLUMNS = (
        Col("symbol", "Symbol"),
        Col("score", "Score", right=True),
        Col("gap", "Gap", right=True),
        Col("age", "Age", right=True),
        Col("pair", "Pair"),
        Col("strategy", "Held by", compact=False),
    )

    def show(self, snap: EngineSnapshot, compact: bool) -> int:
        self.sync(confluence_rows(snap.confluences, snap.exchange_time_ms), compact=compact)
        return len(snap.confluences)
