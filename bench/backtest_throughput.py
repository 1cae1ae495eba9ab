"""Full-pipeline backtest throughput: strategy, guard, orders, sim matching with resting SL/TP, journal.

Prints candles per second for the pipeline loop (data already parsed into memory, as every
engine measures it), the parse rate separately, the journal flush to SQLite, and peak RSS.

    .venv/bin/python bench/backtest_throughput.py                 # ../shared/data klines if present, else the sample
    .venv/bin/python bench/backtest_throughput.py FILE [FILE …]   # any Binance Vision 1m kline CSVs
    .venv/bin/python bench/backtest_throughput.py --repeat 10     # sample data repeated (time-shifted) 10×

Measured on one core (the loop is single-threaded Python).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.backtest import build_sim_run, run_sync, summarize  # noqa: E402
from engine.config import Settings  # noqa: E402
from engine.data import KlineFile, load_klines, sample_kline_files  # noqa: E402
from engine.state.journal import Journal  # noqa: E402
from engine.state.store import Store  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "klines"


def shifted(f: KlineFile, offset_ms: int) -> KlineFile:
    return KlineFile(f.symbol, f.path, tuple(dataclasses.replace(c, open_time_ms=c.open_time_ms + offset_ms,
                                                                 close_time_ms=c.close_time_ms + offset_ms)
                                             for c in f.candles))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("--repeat", type=int, default=1, help="repeat the sample data N times (time-shifted)")
    args = ap.parse_args()

    paths = args.files or (sorted(SHARED.glob("*.csv")) if SHARED.exists() else sample_kline_files())
    t0 = time.perf_counter()
    files = [load_klines(p) for p in paths]
    if args.repeat > 1:
        span = max(f.candles[-1].open_time_ms for f in files) - min(f.candles[0].open_time_ms for f in files) + 60_000
        files = [shifted(f, k * span) for k in range(args.repeat) for f in files]
    # Replay files whose periods overlap together (one run per era), so a run's clock never jumps
    # years ahead with positions open, and a symbol's files from different periods are never
    # spliced into one series (its price would jump in one candle).
    groups: list[list[KlineFile]] = []
    for f in sorted(files, key=lambda f: f.candles[0].open_time_ms):
        start, end = f.candles[0].open_time_ms, f.candles[-1].open_time_ms
        for g in groups:
            g_end = max(x.candles[-1].open_time_ms for x in g)
            g_start = min(x.candles[0].open_time_ms for x in g)
            if start <= g_end and end >= g_start and all(x.symbol != f.symbol for x in g):
                g.append(f)
                break
        else:
            groups.append([f])
    t_parse = time.perf_counter() - t0
    n_candles = sum(len(f.candles) for f in files)

    journal = Journal("bench", record_candles=False)
    t_build = t_loop = 0.0
    totals = {"signals": 0, "trades": 0, "fills": 0}
    results = []
    for gi, g in enumerate(groups):
        settings = Settings(symbols=sorted({f.symbol for f in g}))
        t0 = time.perf_counter()
        run = build_sim_run(settings, run_id=f"bench{gi}", files=g, funding={}, journal=journal)
        t_build += time.perf_counter() - t0
        t0 = time.perf_counter()
        run_sync(run)
        t_loop += time.perf_counter() - t0
        s = summarize(run)
        totals["signals"] += s["signals"]
        totals["trades"] += s["trades"]
        totals["fills"] += run.engine.stats.fills
        results.append(f"{'+'.join(sorted(x.symbol for x in g))}: net {s['net_pnl']}, max DD {s['max_drawdown_pct']}%")

    async def flush() -> float:
        with tempfile.TemporaryDirectory() as d:
            store = await Store.open(Path(d) / "bench.db")
            await store.start_run("bench", 0, "sim", "ema_trend", "{}")
            s = time.perf_counter()
            batch = journal.take()
            batch.run_id = "bench"
            await store.write_batch(batch)
            e = time.perf_counter() - s
            await store.close()
            return e

    records = journal.pending()
    t_flush = asyncio.run(flush())
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"data            {len(paths)} file(s) in {len(groups)} run(s), {n_candles:,} candles")
    print(f"parse           {t_parse:.2f} s ({n_candles / t_parse:,.0f} candles/s, CSV → Decimal records)")
    print(f"build           {t_build:.2f} s (merge by time, sim, engine)")
    print(f"pipeline        {t_loop:.2f} s → {n_candles / t_loop:,.0f} candles/s "
          f"(strategy + guard + orders + sim matching with resting SL/TP + journal)")
    print(f"activity        {totals['signals']} signals, {totals['trades']} trades, {totals['fills']} fills, "
          f"{records:,} journal records")
    print(f"journal flush   {t_flush:.2f} s to SQLite (one transaction)")
    print(f"peak RSS        {rss_mb:,.0f} MiB")
    for r in results:
        print(f"  {r}")


if __name__ == "__main__":
    main()
