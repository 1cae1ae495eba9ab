"""The FakeFacade serves fixed snapshots and reacts to commands the way the engine does."""

from __future__ import annotations

from engine.events import FlattenAll, Halt, Resume, SwitchStrategy
from engine.model import Verdict
from tui.fake import NOW_MS, FakeFacade


def test_seeded_snapshot_is_busy_and_deterministic():
    snap = FakeFacade().snapshot()
    assert snap == FakeFacade().snapshot()
    assert snap.exchange_time_ms == NOW_MS
    assert len(snap.positions) == 3
    assert {r.verdict for r in snap.signals} == {Verdict.ACCEPTED, Verdict.DENIED}
    assert snap.orders and snap.algo_orders and snap.timers and snap.log
    assert snap.equity == snap.wallet_balance + snap.unrealized_pnl


def test_halt_and_resume():
    fake = FakeFacade()
    fake.submit(Halt("operator"))
    snap = fake.snapshot()
    assert (snap.state, snap.halt_reason) == ("HALTED", "operator")
    fake.submit(Resume())
    assert fake.snapshot().state == "ACTIVE"
    assert fake.commands == [Halt("operator"), Resume()]


def test_flatten_runs_then_is_flat():
    fake = FakeFacade()
    fake.submit(FlattenAll("operator"))
    running = fake.snapshot()
    assert running.state == "HALTED"
    assert (running.flatten.state, running.flatten.attempts) == ("running", 1)
    done = fake.snapshot()
    assert (done.flatten.state, done.flatten.attempts) == ("flat", 2)
    assert not (done.positions or done.orders or done.algo_orders or done.timers)
    assert fake.snapshot() == done


def test_flatten_can_fail_naming_what_is_still_open():
    fake = FakeFacade(flatten_fails=True)
    fake.submit(FlattenAll("operator"))
    fake.snapshot()
    failed = fake.snapshot().flatten
    assert failed.state == "failed"
    assert failed.open_positions == ("ETHUSDT SHORT 1.250",)
    assert failed.open_orders and failed.detail


def test_switch_strategy_shows_on_the_next_snapshot():
    fake = FakeFacade()
    fake.submit(SwitchStrategy("rl_policy"))
    assert fake.snapshot().strategy == "rl_policy"
