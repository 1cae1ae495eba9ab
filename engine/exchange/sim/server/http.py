"""A minimal asyncio HTTP/1.1 server: keep-alive, Content-Length and chunked bodies, no TLS.

Only what a Binance REST client needs: one request at a time per connection (no pipelining
beyond reading the next request after the previous response), ``Expect: 100-continue``,
``Connection: close`` honoured, HTTP/1.0 closes unless ``keep-alive`` is asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Awaitable, Callable

log = logging.getLogger(__name__)

_MAX_LINE = 64 * 1024
_MAX_HEADERS = 100
_MAX_BODY = 1024 * 1024
_INTERNAL = b'{"code":-1000,"msg":"An unknown error occured while processing the request."}'

_REASONS = {
    100: "Continue", 200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout", 411: "Length Required",
    413: "Payload Too Large", 418: "I'm a teapot", 429: "Too Many Requests", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
}


@dataclass
class HttpRequest:
    method: str
    target: str  # raw request target: path plus "?query" (still percent-encoded)
    version: str
    headers: dict[str, str]  # lower-cased names; repeated headers joined with ", "
    body: bytes
    client_ip: str

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def raw_query(self) -> str:
        parts = self.target.split("?", 1)
        return parts[1] if len(parts) == 2 else ""

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)


@dataclass
class HttpResponse:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "application/json"


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]


class _BadRequest(Exception):
    def __init__(self, status: int, msg: str) -> None:
        super().__init__(msg)
        self.status = status
        self.msg = msg


class HttpServer:
    """Serve ``handler`` on ``host:port`` (0 = ephemeral). ``stop()`` also closes idle keep-alive sockets."""

    def __init__(self, handler: Handler, host: str = "127.0.0.1", port: int = 0) -> None:
        self._handler = handler
        self._host = host
        self._port = port
        self._server: asyncio.AbstractServer | None = None
        self._conns: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task] = set()

    @property
    def port(self) -> int:
        assert self._server is not None and self._server.sockets
        return self._server.sockets[0].getsockname()[1]

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve_conn, self._host, self._port, limit=_MAX_LINE)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in list(self._conns):
            w.close()
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    def abort_all(self) -> None:
        """Drop every open client connection at once (fault injection)."""
        for w in list(self._conns):
            transport = w.transport
            if transport is not None:
                transport.abort()

    async def _serve_conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._conns.add(writer)
        peer = writer.get_extra_info("peername")
        ip = peer[0] if isinstance(peer, tuple) and peer else "unknown"
        try:
            while True:
                try:
                    req = await self._read_request(reader, writer, ip)
                except _BadRequest as e:
                    body = ('{"code":-1000,"msg":"%s"}' % e.msg.replace('"', "'")).encode()
                    await self._write(writer, HttpResponse(e.status, body), keep_alive=False)
                    break
                if req is None:
                    break
                keep_alive = _keep_alive(req)
                try:
                    resp = await self._handler(req)
                except asyncio.CancelledError:
                    raise
                except Exception:  # the app must answer; never leave the client hanging
                    log.exception("HTTP handler failed for %s %s", req.method, req.target)
                    resp = HttpResponse(500, _INTERNAL)
                if resp.status < 0:  # app asked for an abrupt disconnect
                    if writer.transport is not None:
                        writer.transport.abort()
                    break
                await self._write(writer, resp, keep_alive=keep_alive, head=req.method == "HEAD")
                if not keep_alive:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._conns.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)
            if task is not None:
                self._tasks.discard(task)

    async def _read_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                            ip: str) -> HttpRequest | None:
        line = b""
        while not line.strip():  # tolerate stray CRLFs between requests
            try:
                line = await reader.readuntil(b"\n")
            except asyncio.IncompleteReadError:
                return None
            except asyncio.LimitOverrunError:
                raise _BadRequest(414, "Request line too long") from None
        try:
            method, target, version = line.decode("latin-1").strip().split(" ")
        except ValueError:
            raise _BadRequest(400, "Malformed request line") from None
        if not version.startswith("HTTP/1."):
            raise _BadRequest(400, "Unsupported HTTP version")
        headers: dict[str, str] = {}
        for _ in range(_MAX_HEADERS + 1):
            try:
                h = await reader.readuntil(b"\n")
            except asyncio.LimitOverrunError:
                raise _BadRequest(431, "Header line too long") from None
            h = h.rstrip(b"\r\n")
            if not h:
                break
            name, sep, value = h.decode("latin-1").partition(":")
            if not sep:
                raise _BadRequest(400, "Malformed header")
            key = name.strip().lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        else:
            raise _BadRequest(431, "Too many headers")
        if headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await writer.drain()
        body = b""
        te = headers.get("transfer-encoding", "").lower()
        if "chunked" in te:
            chunks = []
            total = 0
            while True:
                size_line = await reader.readuntil(b"\n")
                try:
                    size = int(size_line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise _BadRequest(400, "Malformed chunk size") from None
                if size == 0:
                    while (await reader.readuntil(b"\n")).strip():  # trailers
                        pass
                    break
                total += size
                if total > _MAX_BODY:
                    raise _BadRequest(413, "Body too large")
                chunks.append(await reader.readexactly(size))
                await reader.readuntil(b"\n")
            body = b"".join(chunks)
        elif "content-length" in headers:
            try:
                n = int(headers["content-length"])
            except ValueError:
                raise _BadRequest(400, "Malformed Content-Length") from None
            if n < 0 or n > _MAX_BODY:
                raise _BadRequest(413, "Body too large")
            body = await reader.readexactly(n) if n else b""
        return HttpRequest(method.upper(), target, version, headers, body, ip)

    @staticmethod
    async def _write(writer: asyncio.StreamWriter, resp: HttpResponse, *, keep_alive: bool, head: bool = False) -> None:
        reason = _REASONS.get(resp.status, "Unknown")
        lines = [f"HTTP/1.1 {resp.status} {reason}", f"Content-Type: {resp.content_type}",
                 f"Content-Length: {len(resp.body)}", "Connection: " + ("keep-alive" if keep_alive else "close")]
        for k, v in resp.headers:
            lines.append(f"{k}: {v}")
        head_bytes = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        writer.write(head_bytes if head else head_bytes + resp.body)
        await writer.drain()


def _keep_alive(req: HttpRequest) -> bool:
    conn = (req.header("connection") or "").lower()
    if req.version == "HTTP/1.0":
        return "keep-alive" in conn
    return "close" not in conn
