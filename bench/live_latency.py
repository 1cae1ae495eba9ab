"""Live decision latency and event-loop lag, 200 symbols streamed from the local exchange.

The local Binance-compatible server runs in its own process (as Binance would be elsewhere) and
replays real BTCUSDT 1m candles relabelled as N synthetic symbols, paced: each minute of data
pushes N closed klines + N mark prices at once, like a minute boundary on Binance. The real adapter receives them over WebSocket, the engine decides
on every closed candle (a strategy that always signals; tight stops so positions keep cycling),
and entries go out over REST.

Printed figures:
  decision   time from a closed-candle frame arriving in the adapter to the order's HTTP request
             being written to the socket (p50 / p99 / max, over every entry)
  loop lag   event-loop lag p99, sampled every 5 ms the whole time

    .venv/bin/python bench/live_latency.py [--symbols 200] [--minutes 20] [--speed 60]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import random
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests  # noqa: E402

from engine.backtest import SimRun  # noqa: E402
from engine.core import Engine, EngineParams  # noqa: E402
from engine.data import load_klines, sample_kline_files  # noqa: E402
from engine.exchange.binance import streams as streams_mod  # noqa: E402
from engine.exchange.binance.adapter import BinanceAdapter  # noqa: E402
from engine.exchange.binance.endpoints import Credentials, Endpoints  # noqa: E402
from engine.exchange.binance.rest import BinanceRest  # noqa: E402
from engine.exchange.sim.matching import SimExchange, load_default_rules  # noqa: E402
from engine.exchange.sim.server import DEFAULT_API_KEY, DEFAULT_API_SECRET, LocalExchange  # noqa: E402
from engine.live import LiveRuntime  # noqa: E402
from engine.model import Direction, MarginType, Signal  # noqa: E402
from engine.runtime import RunPaths  # noqa: E402


class RandomSignal:
    """Signals on a seeded random fraction of closed candles (the guard lets it through when flat)."""

    name = "random"

    def __init__(self, rate: float, seed: int = 7) -> None:
        self.rate = rate
        self.rng = random.Random(seed)

    def on_candle(self, c):
        if self.rng.random() >= self.rate:
            return None
        d = Direction.LONG if self.rng.random() < 0.5 else Direction.SHORT
        return Signal(self.name, c.symbol, d, 1.0, "bench", c.open_time_ms, c.close, c.close_time_ms)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else float("nan")


def synthetic(n_symbols: int, minutes: int):
    base = load_klines(sample_kline_files(["BTCUSDT"])[0]).candles[:minutes]
    names = [f"S{i:03d}USDT" for i in range(n_symbols)]
    proto = load_default_rules()["BTCUSDT"]
    rules = {n: dataclasses.replace(proto, symbol=n) for n in names}
    candles = [dataclasses.replace(c, symbol=n) for c in base for n in names]
    return names, rules, candles


async def serve(args) -> None:
    """Server process: lockstep replay, advanced in minute bursts once stdin says GO."""
    names, rules, candles = synthetic(args.symbols, args.minutes)
    sim = SimExchange(rules, starting_balance=Decimal(10_000_000), default_leverage=3,
                      default_margin_type=MarginType.ISOLATED, start_time_ms=candles[0].open_time_ms)
    server = LocalExchange(sim, candles, speed=0)
    await server.start()
    print(f"READY {server.rest_url} {server.ws_url}", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)  # GO
    period = 60.0 / args.speed
    t0 = loop.time()
    for minute in range(args.minutes):
        await asyncio.sleep(max(0.0, t0 + minute * period - loop.time()))
        for _ in range(len(names)):
            await server.advance()
    print("DONE", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)  # client finished
    await server.stop()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--symbols", type=int, default=200)
    ap.add_argument("--minutes", type=int, default=20)
    ap.add_argument("--speed", type=float, default=60.0, help="× real time (60: one minute of data per second)")
    ap.add_argument("--signal-rate", type=float, default=0.05,
                    help="fraction of closed candles that signal (1.0: every symbol at every minute: the worst burst)")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        await serve(args)
        return

    names, rules, candles = synthetic(args.symbols, args.minutes)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve", "--symbols", str(args.symbols), "--minutes", str(args.minutes),
        "--speed", str(args.speed), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    line = (await proc.stdout.readline()).decode().split()
    assert line and line[0] == "READY", line
    rest_url, ws_url = line[1], line[2]
    done = asyncio.Event()

    async def watch_server():
        while True:
            out = await proc.stdout.readline()
            if not out or out.startswith(b"DONE"):
                await asyncio.sleep(2.0)  # let the last minute's frames and orders drain
                done.set()
                return

    arrivals: dict[str, float] = {}
    current = {"t0": 0.0}
    decisions: list[float] = []

    real_handle = streams_mod.MarketStream.handle_message

    def timed_handle(self, conn, raw):
        current["t0"] = time.perf_counter()
        return real_handle(self, conn, raw)

    streams_mod.MarketStream.handle_message = timed_handle
    real_send = requests.Session.send

    def timed_send(self, request, **kw):
        if request.method == "POST" and "/fapi/v1/order" in request.url and "newClientOrderId=pdE" in request.url:
            t1 = time.perf_counter()  # an entry (our entry ids start with pdE) leaving for the exchange
            sym = parse_qs(urlsplit(request.url).query).get("symbol", [""])[0]
            t0 = arrivals.pop(sym, None)
            if t0 is not None:
                decisions.append(t1 - t0)
        return real_send(self, request, **kw)

    requests.Session.send = timed_send

    endpoints = Endpoints.local(rest_url, ws_url)
    rest = BinanceRest(endpoints, Credentials(DEFAULT_API_KEY, secret=DEFAULT_API_SECRET), max_workers=16)
    holder: dict = {}

    def on_write(path, params):  # the order's bytes were just written to the socket
        if str(params.get("newClientOrderId", "")).startswith("pdE"):
            t1 = time.perf_counter()
            t0 = arrivals.pop(params.get("symbol", ""), None)
            if t0 is not None:
                decisions.append(t1 - t0)

    if rest.order_sender is not None:
        rest.order_sender.on_write = on_write

    def on_candle(c):
        arrivals[c.symbol] = current["t0"]
        holder["rt"].on_candle(c)

    adapter = BinanceAdapter(rest, endpoints, symbols=names, on_candle=on_candle,
                             on_mark=lambda m: holder["rt"].on_mark(m),
                             on_user_event=lambda e: holder["rt"].on_user_event(e))
    await adapter.start()
    await adapter.configure(leverage=3, margin_type="ISOLATED", position_mode="ONEWAY")
    # ≤ 150 positions (exposure cap), one stop each: under Binance's 200 open conditional orders
    params = EngineParams(leverage=3, position_size_pct=Decimal("0.2"), stop_loss_pct=Decimal("0.1"),
                          take_profit_pct=None, max_position_pct=Decimal(1),
                          max_total_exposure_pct=Decimal(30), max_daily_trades=10**9, max_daily_loss_pct=None)
    engine = Engine(namespace="bench", rules=await adapter.symbol_rules(),
                    strategies={"random": RandomSignal(args.signal_rate)}, active_strategy="random", params=params)
    engine.bootstrap(await adapter.account(), await adapter.positions())
    run = SimRun("bench", None, adapter, engine, None, candles, [], engine.starting_wallet)
    tmp = Path("bench/out")
    rt = LiveRuntime(run, adapter, None, RunPaths.for_run(tmp, tmp / "x.db", "bench"),
                     replay_finished=done.is_set,
                     heartbeat_interval_s=3600)
    holder["rt"] = rt

    lags: list[float] = []

    async def lag_probe():
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            await asyncio.sleep(0.005)
            lags.append(loop.time() - t - 0.005)

    await adapter.start_streams()
    await asyncio.sleep(2.0)  # batched SUBSCRIBE messages are paced (≤ 10 per second per connection)
    watcher = asyncio.create_task(watch_server())
    proc.stdin.write(b"GO\n")
    await proc.stdin.drain()
    probe = asyncio.create_task(lag_probe())
    t_start = time.perf_counter()
    summary = await rt.run()
    wall = time.perf_counter() - t_start
    probe.cancel()
    await adapter.stop()
    await rest.aclose()
    proc.stdin.write(b"BYE\n")
    await proc.stdin.drain()
    await proc.wait()
    watcher.cancel()
    requests.Session.send = real_send
    streams_mod.MarketStream.handle_message = real_handle

    ms = [d * 1000 for d in decisions]
    lag_ms = [x * 1000 for x in lags]
    print(f"symbols          {args.symbols} streamed from the local server ({args.minutes} minutes of data at "
          f"{args.speed:g}× in {wall:.1f} s)")
    print(f"closed candles   {rt.candles_received:,} received; {summary['signals']:,} signals; "
          f"{len(decisions):,} entries sent")
    print(f"decision         p50 {pct(ms, 50):.3f} ms   p99 {pct(ms, 99):.3f} ms   max {max(ms):.3f} ms "
          f"(closed-candle frame in → order request out)")
    print(f"loop lag         p50 {pct(lag_ms, 50):.3f} ms   p99 {pct(lag_ms, 99):.3f} ms   max {max(lag_ms):.3f} ms "
          f"({len(lag_ms):,} samples; mean {statistics.fmean(lag_ms):.3f} ms)")


if __name__ == "__main__":
    asyncio.run(main())
