"""Guard rules: each denies with a reason; the sizer rounds to step and places stops on tick."""

import json
from decimal import Decimal
from importlib import resources

import pytest

from engine.exchange.filters import parse_exchange_info, parse_leverage_brackets, with_brackets
from engine.guard.base import Approved, Denied, EngineState, GuardView
from engine.guard.guard import Guard
from engine.model import Direction, PositionMode, PositionSide, Signal

DATA = resources.files("engine.exchange.sim") / "data"


def sim_rules():
    rules = parse_exchange_info(json.loads((DATA / "exchange_info.json").read_text()))
    brackets = parse_leverage_brackets(json.loads((DATA / "leverage_brackets.json").read_text()))
    return {s: with_brackets(r, brackets.get(s, ())) for s, r in rules.items()}


RULES = sim_rules()


def signal(symbol="BTCUSDT", direction=Direction.LONG, price="100000"):
    return Signal("test", symbol, direction, 0.5, "because", 0, Decimal(price), 59_999)


def view(**kw):
    base = dict(
        now_ms=60_000, state=EngineState.ACTIVE, halt_reason="", auto_trading_enabled=True,
        position_mode=PositionMode.ONEWAY, leverage=3, equity=Decimal(10000), available_balance=Decimal(10000),
        positions={}, pending_entries=frozenset(), rules=RULES, marks={}, taker_fee_rate=Decimal("0.0005"),
    )
    base.update(kw)
    return GuardView(**base)


GUARD = Guard.default(position_size_pct=Decimal(10), stop_loss_pct=Decimal(3), take_profit_pct=Decimal(5))


def test_approved_intent_is_sized_from_equity_and_rounded_to_step_and_tick():
    v = GUARD.evaluate(signal(price="95123.4"), view())
    assert isinstance(v, Approved)
    i = v.intent
    # 10% of 10,000 as margin × 3 = 3,000 notional / 95,123.4 = 0.03153… → 0.031 (step 0.001, down)
    assert i.quantity == Decimal("0.031")
    assert i.stop_price == Decimal("92269.7")  # 95123.4 × 0.97 = 92269.698 → tick 0.1
    assert i.take_profit_price == Decimal("99879.6")  # × 1.05 = 99879.57
    assert i.position_side is PositionSide.BOTH


@pytest.mark.parametrize(
    "kw, sig, reason",
    [
        (dict(state=EngineState.HALTED, halt_reason="manual"), signal(), "halted (manual)"),
        (dict(state=EngineState.REDUCING), signal(), "reducing"),
        (dict(auto_trading_enabled=False), signal(), "auto-trading disabled"),
        (dict(positions={("BTCUSDT", PositionSide.BOTH): Decimal("0.01")}), signal(), "position already open on BTCUSDT"),
        (dict(pending_entries=frozenset({("BTCUSDT", PositionSide.BOTH)})), signal(), "entry already pending"),
        (dict(equity=Decimal(10)), signal(), "size rounds to zero"),
        (dict(equity=Decimal(50)), signal("ETHUSDT", price="2500"), "below the symbol minimum 20 USDT"),
        (dict(equity=Decimal(200_000), available_balance=Decimal(200_000), leverage=125), signal(),
         "above 50000 USDT, the bracket maximum at 125x"),
        (dict(available_balance=Decimal(500)), signal(), "insufficient margin"),
        ({}, signal("DOGEUSDT"), "unknown symbol"),
    ],
)
def test_each_rule_denies_with_its_reason(kw, sig, reason):
    v = GUARD.evaluate(sig, view(**kw))
    assert isinstance(v, Denied)
    assert reason in v.reason


def test_hedge_mode_allows_the_other_side_but_not_the_same_side():
    pos = {("BTCUSDT", PositionSide.LONG): Decimal("0.01")}
    hv = view(position_mode=PositionMode.HEDGE, positions=pos)
    assert isinstance(GUARD.evaluate(signal(direction=Direction.SHORT), hv), Approved)
    d = GUARD.evaluate(signal(direction=Direction.LONG), hv)
    assert isinstance(d, Denied) and "LONG" in d.reason
    short = GUARD.evaluate(signal(direction=Direction.SHORT), hv).intent
    assert short.position_side is PositionSide.SHORT and short.stop_price > short.reference_price


def test_one_way_denies_opposite_direction_too():
    pos = {("BTCUSDT", PositionSide.BOTH): Decimal("-0.01")}
    assert isinstance(GUARD.evaluate(signal(direction=Direction.LONG), view(positions=pos)), Denied)


FULL = Guard.default(position_size_pct=Decimal(10), stop_loss_pct=Decimal(3), take_profit_pct=Decimal(5),
                     max_position_pct=Decimal(10), max_total_exposure_pct=Decimal(50), max_daily_trades=20,
                     max_daily_loss_pct=Decimal(5))


@pytest.mark.parametrize(
    "kw, reason",
    [
        (dict(entries_today=20), "daily trade limit: 20 of 20"),
        (dict(equity=Decimal(9500), day_start_equity=Decimal(10000)), "daily loss limit: down 5% today"),
        (dict(used_margin=Decimal(4500)), "total exposure"),
    ],
)
def test_daily_and_exposure_limits_deny(kw, reason):
    v = FULL.evaluate(signal(), view(**kw))
    assert isinstance(v, Denied) and reason in v.reason


def test_limits_allow_just_inside():
    assert isinstance(FULL.evaluate(signal(), view(entries_today=19, used_margin=Decimal(3700),
                                                   equity=Decimal(9501), day_start_equity=Decimal(10000))), Approved)


def test_position_margin_cap_is_enforced_when_sizing_asks_for_more():
    greedy = Guard.default(position_size_pct=Decimal(20), stop_loss_pct=Decimal(3), take_profit_pct=None,
                           max_position_pct=Decimal(10))
    v = greedy.evaluate(signal(), view())
    assert isinstance(v, Denied) and "max_position_pct 10%" in v.reason
