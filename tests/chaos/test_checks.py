"""The chaos harness's invariant checks on hand-made data: each one must catch what it is for (a
check that cannot fail would make the chaos run vacuous) and pass what is fine."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from chaos_harness import (  # noqa: E402
    ChaosConfig,
    DbState,
    check_entries,
    check_fills,
    check_open_state,
    check_protection,
    make_schedule,
    refused_s,
)

from engine.orders.ids import client_id  # noqa: E402

T = 1746884400000  # a candle open time
SIG_A = f"ema_trend:BTCUSDT:{T}:LONG"
SIG_B = f"ema_trend:BTCUSDT:{T - 60_000}:SHORT"


def db(**kw) -> DbState:
    base = dict(runs=["run1", "run2"], orders={}, algos={}, positions={}, fills=[], order_signal={},
                signal_ids=set())
    base.update(kw)
    return DbState(**base)


def otu(cid: str, x: str, oid: int, qty: str = "0.01", sym: str = "BTCUSDT") -> dict:
    return {"e": "ORDER_TRADE_UPDATE", "E": T + 59_999,
            "o": {"s": sym, "c": cid, "x": x, "X": "FILLED" if x == "TRADE" else "NEW", "i": oid, "l": qty,
                  "T": T + 59_999, "ps": "BOTH", "t": oid}}


def acc(amt: str, sym: str = "BTCUSDT") -> dict:
    return {"e": "ACCOUNT_UPDATE", "a": {"m": "ORDER", "P": [{"s": sym, "pa": amt, "ps": "BOTH"}]}}


def entry(cid: str, oid: int, amt_after: str) -> list[tuple[float, dict]]:
    return [(1.0, otu(cid, "NEW", oid)), (1.0, otu(cid, "TRADE", oid)), (1.0, acc(amt_after))]


# -- invariant 1 -------------------------------------------------------------------------------


def test_one_entry_per_signal_passes_and_slices_of_one_signal_are_one_entry():
    a0 = client_id("run1", SIG_A, "entry")
    a1 = client_id("run1", SIG_A, "entry", 1)  # a second TWAP slice: same digest, next attempt
    events = entry(a0, 1, "0.01") + entry(a1, 2, "0.02") + [(2.0, acc("0"))]
    b0 = client_id("run1", SIG_B, "entry")
    events += entry(b0, 3, "-0.01")
    assert check_entries(7, events, db(), ["ema_trend"], ["run1", "run2"]) == []


def test_a_signal_entered_again_after_a_restart_is_caught():
    first = client_id("run1", SIG_A, "entry")
    again = client_id("run2", SIG_A, "entry")  # the restarted engine (new namespace) re-entered it
    events = entry(first, 1, "0.01") + [(2.0, acc("0"))] + entry(again, 2, "0.01")
    [v] = check_entries(7, events, db(), ["ema_trend"], ["run1", "run2"])
    assert v.invariant == 1 and v.seed == 7 and SIG_A in v.detail and "2 times" in v.detail


def test_the_same_client_id_placed_twice_is_two_entries():
    cid = client_id("acct", SIG_A, "entry")
    events = entry(cid, 1, "0.01") + [(2.0, acc("0"))] + entry(cid, 2, "0.01")
    [v] = check_entries(7, events, db(order_signal={cid: SIG_A}), ["ema_trend"], [])
    assert "entered 2 times" in v.detail


def test_a_second_position_while_one_is_open_is_caught():
    a = client_id("run1", SIG_A, "entry")
    b = client_id("run1", SIG_B, "entry")
    events = entry(a, 1, "0.01") + entry(b, 2, "0.02")
    [v] = check_entries(7, events, db(), ["ema_trend"], ["run1"])
    assert "second position on BTCUSDT" in v.detail and b in v.detail


def test_an_entry_whose_signal_cannot_be_found_is_reported():
    cid = client_id("some-other-namespace", SIG_A, "entry")
    [v] = check_entries(7, entry(cid, 1, "0.01"), db(), ["ema_trend"], ["run1"])
    assert "no signal found" in v.detail


# -- invariant 2 -------------------------------------------------------------------------------


@dataclass
class Stretch:
    symbol: str
    position_side: str
    amount: str
    start_s: float
    replay_start_ms: int
    end_s: float
    ended_by: str = "stop"

    def duration_s(self, now_s: float | None = None) -> float:
        return self.end_s - self.start_s


def test_protection_limit():
    ok = Stretch("BTCUSDT", "BOTH", "0.01", 100.0, T, 100.3)
    bad = Stretch("ETHUSDT", "BOTH", "-1", 110.0, T, 116.5, "end")
    [v] = check_protection(3, [ok, bad], 5.0, t0=100.0)
    assert v.invariant == 2 and v.at_s == 10.0 and "ETHUSDT" in v.detail and "6.5 s" in v.detail


def test_protection_limit_does_not_count_time_the_exchange_refused_every_request():
    bare = Stretch("BTCUSDT", "BOTH", "0.01", 100.0, T, 108.0)  # 8 s without a stop
    refusals = [(101.0, 103.0, "ban"), (102.5, 104.0, "429"), (120.0, 130.0, "ban")]  # 3 s of it refused
    assert refused_s(100.0, 108.0, refusals) == 3.0
    assert check_protection(3, [bare], 5.0, t0=100.0, refusals=refusals) == []
    [v] = check_protection(3, [bare], 4.9, t0=100.0, refusals=refusals)
    assert "8.0 s, 3.0 s of it while the exchange refused" in v.detail
    [v] = check_protection(3, [bare], 5.0, t0=100.0, refusals=[(120.0, 130.0, "ban")])  # none overlaps
    assert "8.0 s (> 5 s" in v.detail


# -- invariant 3 -------------------------------------------------------------------------------


def xfill(tid: int, oid: int = 1, commission: str = "0.5", pnl: str = "0") -> dict:
    return {"symbol": "BTCUSDT", "id": tid, "orderId": oid, "side": "BUY", "qty": "0.01", "price": "100000",
            "commission": commission, "realizedPnl": pnl, "time": T}


def dfill(tid: int, run: str = "run1", commission: str = "0.50000000", pnl: str = "0") -> dict:
    return {"run_id": run, "symbol": "BTCUSDT", "trade_id": tid, "client_order_id": "x", "price": "100000.0",
            "quantity": "0.010", "commission": commission, "realized_pnl": pnl, "time_ms": T}


def test_fills_exactly_once_with_the_same_money():
    when = lambda key, t: (1.5, "engine #1 was running")  # noqa: E731
    assert check_fills(1, [xfill(1), xfill(2)], [dfill(1), dfill(2)], {}, when) == []
    vs = check_fills(1, [xfill(1), xfill(2), xfill(3, commission="0.7")],
                     [dfill(1), dfill(1, run="run2"), dfill(3), dfill(9)], {1: "pdE0-abc"}, when)
    details = sorted(v.detail for v in vs)
    assert all(v.invariant == 3 for v in vs) and len(vs) == 4
    assert any("#1 of pdE0-abc" in d and "2 times" in d for d in details)
    assert any("#2" in d and "not in the database" in d for d in details)
    assert any("#3" in d and "commission 0.50000000 != 0.7" in d for d in details)
    assert any("#9" in d and "not on the exchange" in d for d in details)


# -- invariant 4 -------------------------------------------------------------------------------


def test_open_state_compared_with_the_latest_rows():
    exchange = {"orders": [], "positions": {("BTCUSDT", "BOTH"): "0.01", ("ETHUSDT", "BOTH"): "0"},
                "algos": [{"clientAlgoId": "pdS0-a", "symbol": "BTCUSDT", "orderType": "STOP_MARKET",
                           "side": "SELL", "triggerPrice": "99000"}]}
    good = db(algos={"pdS0-a": {"status": "NEW", "run_id": "run2", "symbol": "BTCUSDT", "purpose": "stop_loss"},
                     "pdT0-a": {"status": "CANCELED", "run_id": "run1", "symbol": "BTCUSDT", "purpose": "take_profit"}},
              positions={("BTCUSDT", "BOTH"): {"amount": "0.010", "run_id": "run2"},
                         ("ETHUSDT", "BOTH"): {"amount": "0", "run_id": "run1"}})
    assert check_open_state(1, 9.0, T, exchange, good) == []
    bad = db(algos={"pdS0-a": {"status": "CANCELED", "run_id": "run2", "symbol": "BTCUSDT", "purpose": "stop_loss"},
                    "pdT0-a": {"status": "NEW", "run_id": "run1", "symbol": "BTCUSDT", "purpose": "take_profit"}},
             orders={"pdE0-b": {"status": "PENDING_NEW", "run_id": "run1", "symbol": "ETHUSDT", "purpose": "entry"}},
             positions={("ETHUSDT", "BOTH"): {"amount": "1", "run_id": "run1"}})
    vs = check_open_state(1, 9.0, T, exchange, bad, describe=lambda cid: f"<{cid}>")
    details = sorted(v.detail for v in vs)
    assert len(vs) == 5 and all(v.invariant == 4 for v in vs)
    assert any("pdS0-a" in d and "on the exchange; database: CANCELED" in d for d in details)
    assert any("pdT0-a" in d and "<pdT0-a>" in d for d in details)
    assert any("pdE0-b" in d for d in details)
    assert any("BTCUSDT BOTH: exchange 0.01, database 0" in d for d in details)
    assert any("ETHUSDT BOTH: exchange 0, database 1" in d for d in details)


# -- the schedule ------------------------------------------------------------------------------


def test_schedule_is_reproducible_from_the_seed():
    cfg = ChaosConfig(minutes=60, kills=2, entry_kills=1, faults_per_min=10)
    a, b, c = make_schedule(5, cfg), make_schedule(5, cfg), make_schedule(6, cfg)
    assert a == b and a != c
    assert sum(x.kind == "kill" for x in a) == 2 and sum(x.kind == "arm_entry_kill" for x in a) == 1
    assert len(a) == 3 + 5 and all(0 < x.at_s < cfg.replay_s for x in a)
    assert [x.at_s for x in a] == sorted(x.at_s for x in a)
