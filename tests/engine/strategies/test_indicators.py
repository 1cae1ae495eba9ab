"""The O(1) indicators agree with brute-force recomputation, including after their resyncs."""

import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.strategies.indicators import Lag, RollingExtreme, RollingStats, RollingSum, Rsi


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=1, max_size=200),
       st.integers(min_value=1, max_value=30))
def test_rolling_windows_match_brute_force(values, size):
    mx, mn, sm = RollingExtreme(size, 1), RollingExtreme(size, -1), RollingSum(size)
    stats, lag = RollingStats(size), Lag(size)
    for k, v in enumerate(values):
        old = lag.push(v)
        mx.push(v), mn.push(v), sm.push(v), stats.push(v)
        win = values[max(0, k - size + 1): k + 1]
        assert mx.value == max(win) and mn.value == min(win)
        assert math.isclose(sm.total, sum(win), rel_tol=1e-9, abs_tol=1e-3)
        mean = sum(win) / len(win)
        std = math.sqrt(sum((x - mean) ** 2 for x in win) / len(win))
        # rolling updates lose ~1e-16 of the squared scale of the values seen: allow that, no more
        scale = max(1.0, max(abs(x) for x in values[: k + 1]))
        assert math.isclose(stats.mean, mean, rel_tol=1e-9, abs_tol=1e-9 * scale)
        assert math.isclose(stats.std, std, rel_tol=1e-6, abs_tol=1e-7 * scale)
        assert old == (values[k - size] if k >= size else None)
        assert len(mx.q) <= size


def test_long_runs_do_not_drift():
    rng = random.Random(5)
    stats, sm = RollingStats(20), RollingSum(20)
    values = [100_000 + rng.gauss(0, 5) for _ in range(50_000)]
    for v in values:
        stats.push(v), sm.push(v)
    win = values[-20:]
    mean = sum(win) / 20
    assert math.isclose(stats.mean, mean, rel_tol=1e-12)
    assert math.isclose(stats.std, math.sqrt(sum((x - mean) ** 2 for x in win) / 20), rel_tol=1e-6)
    assert math.isclose(sm.total, sum(win), rel_tol=1e-12)


def test_rsi_extremes():
    r = Rsi(14)
    assert r.update(100) == 50.0
    for k in range(1, 20):
        r.update(100 + k)
    assert r.value == 100.0
    for k in range(1, 40):
        r.update(120 - k)
    assert r.value < 10.0
