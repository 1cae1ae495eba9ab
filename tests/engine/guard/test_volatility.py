"""AtrTracker against a plain, independent Wilder ATR."""

import math
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.guard.volatility import AtrTracker
from engine.model import Candle


def candle(symbol, i, o, h, low, c, closed=True):
    t = i * 60_000
    return Candle(symbol, t, t + 59_999, Decimal(o), Decimal(h), Decimal(low), Decimal(c), Decimal(1), closed)


def wilder_atr_pct(bars, period):
    """Textbook Wilder ATR%: TR = max(h-l, |h-pc|, |l-pc|) (h-l for the first bar); the first
    ATR is the simple mean of the first ``period`` TRs, then ATR = (prev × (n-1) + TR) / n."""
    out = []
    trs = []
    atr = None
    prev_close = None
    for _, h, low, c in bars:
        h, low, c = float(h), float(low), float(c)
        tr = h - low if prev_close is None else max(h - low, abs(h - prev_close), abs(low - prev_close))
        prev_close = c
        trs.append(tr)
        if len(trs) < period:
            out.append(None)
            continue
        if len(trs) == period:
            atr = sum(trs) / period
        else:
            atr = (atr * (period - 1) + tr) / period
        out.append(atr / c * 100)
    return out


@st.composite
def bars(draw, min_size=1, max_size=80):
    """Random OHLC in cents: low <= open, close <= high; gaps between candles allowed."""
    n = draw(st.integers(min_size, max_size))
    price = draw(st.integers(100, 10_000_000))
    out = []
    for _ in range(n):
        price = max(1, price + draw(st.integers(-price // 10, price // 10)))
        low = max(1, price - draw(st.integers(0, price // 20 + 1)))
        high = price + draw(st.integers(0, price // 20 + 1))
        o = draw(st.integers(low, high))
        c = draw(st.integers(low, high))
        out.append(tuple(Decimal(x) / 100 for x in (o, high, low, c)))
        price = c
    return out


@settings(max_examples=200, deadline=None)
@given(series=bars(), period=st.integers(1, 30))
def test_matches_an_independent_wilder_atr(series, period):
    t = AtrTracker(period)
    expected = wilder_atr_pct(series, period)
    for i, (bar, want) in enumerate(zip(series, expected)):
        got = t.update(candle("BTCUSDT", i, *bar))
        if want is None:
            assert got is None and t.pct("BTCUSDT") is None
        else:
            assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12)
            assert t.pct("BTCUSDT") == got and t.pcts["BTCUSDT"] == got


@settings(max_examples=100, deadline=None)
@given(a=bars(min_size=5), b=bars(min_size=5), period=st.integers(2, 5))
def test_symbols_are_tracked_independently_when_interleaved(a, b, period):
    t = AtrTracker(period)
    ea, eb = wilder_atr_pct(a, period), wilder_atr_pct(b, period)
    for i in range(max(len(a), len(b))):
        if i < len(a):
            got = t.update(candle("AAA", i, *a[i]))
            assert (got is None) if ea[i] is None else math.isclose(got, ea[i], rel_tol=1e-9)
        if i < len(b):
            got = t.update(candle("BBB", i, *b[i]))
            assert (got is None) if eb[i] is None else math.isclose(got, eb[i], rel_tol=1e-9)


def test_known_values_by_hand():
    t = AtrTracker(3)
    # TRs: 2 (10-8), max(11-9, |11-9|, |9-9|)=2, max(14-10, |14-10|, |10-10|)=4 → ATR 8/3
    assert t.update(candle("X", 0, "9", "10", "8", "9")) is None
    assert t.update(candle("X", 1, "9", "11", "9", "10")) is None
    assert math.isclose(t.update(candle("X", 2, "10", "14", "10", "12")), 8 / 3 / 12 * 100)
    # gap down: TR = max(5-4, |5-12|, |4-12|) = 8 → ATR = (8/3 × 2 + 8) / 3
    assert math.isclose(t.update(candle("X", 3, "5", "5", "4", "4")), (8 / 3 * 2 + 8) / 3 / 4 * 100)


def test_duplicate_old_and_open_candles_change_nothing():
    t = AtrTracker(2)
    t.update(candle("X", 0, "9", "10", "8", "9"))
    first = t.update(candle("X", 1, "9", "11", "9", "10"))
    assert first is not None
    assert t.update(candle("X", 1, "9", "50", "1", "10")) == first  # same candle again
    assert t.update(candle("X", 0, "9", "50", "1", "10")) == first  # older candle
    assert t.update(candle("X", 2, "9", "50", "1", "10", closed=False)) == first  # still forming
    assert t.update(candle("Y", 0, "9", "50", "1", "10", closed=False)) is None
    # the forming candle was not consumed: the closed one counts (TR = max(50-1, |50-10|, |1-10|) = 49)
    assert math.isclose(t.update(candle("X", 2, "9", "50", "1", "10")), (first / 100 * 10 + 49) / 2 / 10 * 100)


def test_reset_forgets_a_symbol():
    t = AtrTracker(1)
    t.update(candle("X", 0, "9", "10", "8", "9"))
    t.update(candle("Y", 0, "9", "10", "8", "9"))
    t.reset("X")
    assert t.pct("X") is None and t.pct("Y") is not None
    assert math.isclose(t.update(candle("X", 5, "9", "10", "9", "10")), 10.0)  # first bar again: h - l


def test_pcts_is_a_live_read_only_mapping_the_sizer_can_use():
    from engine.guard.guard import Guard
    from engine.guard.base import Approved
    from tests.engine.guard.test_guard import signal, view

    t = AtrTracker(1)
    pcts = t.pcts
    assert dict(pcts) == {} and "BTCUSDT" not in pcts and pcts.get("BTCUSDT") is None
    t.update(candle("BTCUSDT", 0, "100000", "100500", "99500", "100000"))  # ATR 1000 = 1% of close
    assert dict(pcts) == {"BTCUSDT": 1.0} and len(pcts) == 1
    g = Guard.default(position_size_pct=Decimal(10), stop_loss_pct=Decimal(3), take_profit_pct=None,
                      atr_max_pct=Decimal("0.5"))
    v = g.evaluate(signal(), view(atr_pct=pcts))
    assert isinstance(v, Approved) and v.intent.quantity == Decimal("0.015")  # half of 0.03
