"""The signal endpoint and the file follower for the length of one session, from ``[signals]``.

The CLI wraps the session's ``on_runtime`` callback with :meth:`IngestServices.wrap`: when the
runtime exists the services start (the HTTP endpoint only when a token is configured, the
follower only when a file is), and :meth:`close` — called when the session returns, normally or
not — stops both and answers whoever still waits.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Callable

from engine.ingest.follow import SignalFileFollower
from engine.ingest.gateway import SignalGateway
from engine.ingest.http import SignalHttpServer

log = logging.getLogger("engine.ingest")


class IngestServices:
    def __init__(self, settings, *, host: str = "127.0.0.1", poll_interval_s: float = 0.25,
                 timeout_s: float = 10.0) -> None:
        """``settings``: the ``[signals]`` table (:class:`engine.config.SignalSettings`)."""
        self.settings = settings
        self.host = host
        self.poll_interval_s = poll_interval_s
        self.timeout_s = timeout_s
        self.gateway: SignalGateway | None = None
        self.http: SignalHttpServer | None = None
        self.follower: SignalFileFollower | None = None
        self._starting: asyncio.Task | None = None

    def __repr__(self) -> str:  # never the token
        return f"IngestServices(http={'on' if self.http else 'off'}, file={'on' if self.follower else 'off'})"

    def wrap(self, on_runtime: Callable | None) -> Callable:
        """``on_runtime`` with the services attached to the runtime first."""

        def hook(rt) -> None:
            self.attach(rt)
            if on_runtime is not None:
                on_runtime(rt)

        return hook

    def attach(self, rt) -> None:
        """Start the services around a running session's runtime (called inside its event loop)."""
        if self.gateway is not None:
            return
        self.gateway = SignalGateway.for_runtime(rt, timeout_s=self.timeout_s)
        self._starting = asyncio.get_running_loop().create_task(self._start(), name="signal-ingest-start")

    async def started(self) -> None:
        """Wait until the endpoint listens and the follower runs (those configured)."""
        if self._starting is not None:
            await asyncio.shield(self._starting)

    async def _start(self) -> None:
        s = self.settings
        assert self.gateway is not None
        token = s.token.get_secret_value() if s.token is not None else ""
        if token:
            server = SignalHttpServer(self.gateway, token, host=self.host, port=int(s.http_port))
            try:
                await server.start()
            except OSError as exc:
                log.error("signal endpoint could not listen on %s:%s (%s): external signals over HTTP are OFF",
                          self.host, s.http_port, exc.strerror or exc)
            else:
                self.http = server
                log.info("signal endpoint listening on %s (bearer token required)", server.url)
        else:
            log.info("signal endpoint off: no [signals] token configured (set PERPDECK_SIGNALS__TOKEN); "
                     "`perpdeck signal` and the file follower do not need it")
        if s.follow_file is not None:
            self.follower = SignalFileFollower(Path(s.follow_file), self.gateway, from_start=bool(s.follow_from_start),
                                               poll_interval_s=self.poll_interval_s)
            await self.follower.start()

    async def close(self) -> None:
        if self._starting is not None:
            if not self._starting.done():
                self._starting.cancel()
            await asyncio.gather(self._starting, return_exceptions=True)
        if self.follower is not None:
            await self.follower.stop()
        if self.gateway is not None:
            self.gateway.close()  # whoever still waits is answered (503 over HTTP) ...
        if self.http is not None:
            for _ in range(3):
                await asyncio.sleep(0)  # ... before the connections close
            await self.http.stop()
            log.info("signal endpoint closed")
