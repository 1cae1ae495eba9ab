"""The strategies view: each strategy's record, regimes and switches or ensemble weights, and the
external signals with the confluences they formed (issue 7)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer

from engine.facade import EngineSnapshot
from tui.screens.base import BACK, DeckScreen, changed
from tui.widgets.header import HeaderBar
from tui.widgets.strategies import (
    ConfluencesTable,
    ExternalSignalsTable,
    RegimesTable,
    StrategyStatsTable,
    SwitchesTable,
    WeightsTable,
)
from tui.widgets.tables import Pane


class StrategiesScreen(DeckScreen):
    """Per-strategy statistics and what the active strategy is thinking.

    The regime panes show only while the active strategy switches by regime, the weights pane only
    while it is an ensemble; the external-signal panes always (every strategy that takes external
    signals sees them, active or not).
    """

    BINDINGS = [BACK]

    def __init__(self) -> None:
        super().__init__(id="strategies-screen")

    def compose(self) -> ComposeResult:
        yield HeaderBar(id="strategies-header")
        with Vertical(id="strategies-body"):
            yield Pane("Strategies", StrategyStatsTable(id="strategy-stats"), empty="no signals yet",
                       id="stats-pane")
            with Horizontal(id="regime-row"):
                yield Pane("Regimes", RegimesTable(id="regimes"), empty="no closed candles yet", id="regimes-pane")
                yield Pane("Regime switches", SwitchesTable(id="switches"), empty="no switches yet",
                           id="switches-pane")
            yield Pane("Ensemble weights", WeightsTable(id="weights"), empty="no members", id="weights-pane")
            yield Pane("External signals", ExternalSignalsTable(id="external"),
                       empty="none yet — try: perpdeck signal --simulate", id="external-pane")
            yield Pane("Confluences held", ConfluencesTable(id="confluences"), empty="none held",
                       id="confluences-pane")
        yield Footer()

    def paint(self, old: EngineSnapshot | None, snap: EngineSnapshot) -> None:
        compact = self.compact
        if changed(old, snap, "strategy_stats", "strategy", "status"):
            self._pane("stats-pane").show_count(self.query_one(StrategyStatsTable).show(snap, compact))
        has_regimes, has_weights = snap.regimes is not None, snap.ensemble_weights is not None
        if old is None or (old.regimes is not None) != has_regimes:
            self.query_one("#regime-row").display = has_regimes
        if old is None or (old.ensemble_weights is not None) != has_weights:
            self._pane("weights-pane").display = has_weights
        if has_regimes and changed(old, snap, "regimes", "exchange_time_ms"):
            self._pane("regimes-pane").show_count(self.query_one(RegimesTable).show(snap, compact))
        if has_regimes and changed(old, snap, "regime_switches"):
            self._pane("switches-pane").show_count(self.query_one(SwitchesTable).show(snap, compact))
        if has_weights and changed(old, snap, "ensemble_weights"):
            self._pane("weights-pane").show_count(self.query_one(WeightsTable).show(snap, compact))
        if changed(old, snap, "external_signals"):
            self._pane("external-pane").show_count(self.query_one(ExternalSignalsTable).show(snap, compact))
        if changed(old, snap, "confluences", "exchange_time_ms"):
            self._pane("confluences-pane").show_count(self.query_one(ConfluencesTable).show(snap, compact))

    def _pane(self, id: str) -> Pane:
        return self.query_one(f"#{id}", Pane)
