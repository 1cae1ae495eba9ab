"""Binance USDⓈ-M request weights that depend on parameters (shared by the client's rate-limit
gate and the local exchange's limiter, so both count the same)."""

from __future__ import annotations


def klines_weight(limit: int) -> int:
    """``GET /fapi/v1/klines``: limit [1,100) → 1, [100,500) → 2, [500,1000] → 5, > 1000 → 10."""
    if limit < 100:
        return 1
    if limit < 500:
        return 2
    if limit <= 1000:
        return 5
    return 10
