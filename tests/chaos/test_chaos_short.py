"""The short chaos run for CI: one seeded fault schedule (REST faults, split fills, user-data event
faults, dropped streams, listenKey expiry), the engine a real subprocess SIGKILLed at a random
moment and right after an entry fill, restarted each time; zero violations of the five invariants
expected (``bench/chaos_harness.py``; ``bench/chaos.py`` runs many such schedules).

Expected to fail until restart reconciliation and stream-gap recovery are complete in the engine
(the failure message lists what was lost and when); it is not weakened to pass.

About 30 s of wall time: 40 replay minutes at 120x plus engine starts, settling and checks.
Everything it starts (the local exchange, engine processes) is torn down by the harness, also on
failure; the state directory of a failing run is kept under pytest's ``tmp_path`` and named in
the failure message together with every violation (seed, moment, what was wrong).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from chaos import summary  # noqa: E402
from chaos_harness import FAULT_KINDS, ChaosConfig, run_once  # noqa: E402

SEED = 11
CONFIG = dict(minutes=40, speed=120.0, kills=1, entry_kills=1, faults_per_min=18.0)


@pytest.fixture
def config(tmp_path: Path) -> ChaosConfig:
    return ChaosConfig(workdir=tmp_path, fault_kinds=FAULT_KINDS, **CONFIG)


@pytest.mark.xfail(strict=False, reason=(
    "issue 6 open: after a restart a stop request lost in a REST stall is resent late (-2021, then closed), "
    "and the startup reconciliation does not close earlier runs' order/algo/position rows (PENDING_NEW "
    "entries, NEW algos that finished while down); remove this marker when both are fixed"))
async def test_short_chaos_run_loses_nothing(config: ChaosConfig) -> None:
    result = await run_once(SEED, config)
    report = summary([result], config)
    # the run must have exercised something, or "no violations" means nothing
    assert result.restarts >= 1, report
    assert sum(v for k, v in result.injected.items() if k in FAULT_KINDS) >= 5, report
    assert result.stats.get("entries", 0) >= 1, report
    assert result.violations == [], "\n" + report
