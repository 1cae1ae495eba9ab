"""``POST /signal`` on 127.0.0.1: external signals over HTTP, protected by a bearer token.

Request: ``Authorization: Bearer <token>`` (or ``X-Perpdeck-Token: <token>``) and a JSON body —
one signal object, or a list of them (processed in order, at most ``max_batch``). Answers:

* 200 — every signal reached the engine; the body is its :func:`~engine.ingest.envelope.result_doc`
  (a list of them for a list), whatever the verdict (``pending``, ``confluence``, ``duplicate`` …);
* 400 — the body is not JSON, or a signal was refused (``"error"`` starts with the field); in a
  list the valid signals are still processed and every item is answered;
* 401 — no token or a wrong one (compared in constant time; never logged, echoed or raised);
* 404 / 405 — another path / method; 503 — the engine did not take the signal in time.

The HTTP layer is the sim server's minimal asyncio HTTP/1.1 server (no new dependency).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from typing import Any

from engine.exchange.sim.server.http import HttpRequest, HttpResponse, HttpServer
from engine.ingest.envelope import EnvelopeError, error_doc, parse_envelope, result_doc
from engine.ingest.gateway import EngineNotAnswering, GatewayClosed, SignalGateway

log = logging.getLogger("engine.ingest.http")

PATHS = ("/signal", "/signals")


def _json(status: int, doc: Any, headers: list[tuple[str, str]] | None = None) -> HttpResponse:
    return HttpResponse(status, json.dumps(doc, default=str).encode(), headers or [])


class SignalHttpServer:
    """Serve ``POST /signal`` on ``host:port`` (0 = a free port; see :attr:`port`)."""

    def __init__(self, gateway: SignalGateway, token: str, *, host: str = "127.0.0.1", port: int = 0,
                 max_batch: int = 1000, source: str = "http") -> None:
        if not token:
            raise ValueError("token: the signal endpoint needs a token")
        self._token = token.encode("utf-8")
        self.gateway = gateway
        self.host = host
        self.max_batch = max_batch
        self.source = source
        self._http = HttpServer(self._handle, host, port)
        self.refused = 0  # requests answered 401
        self.accepted = 0  # signals that reached the engine

    def __repr__(self) -> str:  # never the token
        return f"SignalHttpServer({self.host}, refused={self.refused}, accepted={self.accepted})"

    @property
    def port(self) -> int:
        return self._http.port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/signal"

    async def start(self) -> None:
        await self._http.start()

    async def stop(self) -> None:
        await self._http.stop()

    # -- requests ---------------------------------------------------------------------------------

    def _authorized(self, req: HttpRequest) -> str | None:
        """None when the request carries the token, else why not (for the log; never the value)."""
        given: str | None = None
        auth = req.header("authorization")
        if auth is not None and auth[:7].lower() == "bearer ":
            given = auth[7:].strip()
        elif req.header("x-perpdeck-token") is not None:
            given = req.header("x-perpdeck-token", "").strip()
        if not given:
            return "no token"
        # headers were decoded as latin-1: encoding back gives the bytes that were sent
        if hmac.compare_digest(given.encode("latin-1", "replace"), self._token):
            return None
        return "wrong token"

    async def _handle(self, req: HttpRequest) -> HttpResponse:
        why = self._authorized(req)
        if why is not None:
            self.refused += 1
            if self.refused <= 20 or self.refused % 1000 == 0:
                log.warning("signal endpoint: refused a request from %s (%s; %d refused so far)",
                            req.client_ip, why, self.refused)
            return _json(401, {"ok": False, "error": "unauthorized: send Authorization: Bearer <token> "
                                                     "(the [signals] token)"},
                         [("WWW-Authenticate", 'Bearer realm="perpdeck signals"')])
        if req.path not in PATHS:
            return _json(404, {"ok": False, "error": f"not found: POST signals to {PATHS[0]}"})
        if req.method != "POST":
            return _json(405, {"ok": False, "error": f"method {req.method} not allowed: use POST"},
                         [("Allow", "POST")])
        try:
            body = json.loads(req.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            msg = f"body: not valid JSON ({exc})" if isinstance(exc, json.JSONDecodeError) else "body: not UTF-8 JSON"
            return _json(400, error_doc(msg))
        if isinstance(body, list):
            if not body:
                return _json(400, error_doc("body: an empty list; expected at least one signal"))
            if len(body) > self.max_batch:
                return _json(400, error_doc(f"body: {len(body)} signals in one request; at most {self.max_batch}"))
            docs, status = await self._process(body)
            return _json(status, docs)
        docs, status = await self._process([body])
        return _json(status, docs[0])

    async def _process(self, items: list[Any]) -> tuple[list[dict], int]:
        futures: list[Any] = []
        for obj in items:  # submit all first: one FIFO, so the engine sees them in this order
            try:
                futures.append(self.gateway.send_nowait(parse_envelope(obj, self.source)))
            except EnvelopeError as exc:
                futures.append(error_doc(str(exc), obj=obj))
            except GatewayClosed as exc:
                futures.append(error_doc(str(exc), "unavailable", obj))
        docs: list[dict] = []
        status = 200
        for i, f in enumerate(futures):
            if isinstance(f, dict):
                docs.append(f)
                status = max(status, 503 if f["status"] == "unavailable" else 400)
                continue
            try:
                fact = await asyncio.wait_for(asyncio.shield(f), self.gateway.timeout_s)
            except asyncio.TimeoutError:
                f.cancel()
                docs.append(error_doc(str(EngineNotAnswering(
                    f"the engine did not take the signal within {self.gateway.timeout_s:g} s")),
                    "unavailable", items[i]))
                status = 503
                continue
            except GatewayClosed as exc:
                docs.append(error_doc(str(exc), "unavailable", items[i]))
                status = 503
                continue
            doc = result_doc(fact)
            docs.append(doc)
            if doc["ok"]:
                self.accepted += 1
            else:
                status = max(status, 400)
        return docs, status
