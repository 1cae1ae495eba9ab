"""Event-loop lag with the console open under load.

Runs the real console (Textual, headless driver, 120×40, repainting up to 10×/s) with the default
sim session inside its event loop — the local Binance-compatible server replaying the bundled
data in lockstep as fast as it goes, the adapter over real sockets — and samples the loop's lag
every 5 ms for the whole time.

    .venv/bin/python bench/console_lag.py [--seconds 30] [--refresh 0.1] [--view strategies]

``--view`` opens the strategies (key 2) or training (key 3) view instead of the dashboard.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.backtest import load_market_data  # noqa: E402
from engine.config import Settings  # noqa: E402
from engine.live import run_sim_over_wire  # noqa: E402
from engine.runtime import RunPaths  # noqa: E402
from engine.state.journal import Journal  # noqa: E402
from tui.launch import ConsoleApp, SessionFacade  # noqa: E402


VIEW_KEYS = {"dashboard": "", "strategies": "2", "training": "3"}


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--refresh", type=float, default=0.25, help="console refresh interval, s (0.1 = the 10/s cap)")
    ap.add_argument("--speed", type=float, default=0.0,
                    help="0: lockstep flat out (worst case); N: paced at N× real time")
    ap.add_argument("--view", choices=tuple(VIEW_KEYS), default="dashboard", help="the screen on show")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    settings = Settings(state_dir=tmp, sim={"speed": args.speed})
    files, funding = load_market_data(settings)
    paths = RunPaths.for_run(tmp, settings.db_path, "lag")

    async def session(on_runtime):
        summary, _ = await run_sim_over_wire(settings, run_id="lag", paths=paths, journal=Journal("lag", record_candles=False),
                                             files=files, funding=funding, install_signal_handlers=False,
                                             on_runtime=on_runtime)
        return summary

    app = ConsoleApp(SessionFacade("sim"), session, refresh_s=args.refresh)
    lags: list[float] = []
    async with app.run_test(size=(120, 40)) as pilot:
        if VIEW_KEYS[args.view]:
            await pilot.press(VIEW_KEYS[args.view])
        loop = asyncio.get_running_loop()
        t_end = loop.time() + args.seconds
        while loop.time() < t_end and not app.summary:
            t = loop.time()
            await asyncio.sleep(0.005)
            lags.append((loop.time() - t - 0.005) * 1000)
        rt = app.runtime
        candles = rt.candles_received if rt is not None else 0
        await pilot.press("q")
        if app.screen.__class__.__name__ == "ConfirmQuitScreen":
            await pilot.press("y")
        await app.workers.wait_for_complete()
    how = "lockstep, flat out" if args.speed == 0 else f"paced at {args.speed:g}× real time"
    print(f"console          120×40 ({args.view}), repainting every {args.refresh:g} s, over the default sim "
          f"session ({how})")
    print(f"load             {candles:,} closed candles through adapter + engine in {args.seconds:.0f} s "
          f"({candles / args.seconds:,.0f}/s)")
    print(f"loop lag         p50 {pct(lags, 50):.3f} ms   p99 {pct(lags, 99):.3f} ms   max {max(lags):.3f} ms "
          f"({len(lags):,} samples)")


if __name__ == "__main__":
    t0 = time.perf_counter()
    asyncio.run(main())
