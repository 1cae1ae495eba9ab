"""Client for the sim-only control socket ``<ws_url>/sim`` (lockstep replay driver, fault injection
into a server running in another process)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect


class SimControlError(RuntimeError):
    """The control socket answered with an error (e.g. ADVANCE on a paced replay)."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg


class SimControl:
    """``await SimControl.connect(ex.ws_url)``; then ``advance()`` / ``status()`` / ``fault()``; ``close()``."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._id = 0
        self._lock = asyncio.Lock()

    @classmethod
    async def connect(cls, ws_url: str) -> "SimControl":
        url = ws_url.rstrip("/")
        if not url.endswith("/sim"):
            url += "/sim"
        ws = await connect(url, max_size=None, ping_interval=None)
        return cls(ws)

    async def _call(self, method: str, params: Any = None) -> dict:
        async with self._lock:
            self._id += 1
            rid = self._id
            msg: dict[str, Any] = {"method": method, "id": rid}
            if params is not None:
                msg["params"] = params
            await self._ws.send(json.dumps(msg))
            while True:
                reply: Any = json.loads(await self._ws.recv())
                if isinstance(reply, dict) and reply.get("id") == rid:
                    break
            if "error" in reply:
                err = reply["error"] or {}
                raise SimControlError(int(err.get("code", -1)), str(err.get("msg", "")))
            return reply["result"]

    async def advance(self) -> dict:
        """Process the next candle: ``{"finished", "symbol", "openTime", "userEventSeq", "remaining"}``.

        The reply arrives after that candle's user-data events and market messages were written to
        the ``/private`` and ``/market`` sockets. ``finished`` is True when this call found no candle
        left to process (``symbol``/``openTime`` then None); the call that processes the last candle
        answers ``finished: False, remaining: 0``."""
        return await self._call("ADVANCE")

    async def status(self) -> dict:
        """``{"userEventSeq", "replayTimeMs", "remaining", "finished"}``."""
        return await self._call("STATUS")

    async def fault(self, name: str, **args: Any) -> dict:
        """Arm a fault on the server: ``name`` is a :class:`Faults` method (``fail_next``,
        ``unknown_next``, ``reject_next``, ``rate_limit_next``, ``stall_next``,
        ``stall_response_next``, ``ban_for``, ``clear``, ``drop_streams``, ``expire_listen_key``,
        ``split_next_fill``, ``duplicate_user_events``, ``delay_user_events``,
        ``reorder_user_events``) called with ``args`` as keywords, or ``"set"`` with
        ``delay_rest_s`` / ``clock_skew_ms``. Answers ``{"value", "pending", "fired"}``; a bad name
        or argument raises :class:`SimControlError` (code 2)."""
        return await self._call("FAULT", {"name": name, "args": args})

    async def close(self) -> None:
        await self._ws.close()

    async def __aenter__(self) -> "SimControl":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
