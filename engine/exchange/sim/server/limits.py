"""REST rate limits: per-IP request weight per minute, per-account order counts, 429 back-off, 418 bans.

Windows are fixed and aligned to the wall clock (minute / 10 s), like Binance's
``X-MBX-USED-WEIGHT-1M`` which resets at the minute. A request that arrives while a 429 back-off
(``Retry-After``) is still running earns an IP ban (HTTP 418) of ``ban_seconds``; during a ban
every request gets 418. Requests arriving within ``backoff_grace_ms`` of the 429 were in flight
before the client could know of it: they get the 429 again, not the ban (Binance bans clients that
keep sending, "failing to back off").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

_MINUTE = 60_000
_TEN_S = 10_000


@dataclass
class RateLimits:
    """Configurable limits (mutable: tests lower them to hit them quickly)."""

    request_weight_1m: int = 2400
    orders_10s: int = 300
    orders_1m: int = 1200
    ban_seconds: float = 120.0
    backoff_grace_ms: int = 1000
    ws_max_streams: int = 1024
    ws_max_incoming_per_s: int = 10
    ws_pong_timeout_s: float = 600.0

    def exchange_info_entries(self) -> list[dict]:
        return [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
             "limit": self.request_weight_1m},
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": self.orders_1m},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": self.orders_10s},
        ]


@dataclass
class _IpState:
    window: int = -1
    used: int = 0
    backoff_until_ms: int = 0
    backoff_since_ms: int = 0
    banned_until_ms: int = 0


@dataclass
class _OrderState:
    w10: int = -1
    n10: int = 0
    w60: int = -1
    n60: int = 0


@dataclass
class Verdict:
    """What the limiter says about one request: ``status`` 0 = go on."""

    status: int = 0
    code: int = 0
    msg: str = ""
    retry_after_s: int = 0
    headers: list[tuple[str, str]] = field(default_factory=list)


def _ceil_s(ms: int) -> int:
    return max(1, math.ceil(ms / 1000))


class RateLimiter:
    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits
        self._ips: dict[str, _IpState] = {}
        self._orders = _OrderState()
        self.global_ban_until_ms = 0

    def _ip(self, ip: str, now_ms: int) -> _IpState:
        st = self._ips.setdefault(ip, _IpState())
        w = now_ms // _MINUTE
        if st.window != w:
            st.window = w
            st.used = 0
        return st

    def used_weight(self, ip: str, now_ms: int) -> int:
        return self._ip(ip, now_ms).used

    def ban(self, ip: str, now_ms: int, seconds: float) -> None:
        st = self._ip(ip, now_ms)
        st.banned_until_ms = max(st.banned_until_ms, now_ms + int(seconds * 1000))

    def ban_all(self, now_ms: int, seconds: float) -> None:
        self.global_ban_until_ms = max(self.global_ban_until_ms, now_ms + int(seconds * 1000))

    def set_backoff(self, ip: str, now_ms: int, seconds: float) -> None:
        st = self._ip(ip, now_ms)
        if now_ms >= st.backoff_until_ms:
            st.backoff_since_ms = now_ms
        st.backoff_until_ms = max(st.backoff_until_ms, now_ms + int(seconds * 1000))

    def gate(self, ip: str, now_ms: int) -> Verdict:
        """Ban / back-off check before anything else (418)."""
        st = self._ip(ip, now_ms)
        until = max(st.banned_until_ms, self.global_ban_until_ms)
        if now_ms < until:
            return self._banned(until, now_ms)
        if now_ms < st.backoff_until_ms:
            if now_ms - st.backoff_since_ms < self.limits.backoff_grace_ms:
                # in flight when the 429 went out: the client could not have backed off yet
                return Verdict(429, -1003, "Too many requests; back off until the Retry-After has passed.",
                               _ceil_s(st.backoff_until_ms - now_ms))
            # kept coming during the 429 back-off: auto-ban
            st.backoff_until_ms = 0
            st.banned_until_ms = now_ms + int(self.limits.ban_seconds * 1000)
            return self._banned(st.banned_until_ms, now_ms)
        return Verdict()

    def _banned(self, until: int, now_ms: int) -> Verdict:
        return Verdict(418, -1003, f"Way too many requests; IP banned until {until}. "
                                    "Please use the websocket for live updates to avoid bans.",
                       _ceil_s(until - now_ms))

    def add_weight(self, ip: str, now_ms: int, weight: int) -> Verdict:
        st = self._ip(ip, now_ms)
        st.used += weight
        if st.used > self.limits.request_weight_1m:
            reset = (st.window + 1) * _MINUTE
            if now_ms >= st.backoff_until_ms:
                st.backoff_since_ms = now_ms
            st.backoff_until_ms = reset
            return Verdict(429, -1003, f"Too many requests; current limit is {self.limits.request_weight_1m} "
                                       "requests per minute. Please use the websocket for live updates to avoid "
                                       "polling the API.", _ceil_s(reset - now_ms))
        return Verdict()

    def too_many(self, ip: str, now_ms: int, retry_after_s: float) -> Verdict:
        """An injected 429 (``faults.rate_limit_next``): starts a back-off like a real one."""
        self.set_backoff(ip, now_ms, retry_after_s)
        return Verdict(429, -1003, f"Too many requests; current limit is {self.limits.request_weight_1m} "
                                   "requests per minute. Please use the websocket for live updates to avoid "
                                   "polling the API.", _ceil_s(int(retry_after_s * 1000)))

    def _order_windows(self, now_ms: int) -> _OrderState:
        o = self._orders
        w10, w60 = now_ms // _TEN_S, now_ms // _MINUTE
        if o.w10 != w10:
            o.w10, o.n10 = w10, 0
        if o.w60 != w60:
            o.w60, o.n60 = w60, 0
        return o

    def count_order(self, now_ms: int) -> Verdict:
        """One new order (POST order / algoOrder) on the account's 10 s and 1 min counters."""
        o = self._order_windows(now_ms)
        o.n10 += 1
        o.n60 += 1
        if o.n10 > self.limits.orders_10s:
            return Verdict(429, -1015, f"Too many new orders; current limit is {self.limits.orders_10s} "
                                       "orders per 10 SECOND.", _ceil_s((o.w10 + 1) * _TEN_S - now_ms))
        if o.n60 > self.limits.orders_1m:
            return Verdict(429, -1015, f"Too many new orders; current limit is {self.limits.orders_1m} "
                                       "orders per MINUTE.", _ceil_s((o.w60 + 1) * _MINUTE - now_ms))
        return Verdict()

    def order_headers(self, now_ms: int) -> list[tuple[str, str]]:
        o = self._order_windows(now_ms)
        return [("X-MBX-ORDER-COUNT-10S", str(o.n10)), ("X-MBX-ORDER-COUNT-1M", str(o.n60))]
