"""``perpdeck ctl``: operate a running instance (headless or console) over a local socket.

The instance listens on ``<state_dir>/perpdeck.sock``, a Unix socket created with mode 0600 and
checked against the peer's user id, so only the user running perpdeck can use it. One request per
connection: a JSON line ``{"cmd": "status" | "halt" | "resume" | "flatten"}`` answered by one JSON
line. Commands go through the same facade as the console's keys.

``{"cmd": "signal", "signal": {"type": 113, "id": "m-1", "symbol": "BTC", "data": {}}, "source": "cli"}``
hands one external signal (note 002) to the engine and answers with what became of it
(``{"ok", "result": result_doc}``; see ``engine.ingest``) — ``perpdeck signal`` uses it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import socket
import struct
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

from engine.events import FlattenAll, Halt, Resume

log = logging.getLogger("engine.control")

SOCKET_NAME = "perpdeck.sock"
COMMANDS = ("status", "halt", "resume", "flatten", "signal")
SIGNAL_SOURCES = ("cli", "simulate")


def socket_path(state_dir: Path) -> Path:
    """``<state_dir>/perpdeck.sock``; when that path is too long for a Unix socket (~108 bytes), a
    short per-user path in the temp directory derived from the state directory instead."""
    p = Path(state_dir).resolve() / SOCKET_NAME
    if len(os.fsencode(p)) <= 100:
        return p
    import hashlib
    import tempfile

    d = Path(tempfile.gettempdir()) / f"perpdeck-{os.getuid()}"
    d.mkdir(mode=0o700, exist_ok=True)
    return d / (hashlib.sha256(os.fsencode(p.parent)).hexdigest()[:20] + ".sock")


def _jsonable(v: Any) -> Any:
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: _jsonable(getattr(v, f.name)) for f in dataclasses.fields(v)}
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, Enum):
        return v.value
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def status_doc(snapshot) -> dict[str, Any]:
    """What note 002 asks of a status call, plus guard state: counts, PnL, trades today, state.

    The console's header shows the same figures. Keys are only ever added (scripts read this):
    the guard's counts sit next to the others (None where the engine does not report one), its
    halt and per-strategy figures under ``guard``, the break-even plans under ``timers``."""
    s = snapshot
    g = getattr(s, "status", None)
    guard = {
        "halted_by": getattr(g, "halted_by", None),
        "halt_reason": getattr(g, "guard_halt_reason", ""),
        "shock_until_ms": getattr(g, "shock_until_ms", None),
        "strategy_net_pnl": {k: str(v) for k, v in getattr(g, "strategy_net_pnl", ())},
    }
    return {
        "mode": s.mode,
        "run_id": s.run_id,
        "state": s.state,
        "halt_reason": s.halt_reason,
        "strategy": s.strategy,
        "exchange_time_ms": s.exchange_time_ms,
        "equity": str(s.equity),
        "available_balance": str(s.available_balance),
        "position_count": len(s.positions),
        "total_unrealized_pnl": str(s.unrealized_pnl),
        "daily_trades": s.trades_today,
        "max_daily_trades": s.max_daily_trades,
        "daily_pnl": str(s.today_pnl),
        "positions_opened_today": getattr(g, "positions_opened_today", None),
        "max_positions_per_day": getattr(g, "max_positions_per_day", None),
        "consecutive_losses": getattr(g, "consecutive_losses", None),
        "max_consecutive_losses": getattr(g, "max_consecutive_losses", None),
        "disabled_strategies": list(getattr(g, "disabled_strategies", ())),
        "guard": guard,
        "timers": _jsonable(list(s.timers)),
        "positions": _jsonable(list(s.positions)),
        "open_orders": len(s.orders),
        "open_algo_orders": len(s.algo_orders),
        "market_stream": _jsonable(s.market_stream),
        "user_stream": _jsonable(s.user_stream),
        "flatten": _jsonable(s.flatten) if s.flatten else None,
        "finished": s.finished,
    }


class ControlServer:
    def __init__(self, path: Path, facade, runtime, *, flatten_timeout_s: float = 120.0) -> None:
        self.path = Path(path)
        self.facade = facade
        self.runtime = runtime
        self.flatten_timeout_s = flatten_timeout_s
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            if await _alive(self.path):
                raise RuntimeError(f"another perpdeck is already running with state directory {self.path.parent}")
            self.path.unlink()  # stale socket from a crashed run
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._handle, path=str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)

    async def stop(self) -> None:
        if self._gateway is not None:
            self._gateway.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            sock = writer.get_extra_info("socket")
            if sock is not None and hasattr(socket, "SO_PEERCRED"):
                creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
                _pid, uid, _gid = struct.unpack("3i", creds)
                if uid != os.getuid():
                    writer.write(b'{"ok": false, "error": "permission denied"}\n')
                    return
            line = await asyncio.wait_for(reader.readline(), timeout=10)
            try:
                req = json.loads(line or b"{}")
                cmd = req.get("cmd")
            except (ValueError, AttributeError):
                req, cmd = {}, None
            reply = await self.execute(cmd, req)
            writer.write((json.dumps(reply) + "\n").encode())
            await writer.drain()
        except Exception:  # noqa: BLE001 - a bad client must not hurt the engine
            log.exception("control request failed")
        finally:
            writer.close()

    async def execute(self, cmd: Any, req: dict[str, Any] | None = None) -> dict[str, Any]:
        if cmd == "signal":
            return await self._signal(req or {})
        if cmd == "status":
            return {"ok": True, "status": status_doc(self.facade.snapshot())}
        if cmd == "halt":
            self.facade.submit(Halt("ctl"))
            return {"ok": True, "message": "halt requested: no new entries; protective orders stay"}
        if cmd == "resume":
            self.facade.submit(Resume())
            return {"ok": True, "message": "resume requested"}
        if cmd == "flatten":
            before = self.runtime.flatten_report
            self.facade.submit(FlattenAll("ctl"))
            loop = asyncio.get_running_loop()
            end = loop.time() + self.flatten_timeout_s
            while loop.time() < end:
                rep = self.runtime.flatten_report
                if rep is not None and rep is not before and rep.state in ("flat", "failed"):
                    return {"ok": rep.state == "flat", "flatten": _jsonable(rep)}
                await asyncio.sleep(0.05)
            rep = self.runtime.flatten_report
            return {"ok": False, "flatten": _jsonable(rep) if rep else None,
                    "error": "flatten still running: check `perpdeck ctl status`"}
        return {"ok": False, "error": f"unknown command {cmd!r}; expected one of {list(COMMANDS)}"}

    _gateway = None

    async def _signal(self, req: dict[str, Any]) -> dict[str, Any]:
        from engine.ingest import EngineNotAnswering, EnvelopeError, GatewayClosed, SignalGateway, parse_envelope
        from engine.ingest.envelope import error_doc, result_doc

        source = req.get("source", "cli")
        if source not in SIGNAL_SOURCES:
            source = "cli"
        obj = req.get("signal")
        try:
            cmd = parse_envelope(obj, source)
        except EnvelopeError as exc:
            return {"ok": False, "result": error_doc(str(exc), obj=obj), "error": str(exc)}
        if self._gateway is None:
            self._gateway = SignalGateway.for_runtime(self.runtime)
        try:
            fact = await self._gateway.send(cmd)
        except (EngineNotAnswering, GatewayClosed) as exc:
            return {"ok": False, "result": error_doc(str(exc), "unavailable", obj), "error": str(exc)}
        doc = result_doc(fact)
        return {"ok": doc["ok"], "result": doc, "error": doc["error"]}


async def _alive(path: Path) -> bool:
    try:
        _r, w = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), timeout=1)
    except (OSError, asyncio.TimeoutError):
        return False
    w.close()
    return True


async def request(path: Path, cmd: str, timeout_s: float = 150.0, **fields: Any) -> dict[str, Any]:
    """Send one command (with its ``fields``, e.g. ``signal={...}``) and return the reply."""
    reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), timeout=5)
    try:
        writer.write((json.dumps({"cmd": cmd, **fields}, default=str) + "\n").encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout=timeout_s)
        return json.loads(line)
    finally:
        writer.close()
