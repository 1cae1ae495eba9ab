"""Fault injection for tests: REST failures, stalls and unknown-status 503s, rate limits, bans,
clock skew, dropped WebSocket streams, expired listenKeys, duplicated / delayed / reordered
user-data events and fills split in two.

One-shot REST faults are queued and consumed in order by the first request they match
(``path=None`` matches any path; a path matches every HTTP method on it, so a fault on
``/fapi/v1/algoOrder`` may hit a POST, a GET or a DELETE). ``fail_next``/``rate_limit_next``/
``stall_next`` act before authentication (they model the gateway: the request never reaches the
matching engine);
``reject_next``/``unknown_next``/``stall_response_next`` act on authenticated requests (they model
the matching engine: ``unknown_next`` and ``stall_response_next`` apply the request).

User-data faults (``duplicate_user_events``, ``delay_user_events``, ``reorder_user_events``) act on
the next matching events of the account's stream (``events`` = event types, None = any); they are
counted in ``user_event_seq`` once, when produced, however they are delivered.

Every fault is off by default; with none armed the server does no extra work (one truth test per
request and per batch of user-data events). :attr:`Faults.fired` counts what actually took effect,
by kind. :meth:`Faults.apply` is the same API by name (the ``FAULT`` method of ``/sim``).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:  # pragma: no cover
    from engine.exchange.sim.server.local import LocalExchange

#: The §3.1 A 503 text: the request reached the engine, execution status unknown.
MSG_UNKNOWN_STATUS = "Unknown error, please check your request or try again later."
MSG_SERVICE_UNAVAILABLE = "Service Unavailable."
MSG_REQUEST_UNKNOWN = "Request occur unknown error."


@dataclass
class _Fault:
    kind: str  # "fail" | "unknown" | "reject" | "ratelimit" | "stall" | "stall_response"
    path: str | None
    status: int = 0
    body: bytes = b""
    content_type: str = "application/json"
    code: int = 0
    msg: str = ""
    retry_after_s: float = 0.0
    hold_s: float = 0.0
    respond: bool = False

    def matches(self, path: str) -> bool:
        return self.path is None or self.path == path


@dataclass
class _EventFault:
    kind: str  # "duplicate" | "delay" | "reorder"
    n: int  # events still to affect (reorder: events to collect)
    events: frozenset[str] | None
    seconds: float = 0.0  # duplicate: gap before the copy; delay: the delay; reorder: longest hold
    held: list[tuple[str, dict]] = field(default_factory=list)  # reorder: (listenKey, event) so far

    def matches(self, event: dict) -> bool:
        return self.events is None or event.get("e") in self.events


def _event_filter(events: str | Iterable[str] | None) -> frozenset[str] | None:
    if events is None:
        return None
    if isinstance(events, str):
        return frozenset({events})
    return frozenset(events)


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
        self._events: list[_EventFault] = []  # user-data faults, first match wins
        self._splits_armed = 0
        self.delay_rest_s: float = 0.0
        self.clock_skew_ms: int = 0
        #: what took effect, by kind (``fail``, ``drop`` (``fail_next`` with status 0), ``unknown``,
        #: ``reject``, ``ratelimit``, ``stall``, ``stall_response``, ``ban``, ``drop_streams``,
        #: ``expire_listen_key``, ``duplicate_event``, ``delay_event``, ``reorder_event``;
        #: ``split_fill`` is in :attr:`fired_counts`)
        self.fired: Counter[str] = Counter()
        #: (time.monotonic(), kind, what) of each of those, in order (``what``: the request path or
        #: the event type); split fills are not listed
        self.history: list[tuple[float, str, str]] = []
        #: (start, end, kind) in time.monotonic() of the stretches in which an injected fault made
        #: the exchange refuse every request: a ``ban_for`` and the Retry-After of an injected 429.
        #: Requests the client sends during a 429 back-off earn a ban of their own, not listed here.
        self.refusals: list[tuple[float, float, str]] = []

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

    def stall_next(self, seconds: float, *, path: str | None = None) -> None:
        """The next matching request hangs ``seconds`` and the connection is then dropped without
        an answer, NOT applied (lost before the engine: the client sees its own timeout when
        ``seconds`` exceeds it, else a reset connection)."""
        self._queue.append(_Fault("stall", path, hold_s=float(seconds)))

    def stall_response_next(self, seconds: float, *, path: str | None = "/fapi/v1/order",
                            respond: bool = False) -> None:
        """The next matching authenticated request IS applied at once; its answer is held
        ``seconds``, then the connection is dropped (``respond=True``: the answer is sent late).
        A timeout where the order was in fact placed."""
        self._queue.append(_Fault("stall_response", path, hold_s=float(seconds), respond=bool(respond)))

    def ban_for(self, seconds: float) -> None:
        """Every REST request gets HTTP 418 for ``seconds``."""
        self._fire("ban", f"{seconds:g} s")
        now = time.monotonic()
        self.refusals.append((now, now + float(seconds), "ban"))
        self._owner._ban_all(seconds)

    def clear(self) -> None:
        """Forget every queued one-shot fault: REST, user-data (events held for reordering are
        delivered now, in order) and fill splits. Attributes are left alone."""
        self._queue.clear()
        events, self._events = self._events, []
        for f in events:
            if f.kind == "reorder" and f.held:
                self._owner._release_held(list(f.held))
        sim = self._owner.sim
        self._splits_armed -= sim.split_fills
        sim.split_fills = 0

    def take(self, kinds: tuple[str, ...], path: str) -> _Fault | None:
        if not self._queue:
            return None
        for i, f in enumerate(self._queue):
            if f.kind in kinds and f.matches(path):
                self._fire("drop" if f.kind == "fail" and f.status == 0 else f.kind, path)
                return self._queue.pop(i)
        return None

    def _fire(self, kind: str, what: str) -> None:
        self.fired[kind] += 1
        self.history.append((time.monotonic(), kind, what))

    @property
    def pending(self) -> int:
        """One-shot faults armed and not yet consumed (REST, user-data and fill splits)."""
        return len(self._queue) + len(self._events) + self._owner.sim.split_fills

    @property
    def fired_counts(self) -> dict[str, int]:
        """:attr:`fired` plus ``split_fill`` (fills the matching engine booked in two)."""
        out = dict(self.fired)
        n = self._splits_armed - self._owner.sim.split_fills
        if n:
            out["split_fill"] = n
        return out

    # -- matching engine ---------------------------------------------------------------------------

    def split_next_fill(self, n: int = 1) -> None:
        """The next ``n`` fills (any order, liquidations excepted) are each booked as two fills of
        about half the quantity: ``PARTIALLY_FILLED`` then ``FILLED``, two trade ids, two
        ``ACCOUNT_UPDATE``s. A fill too small to split on the lot step is booked whole and does not
        use the fault up."""
        n = max(0, int(n))
        self._owner.sim.split_fills += n
        self._splits_armed += n

    # -- user-data events --------------------------------------------------------------------------

    def duplicate_user_events(self, n: int = 1, *, events: str | Iterable[str] | None = None,
                              after_s: float = 0.0) -> None:
        """Each of the next ``n`` matching user-data events is delivered twice: at once, and again
        ``after_s`` seconds later (0 = right behind the first copy)."""
        self._events.append(_EventFault("duplicate", max(0, int(n)), _event_filter(events), float(after_s)))

    def delay_user_events(self, n: int = 1, seconds: float = 1.0, *,
                          events: str | Iterable[str] | None = None) -> None:
        """Each of the next ``n`` matching user-data events is delivered ``seconds`` late; events
        produced meanwhile are not held (they overtake it)."""
        self._events.append(_EventFault("delay", max(0, int(n)), _event_filter(events), float(seconds)))

    def reorder_user_events(self, n: int = 2, *, events: str | Iterable[str] | None = None,
                            max_hold_s: float = 2.0) -> None:
        """The next ``n`` matching user-data events are held and delivered in reverse order once
        ``n`` have been collected (or ``max_hold_s`` after the first, whatever was collected);
        other events pass meanwhile."""
        self._events.append(_EventFault("reorder", max(2, int(n)), _event_filter(events), float(max_hold_s)))

    def _event_fault(self, event: dict, key: str) -> _EventFault | None:
        """The user-data fault that takes ``event`` of ``key``'s stream (its count used), or None."""
        for i, f in enumerate(self._events):
            if f.matches(event):
                if f.kind == "reorder":
                    f.held.append((key, event))
                    if len(f.held) >= f.n:
                        self._events.pop(i)
                else:
                    f.n -= 1
                    if f.n <= 0:
                        self._events.pop(i)
                self._fire(f.kind + "_event", str(event.get("e")))
                return f
        return None

    def _drop_reorder(self, f: _EventFault) -> bool:
        """Forget a reorder fault whose hold ran out; False when it had already been released."""
        for i, g in enumerate(self._events):
            if g is f:
                self._events.pop(i)
                return True
        return False

    # -- by name (the /sim FAULT method) -------------------------------------------------------------

    _BY_NAME = ("fail_next", "unknown_next", "reject_next", "rate_limit_next", "stall_next",
                "stall_response_next", "ban_for", "clear", "drop_streams", "expire_listen_key",
                "split_next_fill", "duplicate_user_events", "delay_user_events", "reorder_user_events")
    _SETTABLE = ("delay_rest_s", "clock_skew_ms")

    def apply(self, name: str, args: dict[str, Any] | None = None) -> Any:
        """Call the fault ``name`` with keyword ``args``; ``name="set"`` sets the attributes
        ``delay_rest_s`` / ``clock_skew_ms`` given in ``args``. Raises ``ValueError`` for an unknown
        name or attribute and ``TypeError`` for bad arguments."""
        args = dict(args or {})
        if name == "set":
            bad = sorted(set(args) - set(self._SETTABLE))
            if bad or not args:
                raise ValueError(f"set: expected some of {list(self._SETTABLE)}, got {sorted(args)}")
            if "delay_rest_s" in args:
                self.delay_rest_s = float(args["delay_rest_s"])
            if "clock_skew_ms" in args:
                self.clock_skew_ms = int(args["clock_skew_ms"])
            return None
        if name not in self._BY_NAME:
            raise ValueError(f"unknown fault {name!r}; expected one of {list(self._BY_NAME) + ['set']}")
        return getattr(self, name)(**args)

    # -- WebSocket -------------------------------------------------------------------------------

    def drop_streams(self, route: str | None = None, *, code: int | None = None) -> int:
        """Close market/public/private (and legacy) sockets abruptly; ``route`` limits it to one of
        ``"market"``, ``"public"``, ``"private"``, ``"legacy"`` (leading ``/`` optional). With
        ``code=None`` the TCP connection is aborted (the client sees 1006); with a code (e.g. 1011)
        a close frame is sent. The ``/sim`` control socket is never dropped. Returns the count."""
        n = self._owner._drop_streams(route, code)
        if n:
            self._fire("drop_streams", f"{route or 'all'} x{n}")
        return n

    def expire_listen_key(self) -> str | None:
        """Expire the account's active listenKey now (``listenKeyExpired`` is pushed to its sockets)."""
        k = self._owner._expire_listen_key()
        if k is not None:
            self._fire("expire_listen_key", "")
        return k
