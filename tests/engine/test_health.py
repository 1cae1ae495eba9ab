"""A deaf engine takes no new entries: a stream down (or, live, silent) past ``stream_silence_s``
halts entries with the reason, and the halt lifts by itself once the streams are healthy again.
An operator's halt is never lifted by this."""

from __future__ import annotations

from pathlib import Path

from engine.backtest import build_sim_run
from engine.config import Settings
from engine.data import KlineFile
from engine.events import Halt
from engine.guard.base import EngineState
from engine.live import LiveRuntime
from engine.runtime import RunPaths
from tests.engine.orders.scenario import flat


class Wall:
    def __init__(self):
        self.ms = 1_000_000

    def now_ms(self):
        return self.ms


class Adapter:
    def __init__(self):
        self.status = {"market": {"state": "connected", "last_message_ms": 1_000_000},
                       "user": {"state": "connected", "last_message_ms": 0}}

    def stream_status(self):
        return self.status


def runtime(tmp_path: Path, *, replay: bool):
    s = Settings(symbols=["BTCUSDT"])
    run = build_sim_run(s, run_id="h", files=[KlineFile("BTCUSDT", Path("x"), tuple(flat(3)))], funding={})
    ad = Adapter()
    rt = LiveRuntime(run, ad, None, RunPaths.for_run(tmp_path, tmp_path / "db", "h"),
                     replay_finished=(lambda: False) if replay else None)
    rt.reconcile_settings = s.reconcile  # stream_silence_s = 30
    rt.wall = Wall()
    return rt, ad


def test_a_user_stream_down_too_long_halts_entries_and_recovery_resumes(tmp_path):
    rt, ad = runtime(tmp_path, replay=True)
    eng = rt.engine
    ad.status["user"]["state"] = "reconnecting"
    rt._check_health()
    assert eng.state is EngineState.ACTIVE  # a blip is not a problem
    rt.wall.ms += 29_000
    rt._check_health()
    assert eng.state is EngineState.ACTIVE
    rt.wall.ms += 1_000
    rt._check_health()
    assert eng.state is EngineState.HALTED and "user stream reconnecting for 30s" in eng.halt_reason
    ad.status["user"]["state"] = "connected"
    rt._check_health()
    assert eng.state is EngineState.ACTIVE and eng.halt_source is None


def test_a_silent_market_stream_halts_live_but_an_operator_halt_stays(tmp_path):
    rt, ad = runtime(tmp_path, replay=False)
    eng = rt.engine
    rt.wall.ms += 31_000  # connected, but nothing heard for 31 s
    rt._check_health()
    assert eng.state is EngineState.HALTED and "market stream silent" in eng.halt_reason
    eng.handle(Halt("operator"))
    ad.status["market"]["last_message_ms"] = rt.wall.ms
    rt._check_health()
    assert eng.state is EngineState.HALTED and eng.halt_reason == "operator"


def test_a_heartbeat_that_cannot_be_written_halts_entries(tmp_path):
    rt, _ = runtime(tmp_path, replay=True)
    rt.heartbeat_failed_since_ms = rt.wall.ms
    rt.wall.ms += int(3 * rt.heartbeat_interval_s * 1000)
    rt._check_health()
    assert rt.engine.state is EngineState.HALTED and "heartbeat stale" in rt.engine.halt_reason
