"""Screenshots of the console over the deterministic fake (baselines under __snapshots__/).

Regenerate with ``pytest tests/tui --snapshot-update`` after an intended visual change and
review the SVGs. Nothing on screen comes from the wall clock: all times are the fake's.
"""

from __future__ import annotations

from dataclasses import replace

from textual.pilot import Pilot

from tests.tui.support import settle, wait_until
from tests.tui.snapshot_apps.perpdeck_app import make_app
from tui.fake import (
    NOW_MS,
    FakeFacade,
    FakeTrainer,
    seeded_snapshot,
    seeded_training,
    trailing_positions,
    with_ensemble,
    with_regimes,
)
from tui.screens.flatten_result import FlattenResultScreen

WIDE = (120, 40)
SMALL = (80, 24)


def test_main_screen_wide(snap_compare):
    # Open positions (one past TP1 with its stop at break-even, one with TP1 and TP2 resting), accepted
    # and denied signals, open and conditional orders, break-even timers (one reached, two running),
    # the guard's counts, log.
    assert snap_compare(make_app(), terminal_size=WIDE, run_before=settle)


def test_main_screen_80x24_compact(snap_compare):
    assert snap_compare(make_app(), terminal_size=SMALL, run_before=settle)


def test_halted(snap_compare):
    # Halted by the guard itself: the header's guard field names the halt.
    snap = seeded_snapshot(state="HALTED", halt_reason="daily loss limit reached")
    snap = replace(snap, status=replace(snap.status, halted_by="daily_loss",
                                        guard_halt_reason="daily loss limit reached"))
    assert snap_compare(make_app(FakeFacade(snap)), terminal_size=WIDE, run_before=settle)


def test_guard_cool_down_80x24(snap_compare):
    # A market-shock cool-down and a losing streak one short of its limit, in the compact header.
    snap = seeded_snapshot()
    snap = replace(snap, status=replace(snap.status, consecutive_losses=3, shock_until_ms=NOW_MS + 14 * 60_000))
    assert snap_compare(make_app(FakeFacade(snap)), terminal_size=SMALL, run_before=settle)


def test_mainnet_header(snap_compare):
    assert snap_compare(make_app(mode="mainnet"), terminal_size=WIDE, run_before=settle)


def test_testnet_without_positions(snap_compare):
    assert snap_compare(make_app(mode="testnet", with_positions=False), terminal_size=WIDE, run_before=settle)


def test_flatten_confirmation(snap_compare):
    assert snap_compare(make_app(), terminal_size=WIDE, press=["F"], run_before=settle)


def test_flatten_result_failed(snap_compare):
    async def flatten_and_wait(pilot: Pilot) -> None:
        await pilot.press("F", "y")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, FlattenResultScreen)
                         and pilot.app.screen.report is not None
                         and pilot.app.screen.report.state == "failed")
        await settle(pilot)

    app = make_app(mode="mainnet", flatten_fails=True)
    assert snap_compare(app, terminal_size=WIDE, run_before=flatten_and_wait)


def test_strategy_picker(snap_compare):
    assert snap_compare(make_app(), terminal_size=WIDE, press=["s"], run_before=settle)


def test_help(snap_compare):
    assert snap_compare(make_app(), terminal_size=WIDE, press=["question_mark"], run_before=settle)


def test_quit_confirmation_80x24(snap_compare):
    assert snap_compare(make_app(), terminal_size=SMALL, press=["q"], run_before=settle)


def test_trailing_stops(snap_compare):
    # Exchange trailing stops: BTC's activated ("trail active"), ETH's waiting for its activation price
    # ("trail armed"), SOL with a plain stop.
    snap = replace(seeded_snapshot(), positions=trailing_positions())
    assert snap_compare(make_app(FakeFacade(snap)), terminal_size=WIDE, run_before=settle)


def test_trailing_stops_80x24(snap_compare):
    snap = replace(seeded_snapshot(), positions=trailing_positions())
    assert snap_compare(make_app(FakeFacade(snap)), terminal_size=SMALL, run_before=settle)


def test_strategies_regime_switch(snap_compare):
    # Per-strategy record, regimes per symbol with the member in charge, the last switches with the
    # regime that caused each, external signals of every outcome and the confluence held on BTC.
    app = make_app(FakeFacade(with_regimes(seeded_snapshot())))
    assert snap_compare(app, terminal_size=WIDE, press=["2"], run_before=settle)


def test_strategies_ensemble(snap_compare):
    app = make_app(FakeFacade(with_ensemble(seeded_snapshot())))
    assert snap_compare(app, terminal_size=WIDE, press=["2"], run_before=settle)


def test_strategies_80x24(snap_compare):
    app = make_app(FakeFacade(with_regimes(seeded_snapshot())))
    assert snap_compare(app, terminal_size=SMALL, press=["2"], run_before=settle)


def test_training_running(snap_compare):
    app = make_app(FakeFacade(trainer=FakeTrainer(seeded_training())))
    assert snap_compare(app, terminal_size=WIDE, press=["3"], run_before=settle)


def test_training_running_80x24(snap_compare):
    app = make_app(FakeFacade(trainer=FakeTrainer(seeded_training())))
    assert snap_compare(app, terminal_size=SMALL, press=["3"], run_before=settle)


def test_training_not_available(snap_compare):
    assert snap_compare(make_app(), terminal_size=WIDE, press=["3"], run_before=settle)
