"""Causal market features for the RL environment, precomputed once over a whole data set.

Every feature at row ``t`` depends only on candles ``0..t`` (closed by the decision instant, the
close of candle ``t``) and on funding rates already settled by then: rolling statistics are prefix
sums (``numpy.cumsum`` accumulates sequentially, so the prefix up to ``t`` is bit-identical whether
the array ends at ``t`` or later), look-backs are clamped at the first candle, and nothing is
centred, normalised over the data set or shifted backwards. ``tests/rl/test_features.py`` checks
that features at ``t`` computed on ``data.head(t + 1)`` equal those computed on all the data.

Scales are fixed constants (never fitted on data), so there is nothing to leak or to save.

======================  ======================================================================
feature                 definition (at candle t; ``lc`` = log close, ``r`` = 1-candle log return)
======================  ======================================================================
``ret_1`` … ``ret_240``  100 · (lc[t] − lc[max(t − n, 0)]), n = 1, 5, 15, 60, 240 (percent)
``vol_15/60/240``       1000 · std of r over the last n candles (partial window at the start)
``range``               100 · log(high / low)
``body``                100 · log(close / open)
``close_loc``           2 · (close − low) / (high − low) − 1, 0 when high == low
``volume_z_60``         z-score of log1p(volume) against the last 60 candles (0 when flat)
``sma_gap_60/240``      100 · (lc[t] − log(mean close over the last n candles))
``funding_bps``         10⁴ · the rate of the last funding instant that is > 60 s before the
                        decision instant (matched to history as the sim does, ±60 s; else the
                        default rate)
``tod_sin/tod_cos``     UTC time of day of the decision instant (close_time + 1 ms)
``to_funding``          time until the next funding instant / funding interval, in [0, 1)
======================  ======================================================================

All features are clipped to ±``clip`` and returned as float32.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Mapping

import numpy as np

__all__ = [
    "FEATURE_NAMES", "WARMUP", "FUNDING_INTERVAL_MS", "FUNDING_MATCH_MS", "compute_features", "rates_at",
]

FUNDING_INTERVAL_MS = 8 * 3600 * 1000
#: the sim's ``_FUNDING_MATCH_MS``: a history row within this distance of an instant is its rate
FUNDING_MATCH_MS = 60_000
_DAY_MS = 86_400_000

_RET = (1, 5, 15, 60, 240)
_VOL = (15, 60, 240)
_SMA = (60, 240)
#: the longest look-back; rows before it use partial windows (the env starts episodes after it)
WARMUP = 240

FEATURE_NAMES: tuple[str, ...] = (
    *(f"ret_{n}" for n in _RET),
    *(f"vol_{n}" for n in _VOL),
    "range",
    "body",
    "close_loc",
    "volume_z_60",
    *(f"sma_gap_{n}" for n in _SMA),
    "funding_bps",
    "tod_sin",
    "tod_cos",
    "to_funding",
)


def rates_at(times: np.ndarray, funding: Mapping[int, Decimal], default: float) -> np.ndarray:
    """The sim's ``SimExchange._rate_at`` for many instants: the history rate whose time is
    nearest to the instant within ±60 s (the earlier one on a tie), else ``default``."""
    times = np.asarray(times, dtype=np.int64)
    out = np.full(times.shape, float(default), dtype=np.float64)
    if not funding or times.size == 0:
        return out
    keys = np.array(sorted(funding), dtype=np.int64)
    vals = np.array([float(funding[int(k)]) for k in keys], dtype=np.float64)
    i = np.searchsorted(keys, times, side="left")  # bisect_left
    best = np.full(times.shape, np.iinfo(np.int64).max, dtype=np.int64)
    for j in (i - 1, i):  # the sim looks at i-1 first and keeps it on a tie (strict <)
        valid = (j >= 0) & (j < keys.size)
        jj = np.clip(j, 0, keys.size - 1)
        d = np.abs(keys[jj] - times)
        ok = valid & (d <= FUNDING_MATCH_MS) & (d < best)
        out[ok] = vals[jj[ok]]
        best[ok] = d[ok]
    return out


def _window_sums(x: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:
    """(sum, count) of x over the last ``w`` rows up to and including each row (causal)."""
    n = x.shape[0]
    s = np.concatenate(([0.0], np.cumsum(x)))
    idx = np.arange(n)
    lo = np.maximum(idx - w + 1, 0)
    return s[idx + 1] - s[lo], (idx - lo + 1).astype(np.float64)


def _rolling_mean_std(x: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:
    s1, cnt = _window_sums(x, w)
    s2, _ = _window_sums(x * x, w)
    mean = s1 / cnt
    var = np.maximum(s2 / cnt - mean * mean, 0.0)
    return mean, np.sqrt(var)


def compute_features(data, *, default_funding_rate: float = 0.0001,
                     funding_interval_ms: int = FUNDING_INTERVAL_MS, clip: float = 10.0) -> np.ndarray:
    """``(len(data), len(FEATURE_NAMES))`` float32 features of a :class:`rl.data.MarketData`."""
    o = np.asarray(data.open, dtype=np.float64)
    h = np.asarray(data.high, dtype=np.float64)
    lo = np.asarray(data.low, dtype=np.float64)
    c = np.asarray(data.close, dtype=np.float64)
    v = np.asarray(data.volume, dtype=np.float64)
    ct = np.asarray(data.close_time, dtype=np.int64)
    n = c.shape[0]
    idx = np.arange(n)
    lc = np.log(c)
    r = np.empty(n)
    r[0] = 0.0
    r[1:] = lc[1:] - lc[:-1]
    cols: list[np.ndarray] = []
    for k in _RET:
        cols.append(100.0 * (lc - lc[np.maximum(idx - k, 0)]))
    for k in _VOL:
        cols.append(1000.0 * _rolling_mean_std(r, k)[1])
    cols.append(100.0 * (np.log(h) - np.log(lo)))
    cols.append(100.0 * (lc - np.log(o)))
    span = h - lo
    cols.append(np.where(span > 0, 2.0 * (c - lo) / np.where(span > 0, span, 1.0) - 1.0, 0.0))
    lv = np.log1p(v)
    m, sd = _rolling_mean_std(lv, 60)
    cols.append(np.where(sd > 1e-9, (lv - m) / np.where(sd > 1e-9, sd, 1.0), 0.0))
    for k in _SMA:
        s, cnt = _window_sums(c, k)
        cols.append(100.0 * (lc - np.log(s / cnt)))
    decision = ct + 1
    interval = int(funding_interval_ms)
    # instants whose ±60 s matching window closed before the decision: matched rows are all ≤ close_time
    settled = ((decision - FUNDING_MATCH_MS - 1) // interval) * interval
    cols.append(1e4 * rates_at(settled, data.funding, default_funding_rate))
    phase = 2.0 * np.pi * (decision % _DAY_MS) / _DAY_MS
    cols.append(np.sin(phase))
    cols.append(np.cos(phase))
    cols.append(((-decision) % interval) / interval)
    out = np.stack(cols, axis=1)
    np.clip(out, -clip, clip, out=out)
    return out.astype(np.float32)
