"""Event-loop lag of the console while the RL worker trains SAC in its background thread.

Runs the real console (Textual, headless driver, 120×40) with the default sim session inside its
event loop — the local Binance-compatible server replaying the bundled data over real sockets,
as ``bench/console_lag.py`` does — attaches ``rl.worker.TrainerWorker`` to it, starts training
(the console's StartTraining path: ``SessionFacade.submit``), and samples the loop's lag every
5 ms. Prints lag p50/p99/max and the trainer's steps per second; ``--no-train`` gives the baseline.

    .venv/bin/python bench/train_lag.py [--seconds 30] [--speed 600] [--no-train] [--yield-s 0]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.backtest import load_market_data  # noqa: E402
from engine.config import Settings  # noqa: E402
from engine.events import StartTraining, StopTraining  # noqa: E402
from engine.live import run_sim_over_wire  # noqa: E402
from engine.runtime import RunPaths  # noqa: E402
from engine.state.journal import Journal  # noqa: E402
from rl.train import Trainer  # noqa: E402
from rl.worker import TrainerWorker  # noqa: E402
from tui.launch import ConsoleApp, SessionFacade  # noqa: E402


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--refresh", type=float, default=0.1, help="console refresh interval, s (0.1 = the 10/s cap)")
    ap.add_argument("--speed", type=float, default=600.0,
                    help="sim replay pace (600 = the console default); 0 = lockstep flat out")
    ap.add_argument("--no-train", action="store_true", help="baseline: the same console without training")
    ap.add_argument("--yield-s", type=float, default=0.0, help="sleep after every env step in the trainer")
    ap.add_argument("--net", default="128,128", help="hidden layers (default the [rl] default)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    settings = Settings(state_dir=tmp, sim={"speed": args.speed},
                        rl={"learning_starts": 500, "net_arch": [int(x) for x in args.net.split(",")],
                            "eval_every_steps": 5000})
    files, funding = load_market_data(settings)
    paths = RunPaths.for_run(tmp, settings.db_path, "lag")

    async def session(on_runtime):
        summary, _ = await run_sim_over_wire(settings, run_id="lag", paths=paths,
                                             journal=Journal("lag", record_candles=False), files=files,
                                             funding=funding, install_signal_handlers=False, on_runtime=on_runtime)
        return summary

    worker = TrainerWorker(settings, resume_first=False,
                           trainer_factory=lambda s, **kw: Trainer(s, yield_s=args.yield_s, **kw))
    facade = SessionFacade("sim", trainer=worker)
    app = ConsoleApp(facade, session, refresh_s=args.refresh)
    lags: list[float] = []
    async with app.run_test(size=(120, 40)) as pilot:
        loop = asyncio.get_running_loop()
        if not args.no_train:
            facade.submit(StartTraining())
            while worker.view().state in ("idle", "starting"):  # torch import + data load: not measured
                await asyncio.sleep(0.05)
        steps0 = worker.view().steps
        t0 = loop.time()
        t_end = t0 + args.seconds
        while loop.time() < t_end and not app.summary:
            t = loop.time()
            await asyncio.sleep(0.005)
            lags.append((loop.time() - t - 0.005) * 1000)
        elapsed = loop.time() - t0
        v = worker.view()
        rt = app.runtime
        candles = rt.candles_received if rt is not None else 0
        if not args.no_train:
            facade.submit(StopTraining())
        await pilot.press("q")
        if app.screen.__class__.__name__ == "ConfirmQuitScreen":
            await pilot.press("y")
        await app.workers.wait_for_complete()
    worker.join(60)
    print(f"console          120×40, repainting every {args.refresh:g} s, default sim session "
          f"({'lockstep, flat out' if args.speed == 0 else f'paced at {args.speed:g}× real time'})")
    print(f"load             {candles:,} closed candles through adapter + engine in {elapsed:.0f} s")
    if args.no_train:
        print("training         off (baseline)")
    else:
        print(f"training         SAC {args.net} on {v.device}: {v.steps - steps0:,} steps in {elapsed:.0f} s "
              f"({(v.steps - steps0) / elapsed:,.0f} steps/s), yield {args.yield_s:g} s/step")
    print(f"loop lag         p50 {pct(lags, 50):.3f} ms   p99 {pct(lags, 99):.3f} ms   max {max(lags):.3f} ms "
          f"({len(lags):,} samples)")


if __name__ == "__main__":
    asyncio.run(main())
