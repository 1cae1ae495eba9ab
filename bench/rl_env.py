"""Raw ``FuturesTargetEnv.step()`` throughput (no gymnasium wrappers, no learner).

Prints env steps per second on one core for three action patterns: ``random`` (a new uniform
target every step: an order nearly every step — the worst case), ``sticky`` (the target changes
on ~10% of the steps, like a trained policy behind the dead-band) and ``flat`` (always 0). Actions
are generated before the clock starts; episode resets are inside the timed loop.

    .venv/bin/python bench/rl_env.py                      # ../shared/data BTCUSDT 2025 klines if present, else the sample
    .venv/bin/python bench/rl_env.py FILE [--funding CSV] # any Binance Vision 1m kline CSV
    .venv/bin/python bench/rl_env.py --steps 2000000 --k 1
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from rl.data import load_market_data, sample_market_data  # noqa: E402
from rl.env import EnvConfig, FuturesTargetEnv  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def default_data():
    kl = SHARED / "klines" / "BTCUSDT-1m-2025-05-04-2025-06-24.csv"
    if kl.exists():
        return load_market_data(kl, [SHARED / "funding" / "BTCUSDT-fundingRate-2025-03-06-2025-06-24.csv"],
                                keep_candles=False)
    return sample_market_data("BTCUSDT")


def actions(kind: str, n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    if kind == "random":
        a = rng.uniform(-1, 1, n)
    elif kind == "sticky":
        change = rng.random(n) < 0.1
        a = np.where(change, rng.uniform(-1, 1, n), np.nan)
        a[0] = 0.0
        # forward-fill the held target
        idx = np.where(~np.isnan(a), np.arange(n), 0)
        np.maximum.accumulate(idx, out=idx)
        a = a[idx]
    else:
        a = np.zeros(n)
    return [np.array([x], dtype=np.float32) for x in a]


def run(env: FuturesTargetEnv, acts: list[np.ndarray]) -> tuple[float, int]:
    env.reset(seed=0)
    step = env.step
    reset = env.reset
    resets = 0
    t0 = time.perf_counter()
    for a in acts:
        _, _, terminated, truncated, _ = step(a)
        if terminated or truncated:
            reset()
            resets += 1
    return time.perf_counter() - t0, resets


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("file", nargs="?", type=Path)
    ap.add_argument("--funding", action="append", type=Path, default=[])
    ap.add_argument("--steps", type=int, default=1_000_000)
    ap.add_argument("--k", type=int, default=5, help="candles per decision")
    ap.add_argument("--episode", type=int, default=576, help="steps per episode")
    ap.add_argument("--no-pin", action="store_true", help="do not pin the process to one CPU")
    args = ap.parse_args()

    if not args.no_pin and hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        print(f"pinned to cpu {cpu}")
    t0 = time.perf_counter()
    data = load_market_data(args.file, args.funding, keep_candles=False) if args.file else default_data()
    t1 = time.perf_counter()
    env = FuturesTargetEnv(data, EnvConfig(decision_every=args.k, episode_steps=args.episode, max_notional=20_000))
    t2 = time.perf_counter()
    print(f"data: {data.symbol}, {len(data):,} candles (load {t1 - t0:.2f} s); env build "
          f"(features, fill prices, funding schedule) {t2 - t1:.2f} s; k={args.k}, episode={args.episode} steps")
    for kind in ("random", "sticky", "flat"):
        acts = actions(kind, args.steps)
        run(env, acts[:20_000])  # warm-up
        secs, resets = run(env, acts)
        print(f"{kind:>6}: {args.steps / secs:>10,.0f} steps/s  ({secs / args.steps * 1e6:.2f} µs/step, "
              f"{args.steps * args.k / secs:,.0f} candles/s, {resets} resets, "
              f"orders filled in last episode {env.orders_filled})")


if __name__ == "__main__":
    main()
