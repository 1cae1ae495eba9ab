"""The short chaos suite for CI: ten seeded fault schedules (REST faults, 429/418, clock skew,
split fills, duplicated/delayed/reordered user events, dropped streams, listenKey expiry), the
engine a real subprocess SIGKILLed at random moments and right after an entry fill, restarted each
time; zero violations of the five invariants expected (``bench/chaos_harness.py``;
``bench/chaos.py`` runs as many schedules as you like).

Each schedule replays 90 minutes of real data at 480x (about 11 s) plus engine starts, settling
and checks; two run at once, each in its own process with its own local exchange and engine, so
the ten take about a minute and a half. Everything started is torn down by the harness, also on
failure; the state directories of failing runs are kept under pytest's ``tmp_path`` and named in
the failure message with every violation (seed, moment, what was wrong).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from chaos import summary  # noqa: E402
from chaos_harness import FAULT_KINDS, ChaosConfig, RunResult, market_data, run_once  # noqa: E402

SEEDS = range(11, 21)
CONFIG = dict(minutes=90, speed=480.0, kills=1, entry_kills=1, faults_per_min=30.0)
JOBS = 2


def _run(seed: int, workdir: str) -> RunResult:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    market_data()
    return asyncio.run(run_once(seed, ChaosConfig(workdir=Path(workdir), fault_kinds=FAULT_KINDS, **CONFIG)))


def test_short_chaos_suite_loses_nothing(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")  # a clean interpreter per worker (no inherited loop or threads)
    with ProcessPoolExecutor(max_workers=JOBS, mp_context=ctx) as pool:
        results = list(pool.map(_run, SEEDS, [str(tmp_path)] * len(SEEDS)))
    cfg = ChaosConfig(workdir=tmp_path, fault_kinds=FAULT_KINDS, **CONFIG)
    report = summary(results, cfg)
    # the runs must have exercised something, or "no violations" means nothing
    assert len(results) >= 10, report
    assert sum(r.restarts for r in results) >= 10, report
    assert sum(v for r in results for k, v in r.injected.items() if k in FAULT_KINDS) >= 20, report
    assert sum(r.stats.get("entries", 0) for r in results) >= 10, report
    assert [v for r in results for v in r.violations] == [], "\n" + report
