"""Human formatting of the numbers and times the console shows. Pure functions, no Textual.

Money and prices arrive as ``Decimal``; they are printed in fixed-point notation (never
scientific), with thousands separators, and times come from the snapshot itself (exchange or
engine milliseconds), so the same snapshot always renders the same text.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

DASH = "—"
"""Shown where a value is unknown or does not apply."""

PRICE_MIN_PLACES = 2
"""Prices keep their own precision but show at least this many decimal places."""


def _fixed(value: Decimal, places: int | None) -> str:
    """Fixed-point with thousands separators; ``places=None`` keeps the value's own digits."""
    if places is None:
        value = value.normalize()
        text = format(value, ",f")
    else:
        text = format(value.quantize(Decimal(1).scaleb(-places)), f",.{places}f")
    if text.startswith("-") and text.strip("-0.,") == "":
        text = text[1:]  # never "-0.00"
    return text


def money(value: Decimal | None, places: int = 2) -> str:
    """An amount in the quote currency: ``12,345.67``."""
    return DASH if value is None else _fixed(value, places)


def signed_money(value: Decimal | None, places: int = 2) -> str:
    """A profit or loss with its sign: ``+12.30``, ``-4.05``, ``0.00``."""
    if value is None:
        return DASH
    text = _fixed(value, places)
    if value > 0 and text.strip("0.,"):
        return "+" + text
    return text


def price(value: Decimal | None) -> str:
    """A price with its own precision, at least two places: ``97,250.10``, ``0.004321``."""
    if value is None:
        return DASH
    exponent = value.normalize().as_tuple().exponent
    places = max(PRICE_MIN_PLACES, -exponent) if isinstance(exponent, int) else PRICE_MIN_PLACES
    return _fixed(value, places)


def qty(value: Decimal | None) -> str:
    """A quantity without trailing zeros: ``0.015``, ``1,250``."""
    return DASH if value is None else _fixed(value, None)


def clock(ms: int, *, with_date: bool = True) -> str:
    """An epoch-millisecond time in UTC: ``2025-01-15 12:34:56 UTC`` or ``12:34:56 UTC``."""
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%d %H:%M:%S UTC" if with_date else "%H:%M:%S UTC")


def hms(ms: int) -> str:
    """Time of day in UTC for table rows: ``12:34:56``."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%H:%M:%S")


def duration(ms: int | None) -> str:
    """A coarse age: ``45s``, ``6m05s``, ``2h13m``, ``3d04h``."""
    if ms is None:
        return DASH
    seconds = max(0, ms) // 1000
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def countdown(ms: int) -> str:
    """Time left on a timer: ``12:30``, ``1:02:05``; ``0:00`` once it has run out."""
    seconds = max(0, ms) // 1000
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def age(ms: int | None) -> str:
    """How long ago a stream spoke: ``0.4s``, ``12s``, ``3m05s``; ``—`` if never."""
    if ms is None:
        return DASH
    ms = max(0, ms)
    if ms < 10_000:
        return f"{ms / 1000:.1f}s"
    return duration(ms)


def score(strength: float) -> str:
    """A signal's strength (0..1) as ``0.72``."""
    return f"{strength:.2f}"
