"""Fault injection for tests: REST failures, unknown-status 503s, rate limits, bans, clock skew,
dropped WebSocket streams and expired listenKeys.

One-shot REST faults are queued and consumed in order by the first request they match
(``path=None`` matches any path). ``fail_next``/``rate_limit_next`` act before authentication
(they model the gateway); ``reject_next``/``unknown_next`` act on authenticated requests
(they model the matching engine).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from engine.exchange.sim.server.local import LocalExchange

#: The §3.1 A 503 text: the request reached the engine, execution status unknown.
MSG_UNKNOWN_STATUS = "Unknown error, please check your request or try again later."
MSG_SERVICE_UNAVAILABLE = "Service Unavailable."
MSG_REQUEST_UNKNOWN = "Request occur unknown error."


@dataclass
class _Fault:
    kind: str  # "fail" | "unknown" | "reject" | "ratelimit"
    path: str | None
    status: int = 0
    body: bytes = b""
    content_type: str = "application/json"
    code: int = 0
    msg: str = ""
    retry_after_s: float = 0.0

    def matches(self, path: str) -> bool:
        return self.path is None or self.path == path


def _body(body: Any, default: dict) -> tuple[bytes, str]:
    if body is None:
        return json.dumps(default, separators=(",", ":")).encode(), "application/json"
    if isinstance(body, (dict, list)):
        return json.dumps(body, separators=(",", ":")).encode(), "application/json"
    raw = body.encode() if isinstance(body, str) else bytes(body)
    try:
        json.loads(raw)
        return raw, "application/json"
    except ValueError:
        return raw, "text/plain"


class Faults:
    """``LocalExchange.faults``. Plain attributes: ``delay_rest_s`` (sleep before each REST request is
    processed) and ``clock_skew_ms`` (added to the request clock: ``/fapi/v1/time`` and the
    ``timestamp``/``recvWindow`` check)."""

    def __init__(self, owner: "LocalExchange") -> None:
        self._owner = owner
        self._queue: list[_Fault] = []
        self.delay_rest_s: float = 0.0
        self.clock_skew_ms: int = 0

    # -- REST ----------------------------------------------------------------------------------

    def fail_next(self, n: int = 1, *, status: int = 503, path: str | None = None, body: Any = None) -> None:
        """The next ``n`` matching requests fail with HTTP ``status`` WITHOUT being applied.

        Default bodies: 503 → ``{"code":-1001,"msg":"Service Unavailable."}``, other statuses →
        ``{"code":-1000,"msg":"Request occur unknown error."}``. ``body`` may be a dict/list (sent as
        JSON) or text/bytes (sent as is). ``status=0`` drops the connection without any answer.
        """
        if status == 503:
            default = {"code": -1001, "msg": MSG_SERVICE_UNAVAILABLE}
        else:
            default = {"code": -1000, "msg": MSG_REQUEST_UNKNOWN}
        raw, ctype = _body(body, default)
        for _ in range(max(0, int(n))):
            self._queue.append(_Fault("fail", path, status=status, body=raw, content_type=ctype))

    def unknown_next(self, path: str | None = "/fapi/v1/order", *, body: Any = None) -> None:
        """The next matching authenticated request IS applied to the sim, then answered 503 with
        ``{"code":-1000,"msg":"Unknown error, please check your request or try again later."}``
        (§3.1 A: execution status unknown)."""
        raw, ctype = _body(body, {"code": -1000, "msg": MSG_UNKNOWN_STATUS})
        self._queue.append(_Fault("unknown", path, status=503, body=raw, content_type=ctype))

    def reject_next(self, path: str | None, code: int, msg: str, http_status: int = 400) -> None:
        """The next matching authenticated request is answered ``{"code": code, "msg": msg}`` unapplied."""
        self._queue.append(_Fault("reject", path, status=http_status, code=code, msg=msg))

    def rate_limit_next(self, retry_after_s: float, *, path: str | None = None) -> None:
        """The next matching request gets HTTP 429 ``-1003`` with ``Retry-After``; requests during the
        back-off then earn a 418 ban (like a real 429)."""
        self._queue.append(_Fault("ratelimit", path, retry_after_s=float(retry_after_s)))

    def ban_for(self, seconds: float) -> None:
        """Every REST request gets HTTP 418 for ``seconds``."""
        self._owner._ban_all(seconds)

    def clear(self) -> None:
        """Forget every queued one-shot fault (attributes are left alone)."""
        self._queue.clear()

    def take(self, kinds: tuple[str, ...], path: str) -> _Fault | None:
        for i, f in enumerate(self._queue):
            if f.kind in kinds and f.matches(path):
                return self._queue.pop(i)
        return None

    @property
    def pending(self) -> int:
        return len(self._queue)

    # -- WebSocket -------------------------------------------------------------------------------

    def drop_streams(self, route: str | None = None, *, code: int | None = None) -> int:
        """Close market/public/private (and legacy) sockets abruptly; ``route`` limits it to one of
        ``"market"``, ``"public"``, ``"private"``, ``"legacy"`` (leading ``/`` optional). With
        ``code=None`` the TCP connection is aborted (the client sees 1006); with a code (e.g. 1011)
        a close frame is sent. The ``/sim`` control socket is never dropped. Returns the count."""
        return self._owner._drop_streams(route, code)

    def expire_listen_key(self) -> str | None:
        """Expire the account's active listenKey now (``listenKeyExpired`` is pushed to its sockets)."""
        return self._owner._expire_listen_key()
