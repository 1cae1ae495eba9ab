"""Chaos suite: N seeded fault schedules against the local exchange, the engine a real subprocess
killed (SIGKILL) and restarted at random moments; after every run the invariants are checked
(see ``bench/chaos_harness.py`` for the faults and the five invariants).

Prints: runs, faults injected by kind (and how many took effect), restarts, and violations of each
invariant with the seed and the moment (target: zero). Exit status 1 when any invariant was violated.
Each run is reproducible from its seed (the schedule and the data slice; timing is real).

    .venv/bin/python bench/chaos.py --runs 5 --seed 1
    .venv/bin/python bench/chaos.py --runs 1 --seed 7 --minutes 40 --kills 1 -v     # one short run, verbose
    .venv/bin/python bench/chaos.py --runs 3 --faults rest_5xx,ban_418 --kills 0   # only some faults

A run takes about ``minutes * 60 / speed`` s plus ~10 s (engine start, settle, checks). State
directories of runs with violations are kept (``--keep`` keeps all) under ``--workdir``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chaos_harness import FAULT_KINDS, INVARIANTS, ChaosConfig, RunResult, market_data, run_once  # noqa: E402


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/chaos.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5, help="number of runs (default 5)")
    p.add_argument("--seed", type=int, default=1, help="seed of the first run; run i uses seed + i (default 1)")
    p.add_argument("--minutes", type=int, default=90, help="replay minutes per run (default 90)")
    p.add_argument("--speed", type=float, default=120.0, help="replay speed, x real time (default 120)")
    p.add_argument("--kills", type=int, default=2, help="SIGKILLs at random moments per run (default 2)")
    p.add_argument("--entry-kills", type=int, default=1,
                   help="SIGKILLs right after an entry fill, before its stop, per run (default 1)")
    p.add_argument("--faults-per-min", type=float, default=12.0,
                   help="timed faults per minute of wall time (default 12)")
    p.add_argument("--faults", default=",".join(FAULT_KINDS),
                   help="comma-separated fault kinds to draw from (default: all): " + ",".join(FAULT_KINDS))
    p.add_argument("--protect-limit", type=float, default=5.0,
                   help="seconds a position may be without a stop (default 5)")
    p.add_argument("--hedge", action="store_true", help="hedge position mode (default one-way)")
    p.add_argument("--workdir", type=Path, default=None, help="where state directories go (default: temp)")
    p.add_argument("--keep", action="store_true", help="keep every run's state directory")
    p.add_argument("--json", type=Path, default=None, help="also write every result as JSON to this file")
    p.add_argument("--jobs", type=int, default=1,
                   help="runs at once, each in its own process with its own exchange and engine (default 1; "
                        "keep it at most a third of the cores so timing stays honest)")
    p.add_argument("-v", "--verbose", action="store_true", help="print progress (kills, restarts)")
    a = p.parse_args(argv)
    bad = sorted(set(k for k in a.faults.split(",") if k) - set(FAULT_KINDS))
    if bad:
        p.error(f"unknown fault kind(s) {bad}; expected some of {list(FAULT_KINDS)}")
    return a


def summary(results: list[RunResult], cfg: ChaosConfig) -> str:
    lines = []
    injected: Counter = Counter()
    took: Counter = Counter()
    kills: Counter = Counter()
    viol: Counter = Counter()
    restarts = unexpected = 0
    for r in results:
        injected.update(r.injected)
        took.update(r.took_effect)
        kills.update(r.kills)
        viol.update(r.by_invariant())
        restarts += r.restarts
        unexpected += r.unexpected_exits
    seeds = [r.seed for r in results]
    lines.append(f"chaos: {len(results)} runs (seeds {', '.join(map(str, seeds))}), {cfg.minutes} replay minutes "
                 f"each at {cfg.speed:g}x ({cfg.replay_s:.0f} s), stop limit {cfg.protect_limit_s:g} s")
    lines.append("")
    lines.append(f"  runs              {len(results)}")
    lines.append(f"  restarts          {restarts}  (SIGKILL at random {kills['random']}, right after an entry "
                 f"fill {kills['after_entry']}, after an unexpected exit {unexpected})")
    entries = sum(r.stats.get("entries", 0) for r in results)
    fills = sum(r.stats.get("fills", 0) for r in results)
    lines.append(f"  exchange          {entries} entries, {fills} fills; longest unprotected position "
                 f"{max((r.stats.get('longest_unprotected_s', 0.0) for r in results), default=0.0):.1f} s, "
                 f"{max((r.stats.get('longest_counted_s', 0.0) for r in results), default=0.0):.1f} s not counting "
                 "injected bans and 429 back-offs")
    refused = sum(r.stats.get("over_limit_refused", 0) for r in results)
    lines.append(f"                    stretches over the stop limit only because the exchange refused every "
                 f"request (not violations): {refused}")
    lines.append("")
    lines.append("  faults injected by kind      armed  took effect")
    lines.append("    (engine incarnations are #1, #2, ... in the details; 'took effect' counts requests")
    lines.append("     failed, events affected, fills split, sockets dropped: faults armed last may never fire)")
    for k in FAULT_KINDS:
        if injected.get(k):
            lines.append(f"    {k:<26} {injected[k]:>5}  {took[k]:>11}")
    lines.append(f"    {'total':<26} {sum(injected[k] for k in FAULT_KINDS):>5}")
    lines.append("")
    lines.append("  invariant                                                        violations")
    for i, text in INVARIANTS.items():
        lines.append(f"    {i}. {text:<60} {viol.get(i, 0):>6}")
    lines.append(f"    {'total':<63} {sum(viol.values()):>6}")
    all_v = [v for r in results for v in r.violations]
    if all_v:
        lines.append("")
        lines.append("  violations (seed, invariant, wall seconds since the replay started, replay time):")
        for v in all_v:
            lines.append("    " + v.format())
        kept = [r.state_dir for r in results if r.violations]
        lines.append("")
        lines.append("  state directories kept: " + "  ".join(kept))
    notes = [f"seed {r.seed}: {n}" for r in results for n in r.notes]
    if notes:
        lines.append("")
        lines.append("  notes:")
        lines += ["    " + n for n in notes]
    return "\n".join(lines)


def _as_json(r: RunResult) -> dict:
    return {
        "seed": r.seed, "wall_s": round(r.wall_s, 2), "restarts": r.restarts, "kills": dict(r.kills),
        "unexpected_exits": r.unexpected_exits, "injected": dict(r.injected), "took_effect": dict(r.took_effect),
        "violations": [{"invariant": v.invariant, "at_s": v.at_s, "replay_ms": v.replay_ms, "detail": v.detail}
                       for v in r.violations],
        "stats": r.stats, "notes": r.notes, "state_dir": r.state_dir,
        "incarnations": [vars(i) for i in r.incarnations],
        "schedule": [{"at_s": round(a.at_s, 3), "kind": a.kind, "args": a.args} for a in r.schedule],
    }


def _config(a: argparse.Namespace) -> ChaosConfig:
    return ChaosConfig(minutes=a.minutes, speed=a.speed, kills=a.kills, entry_kills=a.entry_kills,
                       faults_per_min=a.faults_per_min, fault_kinds=tuple(k for k in a.faults.split(",") if k),
                       protect_limit_s=a.protect_limit, hedge=a.hedge, workdir=a.workdir, keep=a.keep,
                       log=(lambda s: print(s, flush=True)) if a.verbose else None)


def _one_run(a: argparse.Namespace, seed: int) -> RunResult:
    """One run in a worker process (``--jobs``): its own event loop, exchange and engine."""
    cfg = _config(a)
    cfg.log = None
    market_data()
    return asyncio.run(run_once(seed, cfg))


def _progress(i: int, n: int, r: RunResult) -> None:
    bi = r.by_invariant()
    print(f"run {i}/{n} seed {r.seed}: {r.wall_s:.0f} s, {r.restarts} restarts, "
          f"{sum(r.injected.values()) - r.injected.get('kill', 0) - r.injected.get('arm_entry_kill', 0)} faults, "
          f"violations " + (", ".join(f"inv{k}={v}" for k, v in sorted(bi.items())) or "none"), flush=True)


async def main_async(a: argparse.Namespace) -> int:
    cfg = _config(a)
    t0 = time.monotonic()
    results: list[RunResult] = []
    seeds = [a.seed + i for i in range(a.runs)]
    if a.jobs > 1:
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(max_workers=a.jobs) as pool:
            futs = [pool.submit(_one_run, a, seed) for seed in seeds]
            for n, fut in enumerate(as_completed(futs), 1):
                r = fut.result()
                results.append(r)
                _progress(n, a.runs, r)
        results.sort(key=lambda r: r.seed)
    else:
        market_data()
        for i, seed in enumerate(seeds):
            r = await run_once(seed, cfg)
            results.append(r)
            _progress(i + 1, a.runs, r)
    print()
    print(summary(results, cfg))
    print(f"\n  wall time         {time.monotonic() - t0:.0f} s ({a.jobs} at once)")
    if a.json:
        a.json.write_text(json.dumps([_as_json(r) for r in results], indent=1, default=str))
    return 1 if any(r.violations for r in results) else 0


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(main_async(_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
