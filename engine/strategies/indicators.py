"""O(1)-per-candle indicators for the strategies in this package.

Each indicator is a small object with ``__slots__`` holding one symbol's running state; a strategy
keeps one per symbol. Nothing here recomputes a window from scratch on every candle: windows are
ring buffers or monotonic deques with running aggregates, and smoothing is recursive (Wilder's or
EMA). Arithmetic is float — these are statistics, never money.
"""

from __future__ import annotations

import math
from collections import deque


class Ema:
    """Exponential moving average, alpha = 2 / (period + 1), seeded with the first value."""

    __slots__ = ("alpha", "value", "ready")

    def __init__(self, period: int) -> None:
        self.alpha = 2.0 / (period + 1)
        self.value = 0.0
        self.ready = False

    def update(self, x: float) -> float:
        if self.ready:
            self.value += (x - self.value) * self.alpha
        else:
            self.value = x
            self.ready = True
        return self.value


class Dmi:
    """Wilder's directional movement system: ATR, +DI, −DI and ADX, one candle at a time.

    True range, +DM and −DM are smoothed recursively with alpha = 1/period (Wilder), seeded from the
    first candle; DX = 100·|+DI − −DI| / (+DI + −DI) and ADX is DX smoothed the same way. Values
    settle after about three periods; callers wait at least that long (their warm-up).
    """

    __slots__ = ("_a", "n", "prev_h", "prev_l", "prev_c", "tr", "atr", "pdm", "mdm", "plus_di", "minus_di", "adx")

    def __init__(self, period: int) -> None:
        self._a = 1.0 / period
        self.n = 0
        self.prev_h = self.prev_l = self.prev_c = 0.0
        self.tr = self.atr = self.pdm = self.mdm = 0.0
        self.plus_di = self.minus_di = self.adx = 0.0

    def update(self, h: float, lo: float, c: float) -> None:
        n = self.n
        self.n = n + 1
        if n == 0:
            self.prev_h, self.prev_l, self.prev_c = h, lo, c
            self.tr = self.atr = h - lo
            return
        up = h - self.prev_h
        down = self.prev_l - lo
        pc = self.prev_c
        tr = h - lo
        if h - pc > tr:
            tr = h - pc
        if pc - lo > tr:
            tr = pc - lo
        self.tr = tr
        a = self._a
        self.atr += (tr - self.atr) * a
        self.pdm += ((up if up > down and up > 0.0 else 0.0) - self.pdm) * a
        self.mdm += ((down if down > up and down > 0.0 else 0.0) - self.mdm) * a
        self.prev_h, self.prev_l, self.prev_c = h, lo, c
        atr = self.atr
        if atr > 0.0:
            pdi = 100.0 * self.pdm / atr
            mdi = 100.0 * self.mdm / atr
        else:
            pdi = mdi = 0.0
        self.plus_di = pdi
        self.minus_di = mdi
        s = pdi + mdi
        dx = 100.0 * abs(pdi - mdi) / s if s > 0.0 else 0.0
        if n == 1:
            self.adx = dx
        else:
            self.adx += (dx - self.adx) * a


class Atr:
    """Wilder's average true range (alpha = 1/period), seeded with the first candle's range."""

    __slots__ = ("_a", "value", "prev_c", "tr", "ready")

    def __init__(self, period: int) -> None:
        self._a = 1.0 / period
        self.value = 0.0
        self.prev_c = 0.0
        self.tr = 0.0
        self.ready = False

    def update(self, h: float, lo: float, c: float) -> float:
        if not self.ready:
            self.tr = self.value = h - lo
            self.prev_c = c
            self.ready = True
            return self.value
        pc = self.prev_c
        tr = h - lo
        if h - pc > tr:
            tr = h - pc
        if pc - lo > tr:
            tr = pc - lo
        self.tr = tr
        self.prev_c = c
        self.value += (tr - self.value) * self._a
        return self.value


class Rsi:
    """Wilder's RSI. 50 until the first change; 100 when there were only gains, 0 only losses."""

    __slots__ = ("_a", "prev", "gain", "loss", "n")

    def __init__(self, period: int) -> None:
        self._a = 1.0 / period
        self.prev = 0.0
        self.gain = 0.0
        self.loss = 0.0
        self.n = 0

    def update(self, c: float) -> float:
        n = self.n
        self.n = n + 1
        if n == 0:
            self.prev = c
            return 50.0
        d = c - self.prev
        self.prev = c
        g = d if d > 0.0 else 0.0
        lo = -d if d < 0.0 else 0.0
        if n == 1:
            self.gain, self.loss = g, lo
        else:
            a = self._a
            self.gain += (g - self.gain) * a
            self.loss += (lo - self.loss) * a
        return self.value

    @property
    def value(self) -> float:
        if self.loss == 0.0:
            return 100.0 if self.gain > 0.0 else 50.0
        return 100.0 - 100.0 / (1.0 + self.gain / self.loss)


class RollingStats:
    """Mean and population standard deviation of the last ``size`` values.

    A ring buffer with a rolling Welford update (O(1) per value); every ``4096`` replacements the
    sums are recomputed exactly from the buffer (amortised O(size/4096)) so rounding cannot drift.
    """

    __slots__ = ("size", "buf", "i", "count", "mean", "m2", "_since")

    _RESYNC = 4096

    def __init__(self, size: int) -> None:
        self.size = size
        self.buf = [0.0] * size
        self.i = 0
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0
        self._since = 0

    def push(self, x: float) -> None:
        i = self.i
        if self.count < self.size:
            self.count += 1
            d = x - self.mean
            self.mean += d / self.count
            self.m2 += d * (x - self.mean)
        else:
            old = self.buf[i]
            mean = self.mean
            new_mean = mean + (x - old) / self.size
            self.m2 += (x - old) * (x - new_mean + old - mean)
            self.mean = new_mean
            self._since += 1
            if self._since >= self._RESYNC:
                self.buf[i] = x
                self._resync()
                self.i = (i + 1) % self.size
                return
        self.buf[i] = x
        self.i = (i + 1) % self.size

    def _resync(self) -> None:
        self._since = 0
        n = self.count
        m = math.fsum(self.buf[:n] if n < self.size else self.buf) / n
        self.mean = m
        self.m2 = math.fsum((v - m) * (v - m) for v in (self.buf[:n] if n < self.size else self.buf))

    @property
    def std(self) -> float:
        if self.count == 0 or self.m2 <= 0.0:
            return 0.0
        return math.sqrt(self.m2 / self.count)


class RollingSum:
    """Sum of the last ``size`` values (ring buffer, exact resync every 4096 replacements)."""

    __slots__ = ("size", "buf", "i", "count", "total", "_since")

    def __init__(self, size: int) -> None:
        self.size = size
        self.buf = [0.0] * size
        self.i = 0
        self.count = 0
        self.total = 0.0
        self._since = 0

    def push(self, x: float) -> None:
        i = self.i
        if self.count < self.size:
            self.count += 1
            self.total += x
        else:
            self.total += x - self.buf[i]
            self._since += 1
        self.buf[i] = x
        self.i = (i + 1) % self.size
        if self._since >= 4096:
            self._since = 0
            self.total = math.fsum(self.buf)

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0


class RollingExtreme:
    """Maximum (``sign=1``) or minimum (``sign=-1``) of the last ``size`` values.

    A monotonic deque of (index, value): each value enters and leaves it once, so updates are
    amortised O(1). :attr:`value` is the extreme of the values pushed so far within the window.
    """

    __slots__ = ("size", "sign", "q", "n")

    def __init__(self, size: int, sign: int = 1) -> None:
        self.size = size
        self.sign = sign
        self.q: deque[tuple[int, float]] = deque()
        self.n = 0

    def push(self, x: float) -> None:
        q = self.q
        n = self.n
        if self.sign > 0:
            while q and q[-1][1] <= x:
                q.pop()
        else:
            while q and q[-1][1] >= x:
                q.pop()
        q.append((n, x))
        if q[0][0] <= n - self.size:
            q.popleft()
        self.n = n + 1

    @property
    def value(self) -> float:
        return self.q[0][1]


class Lag:
    """The value pushed ``size`` pushes ago (a ring buffer); ``None`` until that many were pushed."""

    __slots__ = ("size", "buf", "i", "n")

    def __init__(self, size: int) -> None:
        self.size = size
        self.buf = [0.0] * size
        self.i = 0
        self.n = 0

    def push(self, x: float) -> float | None:
        """Store ``x``; return the value pushed ``size`` pushes before it (or ``None``)."""
        i = self.i
        old = self.buf[i] if self.n >= self.size else None
        self.buf[i] = x
        self.i = (i + 1) % self.size
        self.n += 1
        return old
