"""The newer guard rules: per-symbol notional caps, positions per day, disabled strategies, the
funding blackout, min trade size and volatility (ATR) sizing."""

import math
from datetime import datetime, timedelta, timezone
from decimal import ROUND_DOWN, Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.guard.base import Approved, Denied, EngineState
from engine.guard.guard import Guard
from engine.guard.rules import (
    BalanceSizer,
    FundingBlackout,
    MaxPositionsPerDay,
    MaxSymbolNotional,
    MinTradeSize,
    StrategyEnabled,
)
from engine.model import Direction, OrderIntent, PositionMode, PositionSide
from tests.engine.guard.test_guard import signal, view

BASE = dict(position_size_pct=Decimal(10), stop_loss_pct=Decimal(3), take_profit_pct=Decimal(5))
# With view()'s defaults (equity 10,000, 10% margin, 3x) an entry is 3,000 USDT notional:
# BTCUSDT at 100,000 → 0.03 BTC.
ENTRY_NOTIONAL = Decimal(3000)


def utc_ms(y, mo, d, h=0, mi=0, s=0, ms=0):
    return int(datetime(y, mo, d, h, mi, s, tzinfo=timezone.utc).timestamp()) * 1000 + ms


def intent(symbol="BTCUSDT", qty="0.03", price="100000"):
    return OrderIntent("test:x:0:LONG", "test", symbol, Direction.LONG, PositionSide.BOTH, Decimal(qty),
                       Decimal(price), Decimal(price) * Decimal("0.97"), None, 0)


# -- per-symbol notional cap ----------------------------------------------------------------------


def test_symbol_cap_counts_the_entry_plus_what_is_open_on_the_symbol_at_the_mark():
    # hedge mode: a LONG 0.02 BTC is open (2,000 USDT at the 100,000 mark); the SHORT entry adds 3,000
    pos = {("BTCUSDT", PositionSide.LONG): Decimal("0.02")}
    hv = dict(position_mode=PositionMode.HEDGE, positions=pos, marks={"BTCUSDT": Decimal(100000)})
    at_cap = Guard.default(**BASE, max_notional_by_symbol={"BTCUSDT": Decimal(5000)})
    assert isinstance(at_cap.evaluate(signal(direction=Direction.SHORT), view(**hv)), Approved)
    below = Guard.default(**BASE, max_notional_by_symbol={"BTCUSDT": Decimal("4999.99")})
    v = below.evaluate(signal(direction=Direction.SHORT), view(**hv))
    assert isinstance(v, Denied)
    assert v.reason == (
        "symbol notional cap: BTCUSDT would hold 5000 USDT, entry 3000 + 2000 USDT already open, "
        "above max_notional_by_symbol 4999.99 USDT"
    )


def test_symbol_cap_values_open_positions_at_the_mark_not_the_entry():
    pos = {("BTCUSDT", PositionSide.LONG): Decimal("0.02")}
    rule = MaxSymbolNotional(Decimal(0), {"BTCUSDT": Decimal(5500)})
    # the mark moved up to 130,000: 0.02 × 130,000 = 2,600 open + 3,000 entry = 5,600 > 5,500
    v = rule.check(intent(), view(position_mode=PositionMode.HEDGE, positions=pos, marks={"BTCUSDT": Decimal(130000)}))
    assert isinstance(v, Denied) and "5600 USDT" in v.reason and "2600 USDT already open" in v.reason
    # short positions count by size too: 2,000 open + 3,000 entry
    pos = {("BTCUSDT", PositionSide.SHORT): Decimal("-0.02")}
    hv = view(position_mode=PositionMode.HEDGE, positions=pos, marks={"BTCUSDT": Decimal(100000)})
    assert isinstance(MaxSymbolNotional(Decimal(0), {"BTCUSDT": Decimal(5000)}).check(intent(), hv), Approved)
    v = MaxSymbolNotional(Decimal(0), {"BTCUSDT": Decimal(4999)}).check(intent(), hv)
    assert isinstance(v, Denied) and "would hold 5000 USDT" in v.reason


def test_default_cap_applies_to_symbols_without_their_own_and_by_symbol_replaces_it():
    rule = MaxSymbolNotional(Decimal(2000), {"BTCUSDT": Decimal(10000)})
    assert isinstance(rule.check(intent(), view()), Approved)  # BTC: its own 10,000 cap
    v = rule.check(intent("ETHUSDT", qty="1.2", price="2500"), view())  # 3,000 > default 2,000
    assert isinstance(v, Denied) and v.reason.endswith("above max_notional_usdt 2000 USDT")
    assert "already open" not in v.reason


def test_zero_default_cap_means_no_cap_unless_the_symbol_has_one():
    rule = MaxSymbolNotional(Decimal(0), {"BTCUSDT": Decimal(1000)})
    assert isinstance(rule.check(intent("ETHUSDT", qty="400", price="2500"), view()), Approved)
    assert isinstance(rule.check(intent(), view()), Denied)
    # Guard.default leaves the rule out entirely when no cap is configured
    assert "max_symbol_notional" not in [r.name for r in Guard.default(**BASE).intent_rules]


# -- positions per day, disabled strategies, min trade size ----------------------------------------


@pytest.mark.parametrize("opened, limit, approved", [(9, 10, True), (10, 10, False), (11, 10, False), (0, 0, False)])
def test_max_positions_per_day(opened, limit, approved):
    v = MaxPositionsPerDay(limit).check(signal(), view(positions_opened_today=opened))
    assert isinstance(v, Approved) is approved
    if not approved:
        assert v.reason == (f"daily position limit: {opened} of max_positions_per_day {limit} "
                            "positions opened today (UTC)")


def test_positions_per_day_is_wired_into_the_default_guard():
    g = Guard.default(**BASE, max_positions_per_day=3)
    assert isinstance(g.evaluate(signal(), view(positions_opened_today=2)), Approved)
    assert isinstance(g.evaluate(signal(), view(positions_opened_today=3)), Denied)
    assert isinstance(Guard.default(**BASE).evaluate(signal(), view(positions_opened_today=1000)), Approved)


def test_disabled_strategy_is_denied_with_its_loss():
    v = Guard.default(**BASE).evaluate(signal(), view(disabled_strategies=frozenset({"test"}),
                                                      strategy_net_pnl={"test": Decimal("-312.456")},
                                                      start_equity=Decimal(10000)))
    assert isinstance(v, Denied)
    assert v.reason == ("strategy test disabled (closed trades net -312.46 USDT since start, -3.12% of starting "
                        "equity 10000; resume re-enables it)")
    other = StrategyEnabled().check(signal(), view(disabled_strategies=frozenset({"other"})))
    assert isinstance(other, Approved)
    assert StrategyEnabled().check(signal(), view(disabled_strategies=frozenset({"test"}))).reason.startswith(
        "strategy test disabled (")


def test_min_trade_size():
    rule = MinTradeSize(Decimal(3000))
    assert isinstance(rule.check(intent(qty="0.03"), view()), Approved)  # exactly 3,000
    v = rule.check(intent(qty="0.029"), view())
    assert isinstance(v, Denied)
    assert v.reason == "trade too small: notional 2900 USDT below min_trade_size 3000 USDT"
    g = Guard.default(**BASE, min_trade_size=ENTRY_NOTIONAL + 1)
    assert "min_trade_size 3001" in g.evaluate(signal(), view()).reason
    assert isinstance(Guard.default(**BASE, min_trade_size=ENTRY_NOTIONAL).evaluate(signal(), view()), Approved)


# -- funding blackout ------------------------------------------------------------------------------

DAY = utc_ms(2024, 3, 2)  # 00:00 UTC


@pytest.mark.parametrize(
    "now, denied, funding",
    [
        (DAY - 5 * 60_000, True, "00:00"),  # exactly 5 min before: inside (closed window)
        (DAY - 5 * 60_000 - 1, False, None),
        (DAY + 5 * 60_000, True, "00:00"),  # exactly 5 min after: inside
        (DAY + 5 * 60_000 + 1, False, None),
        (DAY - 3 * 60_000, True, "00:00"),  # 23:57 the day before
        (DAY + 3 * 60_000, True, "00:00"),  # 00:03
        (DAY, True, "00:00"),
        (utc_ms(2024, 3, 2, 8), True, "08:00"),
        (utc_ms(2024, 3, 2, 7, 55), True, "08:00"),
        (utc_ms(2024, 3, 2, 15, 59, 59, 999), True, "16:00"),
        (utc_ms(2024, 3, 2, 16, 5), True, "16:00"),
        (utc_ms(2024, 3, 2, 12), False, None),
        (utc_ms(2024, 3, 2, 4), False, None),  # 4h funding symbols are not modelled: 00/08/16 only
    ],
)
def test_funding_blackout_edges(now, denied, funding):
    v = FundingBlackout(5).check(signal(), view(now_ms=now))
    assert isinstance(v, Denied) is denied
    if denied:
        assert f"of the {funding} UTC funding" in v.reason and "within 5 min" in v.reason


def test_funding_blackout_reason_across_midnight():
    v = FundingBlackout(5).check(signal(), view(now_ms=DAY - 3 * 60_000))
    assert v.reason == ("funding blackout: 23:57 UTC is within 5 min of the 00:00 UTC funding, "
                        "no entries 23:55-00:05 UTC")
    v = FundingBlackout(5).check(signal(), view(now_ms=DAY + 3 * 60_000))
    assert v.reason == ("funding blackout: 00:03 UTC is within 5 min of the 00:00 UTC funding, "
                        "no entries 23:55-00:05 UTC")


def _funding_distance_ms(now_ms):
    """Independent: distance to the nearest 00/08/16 UTC funding, via datetime."""
    t = datetime.fromtimestamp(now_ms / 1000, tz=timezone.utc)
    midnight = datetime(t.year, t.month, t.day, tzinfo=timezone.utc)
    candidates = [midnight + timedelta(hours=h) for h in (-8, 0, 8, 16, 24)]
    return min(abs(now_ms - int(c.timestamp()) * 1000) for c in candidates)


@settings(max_examples=300, deadline=None)
@given(now=st.integers(min_value=utc_ms(2020, 1, 1), max_value=utc_ms(2030, 1, 1)), minutes=st.integers(1, 239))
def test_funding_blackout_matches_distance_to_nearest_funding(now, minutes):
    v = FundingBlackout(minutes).check(signal(), view(now_ms=now))
    assert isinstance(v, Denied) is (_funding_distance_ms(now) <= minutes * 60_000)


@settings(max_examples=100, deadline=None)
@given(offset=st.integers(-3 * 60_000, 3 * 60_000), minutes=st.integers(1, 239))
def test_funding_blackout_edges_hold_for_any_window(offset, minutes):
    w = minutes * 60_000
    for funding in (DAY, DAY + 8 * 3_600_000, DAY + 16 * 3_600_000):
        for edge in (funding - w, funding + w):
            v = FundingBlackout(minutes).check(signal(), view(now_ms=edge + offset))
            inside = _funding_distance_ms(edge + offset) <= w  # 4h windows can touch the next one
            assert isinstance(v, Denied) is inside


def test_funding_blackout_zero_is_off_and_default_guard_includes_it_only_when_set():
    assert isinstance(FundingBlackout(0).check(signal(), view(now_ms=DAY)), Approved)
    assert isinstance(Guard.default(**BASE).evaluate(signal(), view(now_ms=DAY)), Approved)
    assert isinstance(Guard.default(**BASE, funding_blackout_min=5).evaluate(signal(), view(now_ms=DAY)), Denied)


# -- volatility sizing -----------------------------------------------------------------------------

STEP = Decimal("0.001")


def _qty(v):
    assert isinstance(v, Approved), v
    return v.intent.quantity


def test_atr_above_the_max_scales_the_quantity_in_proportion():
    g = Guard.default(**BASE, atr_max_pct=Decimal("0.5"))
    assert _qty(g.evaluate(signal(), view())) == Decimal("0.03")  # ATR unknown: full size
    assert _qty(g.evaluate(signal(), view(atr_pct={"BTCUSDT": 0.5}))) == Decimal("0.03")  # at the max: full
    assert _qty(g.evaluate(signal(), view(atr_pct={"BTCUSDT": 0.4}))) == Decimal("0.03")
    assert _qty(g.evaluate(signal(), view(atr_pct={"ETHUSDT": 5.0}))) == Decimal("0.03")  # other symbol
    assert _qty(g.evaluate(signal(), view(atr_pct={"BTCUSDT": 1.0}))) == Decimal("0.015")  # half
    assert _qty(g.evaluate(signal(), view(atr_pct={"BTCUSDT": 2.0}))) == Decimal("0.0075").quantize(
        STEP, ROUND_DOWN)  # quarter, rounded down to the step
    assert _qty(g.evaluate(signal(), view(atr_pct={"BTCUSDT": 1.5}))) == Decimal("0.01")  # a third
    # off: atr_max_pct = 0
    assert _qty(Guard.default(**BASE).evaluate(signal(), view(atr_pct={"BTCUSDT": 9.0}))) == Decimal("0.03")


def test_atr_scaling_that_leaves_nothing_says_so():
    g = Guard.default(**BASE, atr_max_pct=Decimal("0.5"))
    v = g.evaluate(signal(), view(atr_pct={"BTCUSDT": 2000.0}))  # 3,000 × 0.00025 = 0.75 USDT
    assert isinstance(v, Denied)
    assert v.reason.startswith("size rounds to zero: 0.75 USDT notional, scaled by 0.00025 for ATR 2e+03% "
                               "above atr_max_pct 0.5%")


@settings(max_examples=300, deadline=None)
@given(atr=st.floats(min_value=0.01, max_value=20.0), atr_max=st.sampled_from(["0.1", "0.25", "0.5", "1"]),
       equity=st.integers(2000, 500_000))
def test_atr_scaled_quantity_is_the_scaled_notional_rounded_down(atr, atr_max, equity):
    sizer = BalanceSizer(Decimal(10), Decimal(3), None, Decimal(atr_max))
    eq = Decimal(equity)
    v = sizer.size(signal(), view(equity=eq, available_balance=eq, atr_pct={"BTCUSDT": atr}))
    full = Fraction(equity) * Fraction(3, 10)  # 10% margin × 3x
    scale = min(Fraction(1), Fraction(atr_max) / Fraction(repr(atr)))  # ATR% as the float prints
    steps = math.floor(full * scale / 100000 / Fraction(STEP))  # BTC at 100,000, down to the step
    if steps == 0:
        assert isinstance(v, Denied) and "size rounds to zero" in v.reason
        return
    assert not isinstance(v, Denied)
    assert v.quantity == steps * STEP


# -- rule order in Guard.default -------------------------------------------------------------------


def test_default_guard_rule_order():
    g = Guard.default(**BASE, max_daily_trades=20, max_daily_loss_pct=Decimal(5), max_positions_per_day=10,
                      funding_blackout_min=5, min_trade_size=Decimal(20), max_notional_usdt=Decimal(5000))
    assert [r.name for r in g.signal_rules] == [
        "halted", "auto_trading", "strategy_enabled", "symbol", "existing_position", "pending_entry",
        "funding_blackout", "max_daily_trades", "max_positions_per_day", "max_daily_loss"]
    assert [r.name for r in g.intent_rules] == [
        "min_notional", "min_trade_size", "max_notional", "max_symbol_notional", "max_position_pct",
        "max_total_exposure", "margin"]
    # the first denial wins: a halted engine says "halted" even inside the funding blackout
    v = g.evaluate(signal(), view(state=EngineState.HALTED, halt_reason="manual", now_ms=DAY))
    assert v.reason == "halted (manual)"
    # StrategyEnabled is always there
    assert "strategy_enabled" in [r.name for r in Guard.default(**BASE).signal_rules]
