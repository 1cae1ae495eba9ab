"""How long a restarted engine leaves a position without a stop: a local exchange holds an open
position with no stop (an outside one, adopted under protection), a real ``perpdeck --no-ui``
process is started against it, and the exchange's request log gives the times from the process
start to its first request and to the stop's POST. ``--delay-ms`` holds every request that long
(a slow link); the figures are the median and the worst of ``--runs`` starts.

    .venv/bin/python bench/restart_latency.py --runs 10 --delay-ms 0 --delay-ms 250
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from chaos_harness import ENGINE_ENV, market_data  # noqa: E402
from engine.exchange.binance.adapter import BinanceAdapter  # noqa: E402
from engine.exchange.binance.endpoints import Credentials, Endpoints  # noqa: E402
from engine.exchange.binance.rest import BinanceRest  # noqa: E402
from engine.exchange.sim.matching import SimExchange, load_default_rules  # noqa: E402
from engine.exchange.sim.server import DEFAULT_API_KEY, DEFAULT_API_SECRET, LocalExchange, SimControl  # noqa: E402
from engine.model import OrderPurpose, OrderRequest, OrderType, Side  # noqa: E402


async def one_start(delay_s: float) -> tuple[float, float]:
    """(ms to the first request, ms to the stop's POST) of one engine start."""
    candles, funding = market_data()
    candles = candles[:30 * 3]
    sim = SimExchange(load_default_rules(), funding_rates=funding, start_time_ms=candles[0].open_time_ms)
    ex = LocalExchange(sim, candles, speed=0)
    await ex.start()
    proc = None
    try:
        ctl = await SimControl.connect(ex.ws_url)
        for _ in range(6):
            await ctl.advance()
        await ctl.close()
        endpoints = Endpoints.local(ex.rest_url, ex.ws_url)
        rest = BinanceRest(endpoints, Credentials(DEFAULT_API_KEY, secret=DEFAULT_API_SECRET))
        ad = BinanceAdapter(rest, endpoints, symbols=["BTCUSDT"], on_candle=lambda c: None, on_mark=lambda m: None,
                            on_user_event=lambda e: None)
        await ad.start()
        await ad.place_order(OrderRequest("outside-1", "BTCUSDT", Side.BUY, OrderType.MARKET, Decimal("0.010"),
                                          OrderPurpose.ENTRY))
        await ad.stop()
        ex.faults.delay_rest_s = delay_s
        ex.request_log.clear()
        with tempfile.TemporaryDirectory(prefix="restart-") as state:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("PERPDECK_", "BINANCE_"))}
            env.update(ENGINE_ENV)
            env.update({"PERPDECK_MODE": "sim", "PERPDECK_SYMBOLS": '["BTCUSDT"]',
                        "PERPDECK_RECONCILE__EXTERNAL_POSITIONS": "adopt",
                        "PERPDECK_SIM__EXCHANGE_REST_URL": ex.rest_url, "PERPDECK_SIM__EXCHANGE_WS_URL": ex.ws_url})
            t0 = time.monotonic()
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "engine.cli", "--no-ui", "--state-dir", state, cwd=str(ROOT), env=env,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, stdin=asyncio.subprocess.DEVNULL)
            deadline = t0 + 60
            while time.monotonic() < deadline:
                stops = [t for t, m, p in ex.request_log if m == "POST" and p == "/fapi/v1/algoOrder"]
                if stops:
                    first = ex.request_log[0][0]
                    return (first - t0) * 1000, (stops[0] - t0) * 1000
                if proc.returncode is not None:
                    raise RuntimeError(f"the engine exited ({proc.returncode}) before placing the stop")
                await asyncio.sleep(0.002)  # polling the exchange's request log
            raise RuntimeError("no stop within 60 s")
    finally:
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        await ex.stop()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="starts per delay (default 5)")
    ap.add_argument("--delay-ms", type=int, action="append", help="exchange delay per request (repeatable; "
                    "default 0 and 250)")
    a = ap.parse_args()
    print(f"restart latency: process start → first request → stop POST, {a.runs} starts each")
    for delay_ms in a.delay_ms or [0, 250]:
        firsts, stops = [], []
        for _ in range(a.runs):
            f, s = await one_start(delay_ms / 1000)
            firsts.append(f)
            stops.append(s)
        print(f"  delay {delay_ms:4d} ms per request: first request median {statistics.median(firsts):6.0f} ms "
              f"(worst {max(firsts):6.0f}); stop median {statistics.median(stops):6.0f} ms (worst {max(stops):6.0f})")


if __name__ == "__main__":
    asyncio.run(main())
