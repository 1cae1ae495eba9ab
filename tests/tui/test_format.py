"""Numbers and times as a person reads them: fixed-point, separators, no scientific notation."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tui import format as fmt


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("12345.678", "12,345.68"),
        ("0", "0.00"),
        ("-0.001", "0.00"),
        ("-1234567.5", "-1,234,567.50"),
        ("1E+3", "1,000.00"),
    ],
)
def test_money(value, expected):
    assert fmt.money(Decimal(value)) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("8.4345", "+8.43"), ("-40.6875", "-40.69"), ("0", "0.00"), ("0.001", "0.00"), ("-0.004", "0.00")],
)
def test_signed_money_has_a_sign_only_when_not_zero(value, expected):
    assert fmt.signed_money(Decimal(value)) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("97250.10", "97,250.10"),
        ("187.432", "187.432"),
        ("0.00000123", "0.00000123"),
        ("100", "100.00"),
        ("1E+2", "100.00"),
        ("3E-7", "0.0000003"),
    ],
)
def test_price_keeps_its_precision_with_two_places_at_least(value, expected):
    assert fmt.price(Decimal(value)) == expected


@pytest.mark.parametrize(("value", "expected"), [("0.015", "0.015"), ("1.250", "1.25"), ("12", "12"),
                                                 ("1250", "1,250"), ("1E+3", "1,000"), ("1E-8", "0.00000001")])
def test_qty_drops_trailing_zeros(value, expected):
    assert fmt.qty(Decimal(value)) == expected


def test_missing_values_are_a_dash():
    assert fmt.price(None) == fmt.money(None) == fmt.qty(None) == fmt.signed_money(None) == fmt.DASH


@given(st.decimals(allow_nan=False, allow_infinity=False, min_value=Decimal("-1e12"), max_value=Decimal("1e12")))
def test_never_scientific_notation(value):
    for text in (fmt.money(value), fmt.signed_money(value), fmt.price(value), fmt.qty(value)):
        assert "e" not in text.lower()
        assert text.replace(",", "").lstrip("+-").replace(".", "", 1).isdigit()


def test_times_are_utc():
    ms = 1_736_944_496_000  # 2025-01-15 12:34:56 UTC
    assert fmt.clock(ms) == "2025-01-15 12:34:56 UTC"
    assert fmt.clock(ms, with_date=False) == "12:34:56 UTC"
    assert fmt.hms(ms) == "12:34:56"


@pytest.mark.parametrize(
    ("ms", "expected"),
    [(0, "0s"), (45_000, "45s"), (365_000, "6m05s"), (7_980_000, "2h13m"), (273_600_000, "3d04h"), (-5, "0s")],
)
def test_duration(ms, expected):
    assert fmt.duration(ms) == expected


@pytest.mark.parametrize(("ms", "expected"), [(750_000, "12:30"), (3_725_000, "1:02:05"), (-1, "0:00")])
def test_countdown(ms, expected):
    assert fmt.countdown(ms) == expected


@pytest.mark.parametrize(("ms", "expected"), [(None, "—"), (400, "0.4s"), (12_300, "12s"), (185_000, "3m05s")])
def test_age(ms, expected):
    assert fmt.age(ms) == expected
