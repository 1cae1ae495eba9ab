"""RiskMonitor: market-shock, daily-loss and losing-streak halts, per-strategy loss limits, and
which halt wins when several are in force."""

import json
from datetime import datetime, timezone
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.guard.monitor import (
    HaltRequest,
    ResumeRequest,
    RiskMonitor,
    StrategyDisabled,
    should_apply,
)
from engine.model import Candle, Direction, ExitReason, PositionSide, Trade

T0 = int(datetime(2024, 5, 6, 12, 0, tzinfo=timezone.utc).timestamp()) * 1000  # 12:00 UTC
MIN = 60_000
COOL = 900  # s
START = Decimal(10000)


def monitor(**kw):
    base = dict(max_daily_loss_pct=Decimal(5), max_consecutive_losses=3, strategy_loss_limit_pct=Decimal(3),
                shock_move_pct=Decimal(3), shock_cooldown_s=COOL)
    base.update(kw)
    return RiskMonitor(**base)


def bar(now, o="100", h="101", low="99.5", c="100.5", symbol="BTCUSDT"):
    """The candle that closed at ``now``."""
    return Candle(symbol, now - MIN + 1, now, Decimal(o), Decimal(h), Decimal(low), Decimal(c), Decimal(1))


def shock(now, symbol="BTCUSDT"):
    return bar(now, "100", "104", "100", "103", symbol)  # 4% range


def trade(net, strategy="a", fees="0", t=T0):
    net, fees = Decimal(net), Decimal(fees)
    return Trade("t", None, strategy, "BTCUSDT", Direction.LONG, PositionSide.BOTH, t - 10 * MIN, Decimal(100),
                 Decimal(1), t, Decimal(100), "why", ExitReason.STOP_LOSS, fees, Decimal(0), net + fees,
                 Decimal(0), Decimal(0))


def kinds(reqs):
    return [(type(r).__name__, getattr(r, "kind", getattr(r, "strategy", None))) for r in reqs]


# -- market shock ----------------------------------------------------------------------------------


def test_shock_halts_then_resumes_after_the_cool_down():
    m = monitor()
    assert list(m.on_candle(bar(T0), T0)) == []
    (h,) = m.on_candle(shock(T0 + MIN), T0 + MIN)
    assert isinstance(h, HaltRequest) and h.kind == "market_shock"
    assert h.reason == ("market shock: BTCUSDT 1m range 4% of open, above shock_move_pct 3%; "
                        "no new entries until 12:16:00 UTC, then re-evaluated")
    assert m.halted_by == "market_shock" and m.shock_until_ms == T0 + MIN + COOL * 1000
    assert list(m.on_candle(bar(T0 + MIN + COOL * 1000 - 1), T0 + MIN + COOL * 1000 - 1)) == []
    assert m.halted_by == "market_shock"
    (r,) = m.on_candle(bar(T0 + MIN + COOL * 1000, symbol="ETHUSDT"), T0 + MIN + COOL * 1000)
    assert isinstance(r, ResumeRequest) and r.kind == "market_shock"
    assert r.reason == "re-evaluated after cool-down: no shock since 12:01:00 UTC"
    assert m.halted_by is None and m.shock_until_ms is None
    assert list(m.on_candle(bar(T0 + 20 * MIN), T0 + 20 * MIN)) == []


def test_a_shock_during_the_cool_down_extends_it():
    m = monitor()
    m.on_candle(shock(T0), T0)
    assert list(m.on_candle(shock(T0, "ETHUSDT"), T0)) == []  # same minute, other symbol: same end
    (h,) = m.on_candle(shock(T0 + 10 * MIN, "SOLUSDT"), T0 + 10 * MIN)
    assert isinstance(h, HaltRequest) and h.kind == "market_shock" and "until 12:25:00 UTC" in h.reason
    assert m.shock_until_ms == T0 + 10 * MIN + COOL * 1000
    assert list(m.on_candle(bar(T0 + COOL * 1000), T0 + COOL * 1000)) == []  # the first end passes
    assert m.halted_by == "market_shock"
    (r,) = m.on_candle(bar(T0 + 25 * MIN), T0 + 25 * MIN)
    assert r == ResumeRequest("re-evaluated after cool-down: no shock since 12:10:00 UTC", "market_shock")


def test_shock_threshold_is_strictly_above_and_relative_to_the_open():
    m = monitor()
    assert list(m.on_candle(bar(T0, "100", "103", "100", "101"), T0)) == []  # exactly 3%: not above
    # range 3.09 is 3.09% of a 100 open (shock) but only 2.997% of a 103.09 open (none)
    assert list(m.on_candle(bar(T0, "103.09", "103.09", "100", "101"), T0)) == []
    assert kinds(m.on_candle(bar(T0, "100", "103.09", "100", "101"), T0)) == [("HaltRequest", "market_shock")]
    m = monitor()
    assert kinds(m.on_candle(bar(T0, "100", "103.000001", "100", "101"), T0)) == [("HaltRequest", "market_shock")]


@settings(max_examples=500, deadline=None)
@given(low=st.integers(10**4, 10**9), pct=st.integers(1, 2000), delta=st.integers(-3, 3), o=st.floats(0, 1))
def test_shock_detection_right_at_the_threshold(low, pct, delta, o):
    """Ranges within a few ten-thousandths of the threshold, where float rounding could flip it."""
    rng = max(0, low * pct // 10_000 + delta)  # about pct/100 % of the low, in units of 0.0001
    high = low + rng
    op = low + int(rng * o)
    q = Decimal("0.0001")
    c = Candle("X", 0, MIN - 1, op * q, high * q, low * q, op * q, Decimal(1))
    m = monitor(shock_move_pct=Decimal(pct) / 100)
    is_shock = Fraction(high - low) * 100 > Fraction(pct, 100) * op
    assert (len(m.on_candle(c, MIN - 1)) == 1) is is_shock


@settings(max_examples=500, deadline=None)
@given(low=st.integers(1, 10**9), rng=st.integers(0, 10**8), o=st.floats(0, 1), pct=st.integers(1, 2000))
def test_shock_detection_matches_exact_arithmetic(low, rng, o, pct):
    """The float pre-check never changes the answer: compare with exact fractions."""
    high = low + rng
    op = low + int(rng * o)
    q = Decimal("0.0001")
    c = Candle("X", 0, MIN - 1, op * q, high * q, low * q, op * q, Decimal(1))
    m = monitor(shock_move_pct=Decimal(pct) / 100)
    is_shock = Fraction(high - low) * 100 > Fraction(pct, 100) * op
    assert (len(m.on_candle(c, MIN - 1)) == 1) is is_shock


def test_shock_off_and_common_path_returns_the_shared_empty_result():
    m = monitor(shock_move_pct=Decimal(0))
    assert list(m.on_candle(shock(T0), T0)) == [] and m.halted_by is None
    m = monitor()
    a, b = m.on_candle(bar(T0), T0), m.on_candle(bar(T0 + MIN), T0 + MIN)
    assert a is b and not a  # no allocation per calm candle


def test_zero_cool_down_lifts_on_the_next_calm_candle():
    m = monitor(shock_cooldown_s=0)
    assert kinds(m.on_candle(shock(T0), T0)) == [("HaltRequest", "market_shock")]
    assert kinds(m.on_candle(bar(T0), T0)) == [("ResumeRequest", "market_shock")]


# -- daily loss and losing streaks -----------------------------------------------------------------


def test_daily_loss_halts_once_and_is_lifted_at_the_new_day():
    m = monitor()
    assert list(m.on_equity(Decimal("9500.01"), START, T0)) == []
    (h,) = m.on_equity(Decimal(9500), START, T0)
    assert h == HaltRequest("daily loss limit: down 5% today, max_daily_loss_pct 5%; no new entries until 00:00 UTC",
                            "daily_loss")
    assert list(m.on_equity(Decimal(9000), START, T0 + MIN)) == []  # once per day
    (r,) = m.on_new_day(T0 + 12 * 60 * MIN)
    assert isinstance(r, ResumeRequest) and r.kind == "daily_loss" and m.halted_by is None
    assert list(m.on_new_day(T0 + 36 * 60 * MIN)) == []
    # a new day can trip it again
    assert kinds(m.on_equity(Decimal(8000), Decimal(9000), T0 + 37 * 60 * MIN)) == [("HaltRequest", "daily_loss")]


def test_daily_loss_off_or_without_a_day_start():
    assert list(monitor(max_daily_loss_pct=None).on_equity(Decimal(1), START, T0)) == []
    assert list(monitor().on_equity(Decimal(1), Decimal(0), T0)) == []


def test_new_day_lifts_the_daily_loss_halt_but_not_the_losing_streak_halt():
    m = monitor()
    assert list(m.on_trade_closed(trade("-10"), START)) == []
    assert list(m.on_trade_closed(trade("-10"), START)) == []
    (h,) = m.on_trade_closed(trade("-10"), START)
    assert h == HaltRequest("consecutive losses: 3 losing trades in a row, max_consecutive_losses 3; resume by hand",
                            "consecutive_losses")
    assert list(m.on_equity(Decimal(9000), START, T0)) == []  # weaker: remembered, not reported
    assert m.halted_by == "consecutive_losses"
    assert list(m.on_new_day(T0 + 12 * 60 * MIN)) == []
    assert m.halted_by == "consecutive_losses"
    assert list(m.on_trade_closed(trade("-10"), START)) == []  # no repeat while halted
    m.on_operator_resume()
    assert m.halted_by is None and m.consecutive_losses == 0


def test_a_stronger_halt_replaces_a_weaker_one_and_not_the_other_way_round():
    m = monitor()
    assert kinds(m.on_candle(shock(T0), T0)) == [("HaltRequest", "market_shock")]
    assert kinds(m.on_equity(Decimal(9000), START, T0)) == [("HaltRequest", "daily_loss")]
    for _ in range(2):
        m.on_trade_closed(trade("-1"), START)
    assert kinds(m.on_trade_closed(trade("-1"), START)) == [("HaltRequest", "consecutive_losses")]
    assert m.halted_by == "consecutive_losses"
    assert list(m.on_candle(shock(T0 + MIN), T0 + MIN)) == []  # a new shock is weaker: silent
    assert m.halted_by == "consecutive_losses"


def test_shock_cool_down_ending_under_a_daily_loss_halt_is_silent_then_the_day_lifts_it():
    m = monitor()
    m.on_candle(shock(T0), T0)
    m.on_equity(Decimal(9000), START, T0 + MIN)
    assert m.halted_by == "daily_loss"
    assert list(m.on_candle(bar(T0 + COOL * 1000), T0 + COOL * 1000)) == []
    assert m.shock_until_ms is None and m.halted_by == "daily_loss"
    assert kinds(m.on_new_day(T0 + 12 * 60 * MIN)) == [("ResumeRequest", "daily_loss")]


def test_new_day_during_a_shock_cool_down_falls_back_to_the_shock_halt():
    m = monitor()
    day = T0 + 12 * 60 * MIN  # 00:00 UTC
    m.on_equity(Decimal(9000), START, day - 10 * MIN)
    m.on_candle(shock(day - 5 * MIN), day - 5 * MIN)
    assert m.halted_by == "daily_loss"
    (h,) = m.on_new_day(day)
    assert h.kind == "market_shock" and isinstance(h, HaltRequest) and "until 00:10:00 UTC" in h.reason
    assert m.halted_by == "market_shock"
    assert kinds(m.on_candle(bar(day + 10 * MIN), day + 10 * MIN)) == [("ResumeRequest", "market_shock")]


def test_losses_count_net_of_fees_and_a_break_even_or_win_resets_the_streak():
    m = monitor(max_consecutive_losses=2)
    m.on_trade_closed(trade("-0.01", fees="5"), START)  # gross +4.99, net -0.01
    assert m.consecutive_losses == 1
    m.on_trade_closed(trade("0"), START)  # break-even resets
    assert m.consecutive_losses == 0
    m.on_trade_closed(trade("-1"), START)
    m.on_trade_closed(trade("2"), START)
    assert m.consecutive_losses == 0 and m.halted_by is None
    off = monitor(max_consecutive_losses=0)
    for _ in range(50):
        assert list(off.on_trade_closed(trade("-1", strategy=str(_)), START)) == []
    assert off.consecutive_losses == 50 and off.halted_by is None


# -- per-strategy loss limit -----------------------------------------------------------------------


def test_strategy_is_disabled_once_and_re_enabled_by_operator_resume():
    m = monitor(max_consecutive_losses=0)  # limit 3% of 10,000 = 300
    assert list(m.on_trade_closed(trade("-200", "a"), START)) == []
    assert kinds(m.on_trade_closed(trade("-500", "b"), START)) == [("StrategyDisabled", "b")]  # b's own limit
    assert m.disabled_strategies == {"b"}
    m.on_trade_closed(trade("150", "a"), START)
    assert list(m.on_trade_closed(trade("-249.99", "a"), START)) == []  # -299.99
    (d,) = m.on_trade_closed(trade("-0.01", "a"), START)  # exactly -300: disabled
    assert d == StrategyDisabled("a", "strategy a disabled: closed trades net -300 USDT since start, at or past "
                                      "strategy_loss_limit_pct 3% of starting equity 10000 = -300 USDT; "
                                      "resume re-enables it")
    assert list(m.on_trade_closed(trade("-50", "a"), START)) == []  # once
    assert m.disabled_strategies == {"a", "b"}
    assert m.strategy_net_pnl == {"a": Decimal("-350"), "b": Decimal("-500")}
    m.on_operator_resume()
    assert m.disabled_strategies == set()
    # the allowance counts afresh from -350: down to -650 before it is disabled again
    assert list(m.on_trade_closed(trade("-299", "a"), START)) == []
    (d,) = m.on_trade_closed(trade("-1", "a"), START)
    assert d.strategy == "a" and "net -300 USDT since it was re-enabled" in d.reason
    assert m.strategy_net_pnl["a"] == Decimal("-650")


def test_strategy_limit_off():
    m = monitor(strategy_loss_limit_pct=Decimal(0), max_consecutive_losses=0)
    assert list(m.on_trade_closed(trade("-9999"), START)) == [] and not m.disabled_strategies
    m = monitor(max_consecutive_losses=0)
    assert list(m.on_trade_closed(trade("-9999"), Decimal(0))) == []  # no starting equity known


def test_one_trade_can_disable_its_strategy_and_halt_the_engine():
    m = monitor(max_consecutive_losses=1)
    assert kinds(m.on_trade_closed(trade("-400", "a"), START)) == [("StrategyDisabled", "a"),
                                                                   ("HaltRequest", "consecutive_losses")]


# -- operator and status ---------------------------------------------------------------------------


def test_operator_resume_clears_halts_shock_streak_and_disabled_strategies():
    m = monitor()
    m.on_candle(shock(T0), T0)
    m.on_equity(Decimal(9000), START, T0)
    for _ in range(3):
        m.on_trade_closed(trade("-200", "a"), START)
    assert m.halted_by == "consecutive_losses" and m.disabled_strategies == {"a"}
    m.on_operator_resume()
    assert (m.halted_by, m.shock_until_ms, m.consecutive_losses, m.disabled_strategies) == (None, None, 0, set())
    assert list(m.on_candle(bar(T0 + COOL * 1000), T0 + COOL * 1000)) == []  # nothing left to lift
    assert list(m.on_new_day(T0 + 12 * 60 * MIN)) == []
    # the daily limit that fired before the resume does not fire again the same day...
    m2 = monitor()
    m2.on_equity(Decimal(9000), START, T0)
    m2.on_operator_resume()
    assert list(m2.on_equity(Decimal(8000), START, T0 + MIN)) == []
    # ...but does on the next
    m2.on_new_day(T0 + 12 * 60 * MIN)
    assert kinds(m2.on_equity(Decimal(8000), START, T0 + 13 * 60 * MIN)) == [("HaltRequest", "daily_loss")]


def test_status_is_json_able():
    m = monitor()
    m.on_candle(shock(T0), T0)
    m.on_trade_closed(trade("-400.5", "zeta"), START)
    m.on_trade_closed(trade("12.25", "alpha"), START)
    s = json.loads(json.dumps(m.status()))
    assert s == {
        "consecutive_losses": 0,
        "disabled_strategies": ["zeta"],
        "halted_by": "market_shock",
        "halt_reason": m.status()["halt_reason"],
        "shock_until_ms": T0 + COOL * 1000,
        "strategy_net_pnl": {"alpha": "12.25", "zeta": "-400.5"},
    }
    assert s["halt_reason"].startswith("market shock: BTCUSDT")
    assert m.view_fields() == {"consecutive_losses": 0, "strategy_net_pnl": m.strategy_net_pnl,
                               "disabled_strategies": frozenset({"zeta"})}


# -- the engine contract ---------------------------------------------------------------------------


class FakeEngine:
    """The engine side of the contract, as the lead wires it: who made the halt decides what lifts it."""

    def __init__(self):
        self.active, self.source, self.reason = True, None, ""

    def apply(self, reqs):
        for r in reqs:
            if isinstance(r, StrategyDisabled) or not should_apply(r, engine_active=self.active,
                                                                   halt_source=self.source):
                continue
            if isinstance(r, HaltRequest):
                self.active, self.source, self.reason = False, r.kind, r.reason
            else:
                self.active, self.source, self.reason = True, None, r.reason

    def operator_halt(self, why):
        self.active, self.source, self.reason = False, None, why


def test_the_monitor_never_lifts_an_operator_halt():
    m, e = monitor(), FakeEngine()
    e.operator_halt("manual")
    e.apply(m.on_candle(shock(T0), T0))
    assert (e.active, e.reason) == (False, "manual")
    e.apply(m.on_candle(bar(T0 + COOL * 1000), T0 + COOL * 1000))  # the monitor lifts its shock halt...
    assert (e.active, e.reason) == (False, "manual")  # ...which was never the engine's


def test_the_operator_halting_over_a_monitor_halt_takes_it_over():
    m, e = monitor(), FakeEngine()
    e.apply(m.on_candle(shock(T0), T0))
    assert (e.active, e.source) == (False, "market_shock")
    e.operator_halt("looking into it")
    e.apply(m.on_candle(bar(T0 + COOL * 1000), T0 + COOL * 1000))
    assert (e.active, e.reason) == (False, "looking into it")


@pytest.mark.parametrize("req, active, source, applies", [
    (HaltRequest("x", "market_shock"), True, None, True),
    (HaltRequest("x", "market_shock"), False, None, False),  # operator halt / REDUCING
    (HaltRequest("x", "market_shock"), False, "daily_loss", True),  # the monitor's own (downgrade)
    (ResumeRequest("x", "market_shock"), False, "market_shock", True),
    (ResumeRequest("x", "market_shock"), False, "daily_loss", False),
    (ResumeRequest("x", "market_shock"), False, None, False),
    (ResumeRequest("x", "market_shock"), True, None, False),
])
def test_should_apply(req, active, source, applies):
    assert should_apply(req, engine_active=active, halt_source=source) is applies
