"""The confluence strategy: external signals in through process_signal (event-clock time), one LONG
signal on the symbol's next closed candle, freshness re-checked, never the wall clock; and the
seeded signal simulator."""

import json
import time
from decimal import Decimal

import pytest

from engine.model import Direction
from engine.strategies.base import StrategyError, build_strategy
from engine.strategies.confluence import ConfluenceStrategy
from engine.strategies.external import ConfluenceParams, ExternalSignalError, IngestStatus
from engine.strategies.signal_sim import SignalSimulator
from tests.engine.strategies.support import MIN, T0, candle

S = 1000


def test_a_confluence_becomes_one_long_signal_on_the_next_closed_candle(monkeypatch):
    def no_wall_clock():
        raise AssertionError("the wall clock must not be read")

    monkeypatch.setattr(time, "time", no_wall_clock)
    s = build_strategy("confluence")
    t = T0 + 10 * MIN + 5 * S  # inside candle 10
    assert s.process_signal(113, "f1", "BTC", {"src": "x"}, t).status is IngestStatus.PENDING
    assert s.on_candle(candle(10, 100.0)) is None  # nothing held yet
    res = s.process_signal(110, "a1", "BTCUSDT", None, t + 20 * S)
    assert res.status is IngestStatus.CONFLUENCE
    assert s.on_candle(candle(10, 100.0, symbol="ETHUSDT")) is None  # another symbol
    sig = s.on_candle(candle(10, 101.25))  # candle 10 closes after both signals
    assert sig is not None and sig.direction is Direction.LONG and sig.symbol == "BTCUSDT"
    assert sig.price == Decimal("101.25") and sig.strategy == "confluence"
    assert sig.strength == pytest.approx(res.confluence.score, abs=1e-4) and sig.strength >= 0.6
    assert sig.time_ms == T0 + 11 * MIN - 1 and "f1" in sig.reason and "a1" in sig.reason
    assert s.on_candle(candle(11, 102.0)) is None  # consumed: one signal per confluence
    assert s.signal_stats().signals == 1 and s.external_stats()["confluences"] == 1


def test_a_candle_that_closed_before_the_confluence_never_carries_it():
    s = ConfluenceStrategy()
    t = T0 + 10 * MIN + 30 * S
    s.process_signal(113, "f", "SOL", None, t)
    s.process_signal(110, "a", "SOL", None, t + 10 * S)
    assert s.on_candle(candle(9, 20.0, symbol="SOLUSDT")) is None  # replayed late: closed at 10:00 - 1 ms
    assert s.held() and s.on_candle(candle(10, 20.0, symbol="SOLUSDT")) is not None


def test_freshness_is_rechecked_when_the_candle_comes_late():
    s = ConfluenceStrategy()
    s.process_signal(113, "f", "BTC", None, T0)
    s.process_signal(110, "a", "BTC", None, T0 + 60 * S)  # 0.936 when matched
    late = s.on_candle(candle(90, 100.0))  # closes 90 min later: freshness 0.5 → 0.786
    assert late is not None and late.strength == pytest.approx(0.786, abs=1e-3)

    s = ConfluenceStrategy()
    s.process_signal(110, "a", "ETH", None, T0)
    s.process_signal(112, "f", "ETH", None, T0 + 240 * S)  # 0.68 when matched
    assert s.on_candle(candle(95, 100.0, symbol="ETHUSDT")) is None  # 0.08 + 0.3 + 0.3×~0.46 < 0.6
    assert s.external_stats()["expired"] == 1 and not s.held()


def test_disabled_intensify_and_threshold_from_config():
    s = build_strategy("confluence", {"enable_fomo_intensify": "false", "min_signal_score": "0.7"})
    assert s.process_signal(112, "i", "BTC", None, T0).status is IngestStatus.IGNORED
    s.process_signal(110, "a", "BTC", None, T0 + 200 * S)
    assert s.process_signal(113, "f", "BTC", None, T0 + 440 * S).status is IngestStatus.BELOW_THRESHOLD


def test_bad_signals_and_params_name_the_field():
    s = ConfluenceStrategy()
    with pytest.raises(ExternalSignalError, match="^message_type:"):
        s.process_signal(999, "x", "BTC", None, T0)
    with pytest.raises(ExternalSignalError, match="^time_ms:"):
        s.process_signal(113, "x", "BTC", None, None)
    for raw, needle in [({"min_signal_score": 2}, "min_signal_score must be"),
                        ({"signal_time_window_s": "5m"}, "strategies.confluence.signal_time_window_s"),
                        ({"window": 300}, "unknown parameter")]:
        with pytest.raises(StrategyError, match=needle):
            build_strategy("confluence", raw)
    assert ConfluenceStrategy(ConfluenceParams()).on_candle(candle(0, 1.0, closed=False)) is None


def test_the_simulator_is_reproducible_ordered_and_realistic():
    a = SignalSimulator(seed=7, start_ms=T0).take(400)
    assert a == SignalSimulator(seed=7, start_ms=T0).take(400)
    assert a != SignalSimulator(seed=8, start_ms=T0).take(400)
    times = [x.time_ms for x in a]
    assert times == sorted(times) and times[0] > T0
    assert {x.message_type for x in a} == {110, 112, 113}
    assert any(x.symbol == "BTC" for x in a) and any(x.symbol == "BTCUSDT" for x in a)
    ids = [x.message_id for x in a]
    assert len(set(ids)) < len(ids)  # some messages are sent twice
    json.dumps([x.as_dict() for x in a])
    end = a[100].time_ms
    assert SignalSimulator(seed=7, start_ms=T0).until(end) == [x for x in a if x.time_ms < end]

    s = ConfluenceStrategy()
    statuses = [s.process_signal(*x.args()).status for x in a]
    assert statuses.count(IngestStatus.DUPLICATE) == len(ids) - len(set(ids))
    assert statuses.count(IngestStatus.CONFLUENCE) >= 20


def test_simulator_arguments_are_checked():
    with pytest.raises(ValueError, match="confluence_prob"):
        SignalSimulator(confluence_prob=2)
    with pytest.raises(ValueError, match="symbols"):
        SignalSimulator(symbols=())
