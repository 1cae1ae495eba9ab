"""A running in-process sim session with the signal services around it, and a raw HTTP client.

The session replays real sample candles at 6000× (10 ms a candle), so it is still running while a
test talks to it; tests stop it when done. Waits are bounded polls on conditions the session
makes true, never sleeps for time to pass.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.backtest import SimRun, build_sim_run
from engine.config import Settings
from engine.data import KlineFile, load_klines, sample_kline_files
from engine.events import ExternalSignalIngested, SignalJudged
from engine.ingest import IngestServices
from engine.runtime import RunPaths, run_sim_session
from engine.state.journal import Journal

TOKEN = "t0ken-for-tests-0123456789"
DAY = 1440


async def wait_for(cond, timeout_s: float = 15.0, what: str = "condition") -> None:
    """Wait for a condition the session will make true (bounded; not a sleep for time to pass)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while not cond():
        if loop.time() > end:
            raise AssertionError(f"{what} not met in {timeout_s} s")
        await asyncio.sleep(0.005)


def sample(days: int = 2, symbol: str = "BTCUSDT") -> list[KlineFile]:
    f = load_klines(sample_kline_files([symbol])[0])
    return [KlineFile(f.symbol, f.path, f.candles[: days * DAY])]


@dataclass
class Session:
    settings: Settings
    run: SimRun
    ingest: IngestServices
    rt: Any = None
    facts: list[ExternalSignalIngested] = field(default_factory=list)
    judged: list = field(default_factory=list)

    @property
    def port(self) -> int:
        assert self.ingest.http is not None
        return self.ingest.http.port


@asynccontextmanager
async def running_session(tmp_path: Path, *, strategy: str = "confluence", signals: dict | None = None,
                          speed: float = 6000.0, warm_candles: int = 30, ctl_socket: bool = True):
    """A sim session replaying 2 days of BTCUSDT with the [signals] services; yields a Session."""
    settings = Settings(symbols=["BTCUSDT"], active_strategy=strategy, state_dir=tmp_path / "state",
                        sim={"speed": speed}, signals=signals or {})
    run = build_sim_run(settings, run_id="ingest-test", files=sample(), funding={}, journal=Journal("ingest-test"))
    s = Session(settings, run, IngestServices(settings.signals, poll_interval_s=0.01, timeout_s=10.0))
    run.engine.bus.subscribe(ExternalSignalIngested, s.facts.append)
    run.engine.bus.subscribe(SignalJudged, s.judged.append)
    paths = RunPaths.for_run(settings.state_dir, settings.db_path, run.run_id)

    def on_runtime(rt) -> None:
        s.rt = rt

    task = asyncio.create_task(run_sim_session(settings, run, paths, install_signal_handlers=False,
                                               on_runtime=s.ingest.wrap(on_runtime), ctl_socket=ctl_socket))
    try:
        await wait_for(lambda: s.rt is not None or task.done(), what="session start")
        if task.done():
            task.result()
        await s.ingest.started()
        await wait_for(lambda: s.rt.position >= warm_candles, what="replay under way")
        yield s
    finally:
        if s.rt is not None:
            s.rt.request_stop()
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 30)
        await s.ingest.close()


async def http(port: int, body: Any = None, *, method: str = "POST", path: str = "/signal",
               token: str | None = TOKEN, header: str = "bearer", raw: bytes | None = None) -> tuple[int, Any]:
    """One HTTP/1.1 request over a real socket; returns (status, parsed JSON body)."""
    data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json",
             f"Content-Length: {len(data)}", "Connection: close"]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}" if header == "bearer" else f"X-Perpdeck-Token: {token}")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
        await writer.drain()
        resp = await asyncio.wait_for(reader.read(), 20)
    finally:
        writer.close()
    head, _, payload = resp.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, (json.loads(payload) if payload.strip() else None)
