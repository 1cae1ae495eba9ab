"""The replayed market: which candles are "closed" by the replay clock, ``GET /fapi/v1/klines``
over them, and the kline / markPrice stream payloads of one candle."""

from __future__ import annotations

import calendar
from bisect import bisect_left, bisect_right
from datetime import datetime, timezone
from decimal import Decimal
from typing import Sequence

from engine.exchange.weights import klines_weight
from engine.exchange.filters import fmt
from engine.exchange.sim.matching import SimApiError
from engine.model import Candle

_MIN = 60_000
_FIXED_MS = {
    "1m": _MIN, "3m": 3 * _MIN, "5m": 5 * _MIN, "15m": 15 * _MIN, "30m": 30 * _MIN,
    "1h": 60 * _MIN, "2h": 120 * _MIN, "4h": 240 * _MIN, "6h": 360 * _MIN, "8h": 480 * _MIN,
    "12h": 720 * _MIN, "1d": 1440 * _MIN, "3d": 3 * 1440 * _MIN,
}
_WEEK = 7 * 1440 * _MIN
_MONDAY_OFFSET = 4 * 1440 * _MIN  # 1970-01-01 was a Thursday
INTERVALS = tuple(_FIXED_MS) + ("1w", "1M")


def _err(code: int, msg: str) -> SimApiError:
    return SimApiError(400, code, msg)


def _month_start(t: int) -> int:
    d = datetime.fromtimestamp(t / 1000, tz=timezone.utc)
    return calendar.timegm((d.year, d.month, 1, 0, 0, 0)) * 1000


def _next_month(t: int) -> int:
    d = datetime.fromtimestamp(t / 1000, tz=timezone.utc)
    y, m = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
    return calendar.timegm((y, m, 1, 0, 0, 0)) * 1000


def bucket_start(t: int, interval: str) -> int:
    if interval in _FIXED_MS:
        ms = _FIXED_MS[interval]
        return t - t % ms
    if interval == "1w":
        return (t - _MONDAY_OFFSET) // _WEEK * _WEEK + _MONDAY_OFFSET
    return _month_start(t)


def bucket_end(start: int, interval: str) -> int:
    """Exclusive end of the bucket that starts at ``start``."""
    if interval in _FIXED_MS:
        return start + _FIXED_MS[interval]
    if interval == "1w":
        return start + _WEEK
    return _next_month(start)


def kline_weight(params: dict[str, str]) -> int:
    try:
        limit = int(params.get("limit") or 500)
    except ValueError:
        return 1
    return klines_weight(limit)


class MarketTape:
    """Per-symbol candle lists and how many of each have been replayed."""

    def __init__(self, candles: Sequence[Candle]) -> None:
        self.candles: list[Candle] = sorted(candles, key=lambda c: c.open_time_ms)  # stable: keeps symbol order
        self._by_sym: dict[str, list[Candle]] = {}
        self._opens: dict[str, list[int]] = {}
        for c in self.candles:
            self._by_sym.setdefault(c.symbol, []).append(c)
        for s, lst in self._by_sym.items():
            lst.sort(key=lambda c: c.open_time_ms)
            self._opens[s] = [c.open_time_ms for c in lst]
        self._done: dict[str, int] = {s: 0 for s in self._by_sym}
        self.position = 0

    @property
    def remaining(self) -> int:
        return len(self.candles) - self.position

    @property
    def finished(self) -> bool:
        return self.position >= len(self.candles)

    def peek(self) -> Candle | None:
        return self.candles[self.position] if self.position < len(self.candles) else None

    def take(self) -> Candle:
        c = self.candles[self.position]
        self.position += 1
        self._done[c.symbol] = bisect_right(self._opens[c.symbol], c.open_time_ms)
        return c

    def symbols(self) -> list[str]:
        return list(self._by_sym)

    # -- GET /fapi/v1/klines -------------------------------------------------------------------

    def klines(self, params: dict[str, str], known_symbols: set[str]) -> list[list]:
        symbol = params.get("symbol") or ""
        if not symbol:
            raise _err(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        interval = params.get("interval") or ""
        if not interval:
            raise _err(-1102, "Mandatory parameter 'interval' was not sent, was empty/null, or malformed.")
        if symbol not in self._by_sym and symbol not in known_symbols:
            raise _err(-1121, "Invalid symbol.")
        if interval not in INTERVALS:
            raise _err(-1120, "Invalid interval.")

        def opt_int(name: str) -> int | None:
            v = params.get(name)
            if v is None or v == "":
                return None
            try:
                return int(v)
            except ValueError:
                raise _err(-1100, f"Illegal characters found in parameter '{name}'; "
                                  "legal range is '^[0-9]{1,20}$'.") from None

        start, end, limit = opt_int("startTime"), opt_int("endTime"), opt_int("limit")
        if limit is None:
            limit = 500
        if limit <= 0 or limit > 1500:
            raise _err(-1130, "Data sent for parameter 'limit' is not valid.")
        if start is not None and end is not None and start > end:
            return []
        lst = self._by_sym.get(symbol, [])
        opens = self._opens.get(symbol, [])
        n = self._done.get(symbol, 0)  # only replayed (closed) candles exist
        if n == 0:
            return []
        groups: list[list[Candle]] = []
        if start is not None:
            i = bisect_left(opens, start, 0, n)
            # the first bucket whose open time is >= startTime
            while i < n:
                b = bucket_start(opens[i], interval)
                if b >= start:
                    break
                i = bisect_left(opens, bucket_end(b, interval), 0, n)
            while i < n and len(groups) < limit:
                b = bucket_start(opens[i], interval)
                if end is not None and b > end:
                    break
                j = bisect_left(opens, bucket_end(b, interval), i, n)
                groups.append(lst[i:j])
                i = j
        else:
            hi = n if end is None else bisect_right(opens, end, 0, n)
            if hi == 0:
                return []
            last_b = bucket_start(opens[hi - 1], interval)
            hi = bisect_left(opens, bucket_end(last_b, interval), hi - 1, n)
            while hi > 0 and len(groups) < limit:
                b = bucket_start(opens[hi - 1], interval)
                lo = bisect_left(opens, b, 0, hi)
                groups.append(lst[lo:hi])
                hi = lo
            groups.reverse()
        return [_row(g, interval) for g in groups]


def _row(group: list[Candle], interval: str) -> list:
    first = group[0]
    b = bucket_start(first.open_time_ms, interval)
    vol = sum((c.volume for c in group), Decimal(0))
    return [
        b,
        fmt(first.open),
        fmt(max(c.high for c in group)),
        fmt(min(c.low for c in group)),
        fmt(group[-1].close),
        fmt(vol),
        bucket_end(b, interval) - 1,
        "0",
        0,
        "0",
        "0",
        "0",
    ]


def kline_event(c: Candle, *, closed: bool, event_ms: int) -> dict:
    """``<symbol>@kline_1m`` payload. The open frame (``closed=False``) is the candle at its open."""
    if closed:
        o, h, lo, cl, v = c.open, c.high, c.low, c.close, c.volume
    else:
        o = h = lo = cl = c.open
        v = Decimal(0)
    return {
        "e": "kline", "E": event_ms, "s": c.symbol,
        "k": {
            "t": c.open_time_ms, "T": c.close_time_ms, "s": c.symbol, "i": "1m", "f": -1, "L": -1,
            "o": fmt(o), "c": fmt(cl), "h": fmt(h), "l": fmt(lo), "v": fmt(v), "n": 0, "x": closed,
            "q": "0", "V": "0", "Q": "0", "B": "0",
        },
    }


def mark_price_event(premium: dict, event_ms: int) -> dict:
    """``<symbol>@markPrice[@1s]`` payload from a ``premiumIndex`` object."""
    mark = premium["markPrice"]
    return {
        "e": "markPriceUpdate", "E": event_ms, "s": premium["symbol"], "p": mark, "ap": mark,
        "i": premium.get("indexPrice", mark), "P": premium.get("estimatedSettlePrice", mark),
        "r": premium["lastFundingRate"], "T": premium["nextFundingTime"],
    }
