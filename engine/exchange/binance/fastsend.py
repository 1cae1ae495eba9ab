"""The latency-critical order path: new orders written to the socket straight from the event loop.

Everything else goes through binance-futures-connector on worker threads (``rest.py``). For
``POST /fapi/v1/order`` and ``POST /fapi/v1/algoOrder`` a thread hand-off costs milliseconds when
the loop is busy with a minute-boundary burst of klines (a worker must wake and win the GIL), so
these two requests are sent on keep-alive HTTP/1.1 connections over asyncio streams: encoded
exactly like the connector encodes (its ``encoded_string``), signed by our signer (timestamp, then
signature last), with the connector's headers. The response is read without blocking the loop,
and failures become the connector's own ``ClientError``/``ServerError`` so error mapping, -1021
recovery and unknown-status resolution in ``rest.py`` are unchanged.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from typing import Any, Callable
from urllib.parse import urlsplit

from binance.__version__ import __version__ as _connector_version
from binance.error import ClientError, ServerError
from binance.lib.utils import cleanNoneValue, encoded_string

from engine.exchange.binance.signing import Signer, sign_params

FAST_PATHS = frozenset({"/fapi/v1/order", "/fapi/v1/algoOrder"})


class SendTimeout(Exception):
    """No complete response in time: the request may or may not have been applied."""


class _Conn:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer


class OrderSender:
    """Signed POSTs on a small pool of keep-alive connections. An async transport for BinanceRest."""

    def __init__(self, base_url: str, api_key: str | None, signer: Signer | None,
                 timestamp_ms: Callable[[], int], *, timeout_s: float = 10.0, on_write=None) -> None:
        u = urlsplit(base_url)
        self.host = u.hostname or "127.0.0.1"
        self.tls = u.scheme == "https"
        self.port = u.port or (443 if self.tls else 80)
        self.host_header = u.netloc
        self.api_key = api_key
        self.signer = signer
        self.timestamp_ms = timestamp_ms
        self.timeout_s = timeout_s
        self.on_write = on_write  # instrumentation hook: called with (path, params) as the bytes leave
        self._idle: list[_Conn] = []
        self._ssl = ssl.create_default_context() if self.tls else None
        self.min_idle = 0  # set by warm(): the pool is topped up in the background after each use
        self._refilling = False

    async def warm(self, n: int = 2) -> None:
        """Open connections ahead of time so the first order does not pay for the handshake."""
        self.min_idle = n
        for _ in range(n):
            self._idle.append(await self._open())

    async def _refill(self) -> None:
        try:
            while len(self._idle) < self.min_idle:
                self._idle.append(await self._open())
        except OSError:
            pass  # the next order opens its own connection
        finally:
            self._refilling = False

    async def _open(self) -> _Conn:
        reader, writer = await asyncio.open_connection(self.host, self.port, ssl=self._ssl)
        return _Conn(reader, writer)

    async def close(self) -> None:
        conns, self._idle = self._idle, []
        for c in conns:
            c.writer.close()
        for c in conns:
            try:
                await c.writer.wait_closed()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass

    def _request_bytes(self, method: str, path: str, params: dict) -> bytes:
        signed = sign_params(params, self.timestamp_ms(), self.signer)  # type: ignore[arg-type]
        target = f"{path}?{encoded_string(cleanNoneValue(signed))}"
        head = (
            f"{method} {target} HTTP/1.1\r\n"
            f"Host: {self.host_header}\r\n"
            f"User-Agent: binance-futures-connector-python/{_connector_version}\r\n"
            "Content-Type: application/json;charset=utf-8\r\n"
            f"X-MBX-APIKEY: {self.api_key or ''}\r\n"
            "Content-Length: 0\r\n"
            "Connection: keep-alive\r\n\r\n"
        )
        return head.encode("latin-1")

    async def __call__(self, method: str, path: str, params: dict, security: str) -> tuple[Any, dict]:
        if self.signer is None:
            raise ClientError(401, -2014, "API-key format invalid.", {})
        data = self._request_bytes(method, path, params)
        conn = self._idle.pop() if self._idle else await self._open()
        if len(self._idle) < self.min_idle and not self._refilling:
            self._refilling = True
            asyncio.get_running_loop().create_task(self._refill())
        headers: dict | None = None
        try:
            conn.writer.write(data)  # the request leaves here, on this turn of the loop
            if self.on_write is not None:
                self.on_write(path, params)
            async with asyncio.timeout(self.timeout_s):
                status, headers, body = await _read_response(conn.reader)
        except (asyncio.TimeoutError, TimeoutError):
            raise SendTimeout(f"no response to {method} {path} within {self.timeout_s} s") from None
        finally:
            if headers is not None and headers.get("connection", "keep-alive").lower() != "close":
                self._idle.append(conn)  # a complete response: the connection can carry the next order
            else:
                conn.writer.close()
        text = body.decode("utf-8", "replace")
        if status >= 500:
            raise ServerError(status, text)
        if status >= 400:
            try:
                err = json.loads(text)
                raise ClientError(status, err["code"], err["msg"], headers)
            except (ValueError, KeyError, TypeError):
                raise ClientError(status, None, text, headers) from None
        try:
            return json.loads(text), headers
        except ValueError:
            return text, headers


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict, bytes]:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("connection closed before a response")
    parts = status_line.decode("latin-1").split(" ", 2)
    status = int(parts[1])
    headers: dict[str, str] = {}
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        k, _, v = line.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                await reader.readline()
                break
            chunks.append(await reader.readexactly(size))
            await reader.readline()
        return status, headers, b"".join(chunks)
    n = int(headers.get("content-length", "0"))
    return status, headers, (await reader.readexactly(n)) if n else b""
