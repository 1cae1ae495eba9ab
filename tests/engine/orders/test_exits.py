"""Trade management, rule by rule, on the sim exchange: each scenario fails if its rule is missing.

Every test runs crafted BTCUSDT candles through the real backtest loop (sim matching engine,
SimPort, engine) with a scripted strategy, then checks what the *exchange* did — fills, resting
conditional orders, the position — and the engine's closed trades, not the manager's beliefs.

Sizing with the default account: 10 000 USDT × 10% margin × 3x = 3 000 USDT notional, so an entry at
100 000 is 0.030 BTC (filled at 100 010 with the sim's 1 bp slippage). Settings that matter are
set explicitly in each test.
"""

from __future__ import annotations

from decimal import Decimal

from engine.exchange.errors import Banned
from engine.model import AlgoStatus, Direction, ExitReason, OrderPurpose, OrderStatus, OrderType
from tests.engine.orders.scenario import (
    MIN,
    FailingPlacements,
    HoldAccountUpdates,
    HoldEntryUpdates,
    StopWatch,
    algo_requests,
    bar,
    close_ms,
    exchange_position,
    fills,
    flat,
    index,
    path,
    resting_stops,
    run_scenario,
    tick,
)

LONG = Direction.LONG
FEE = Decimal("0.0005")  # the sim's taker fee rate (the default [sim] setting)

NO_EXITS = {"break_even_trigger_pct": 0, "break_even_trigger_r": 0, "break_even_timeout_s": 0, "trailing": "off"}
"""Every optional exit rule off: a test turns on only the one it is about."""
RISK = {"stop_loss_pct": 3, "take_profit_1_pct": 0, "take_profit_2_pct": 20}
"""3% stop, one far take-profit (no partial) unless the test says otherwise."""


def exits(**kw):
    return {**NO_EXITS, **kw}


def risk(**kw):
    return {**RISK, **kw}


def rules(run):
    return run.engine.rules["BTCUSDT"]


def entry_fills(run):
    return [f for f in fills(run) if f["purpose"] is OrderPurpose.ENTRY]


def exit_fills(run):
    return [f for f in fills(run) if f["purpose"] is not OrderPurpose.ENTRY]


def one_trade(run):
    closed = run.engine.trades.closed
    assert len(closed) == 1, closed
    return closed[0]


def algo_state(run, caid):
    return run.engine.orders.algos[caid]


def sim_algo(run, caid):
    return run.sim.query_algo_order({"symbol": "BTCUSDT", "clientAlgoId": caid})


def snapshots(at_index):
    """A ``between`` hook recording, after the given candles, the sim's position and resting algos."""
    seen = {}

    def hook(run, candle):
        i = index(candle.open_time_ms)
        if i in at_index:
            seen[i] = {"position": exchange_position(run), "algos": run.sim.open_algo_orders({}),
                       "stops": resting_stops(run)}

    return hook, seen


# a climb from 1.00 to +2% in 0.4% steps, then a slide back through the entry to -4%
RISE_THEN_FALL = (flat(10, 1.0) + path(1.0, 1.004, 1.008, 1.012, 1.016, 1.02, start=10)
                  + path(1.02, 1.01, 1.0, 0.99, 0.98, 0.97, 0.96, start=16) + flat(5, 0.96, start=23))


# -- 1. break-even ------------------------------------------------------------------------------


def test_break_even_moves_the_stop_to_entry_plus_fees_then_exits_there():
    hook, seen = snapshots({12, 13})
    run = run_scenario(RISE_THEN_FALL, {9: LONG}, port_wrapper=StopWatch, between=hook, risk=risk(),
                       exits=exits(break_even_trigger_pct=1))
    control = run_scenario(RISE_THEN_FALL, {9: LONG}, risk=risk(), exits=exits())

    entry = entry_fills(run)[0]["price"]
    be = rules(run).round_price_up(entry * (1 + 2 * FEE))  # entry plus the entry's and the exit's fee
    stops = [r for r in algo_requests(run) if r.type is OrderType.STOP_MARKET]
    assert [s.purpose for s in stops] == [OrderPurpose.STOP_LOSS, OrderPurpose.BREAK_EVEN_STOP]
    first, moved = stops
    assert moved.close_position and moved.trigger_price == be
    # +1% (101 010) is first reached by candle 13 (high 101 200); candle 12 (high 100 800) changes nothing
    assert [s["clientAlgoId"] for s in seen[12]["stops"]] == [first.client_algo_id]
    assert [(s["clientAlgoId"], Decimal(s["triggerPrice"])) for s in seen[13]["stops"]] == [(moved.client_algo_id, be)]
    assert algo_state(run, moved.client_algo_id).created_ms == close_ms(13)
    assert sim_algo(run, first.client_algo_id)["algoStatus"] == "CANCELED"
    assert run.port.after_cancel and not run.port.unprotected()  # new stop first, then the old one cancelled
    assert run.engine.stats.unprotected_checks == 0

    t = one_trade(run)
    assert t.exit_reason is ExitReason.BREAK_EVEN_STOP
    assert [f["coid"] for f in exit_fills(run)] == [moved.client_algo_id]
    assert abs(t.net_pnl) < 1  # fees covered; only the sim's slippage is lost
    ref = one_trade(control)  # without the rule the same path runs into the 3% stop
    assert ref.exit_reason is ExitReason.STOP_LOSS and ref.net_pnl < -80
    assert exchange_position(run) == 0 and not run.sim.open_algo_orders({})


def test_break_even_trigger_in_r_multiples_of_the_stop_distance():
    # stop 3% below entry, trigger 0.5 R = +1.5% (≈101 510): candle 14 (high 101 600) reaches it, 13 does not
    run = run_scenario(RISE_THEN_FALL, {9: LONG}, port_wrapper=StopWatch, risk=risk(stop_loss_pct=3),
                       exits=exits(break_even_trigger_pct=0, break_even_trigger_r="0.5"))
    entry = entry_fills(run)[0]["price"]
    moved = [r for r in algo_requests(run) if r.purpose is OrderPurpose.BREAK_EVEN_STOP]
    assert len(moved) == 1 and moved[0].type is OrderType.STOP_MARKET and moved[0].close_position
    assert moved[0].trigger_price == rules(run).round_price_up(entry * (1 + 2 * FEE))
    assert algo_state(run, moved[0].client_algo_id).created_ms == close_ms(14)
    assert not run.port.unprotected()
    t = one_trade(run)
    assert t.exit_reason is ExitReason.BREAK_EVEN_STOP and abs(t.net_pnl) < 1

    # a 1 R trigger (+3%) is never reached on this path: the 3% stop takes it
    far = run_scenario(RISE_THEN_FALL, {9: LONG}, risk=risk(stop_loss_pct=3),
                       exits=exits(break_even_trigger_pct=0, break_even_trigger_r=1))
    assert not [r for r in algo_requests(far) if r.purpose is OrderPurpose.BREAK_EVEN_STOP]
    assert one_trade(far).exit_reason is ExitReason.STOP_LOSS


# -- 2. break-even timeout ----------------------------------------------------------------------


def test_break_even_timeout_closes_at_market_reduce_only():
    timeout_s = 630  # not a whole number of candles: the close comes with the first candle past it
    run = run_scenario(flat(40, 1.0), {9: LONG}, risk=risk(),
                       exits=exits(break_even_trigger_pct=1, break_even_timeout_s=timeout_s))
    t = one_trade(run)
    assert t.exit_reason is ExitReason.BREAK_EVEN_TIMEOUT
    due = t.entry_time_ms + timeout_s * 1000
    assert due <= t.exit_time_ms < due + MIN
    closes = [st for st in run.engine.orders.orders.values() if st.req.purpose is not OrderPurpose.ENTRY]
    assert [(c.req.purpose, c.req.type, c.req.reduce_only, c.status) for c in closes] == [
        (OrderPurpose.BREAK_EVEN_TIMEOUT, OrderType.MARKET, True, OrderStatus.FILLED)]
    assert [f["coid"] for f in exit_fills(run)] == [closes[0].req.client_order_id]
    assert exchange_position(run) == 0 and not run.sim.open_algo_orders({})  # the stop and TP went with it


def test_break_even_timeout_stops_once_break_even_is_reached():
    # +1.2% within 3 minutes of the entry, then sideways for half an hour
    candles = flat(10, 1.0) + path(1.0, 1.006, 1.012, start=10) + flat(30, 1.012, start=13)
    run = run_scenario(candles, {9: LONG}, risk=risk(),
                       exits=exits(break_even_trigger_pct=1, break_even_timeout_s=300))
    assert run.engine.trades.closed == []
    assert exchange_position(run) == Decimal("0.030")  # still open 25 minutes past the timeout
    assert [s["clientAlgoId"] for s in resting_stops(run)] == [
        r.client_algo_id for r in algo_requests(run) if r.purpose is OrderPurpose.BREAK_EVEN_STOP]
    assert not [o for o in run.engine.orders.orders.values() if o.req.purpose is OrderPurpose.BREAK_EVEN_TIMEOUT]


# -- 3. partial take-profit ---------------------------------------------------------------------


def test_partial_take_profit_closes_half_then_the_rest():
    # at 103 000 the entry is 0.029 BTC: TP1 closes the rounded half (0.014), TP2 the rest (0.015)
    candles = (flat(10, 1.03) + path(1.03, 1.05, 1.07, 1.09, start=10) + flat(5, 1.09, start=14)
               + path(1.09, 1.11, 1.13, 1.14, start=19) + flat(3, 1.14, start=23))
    hook, seen = snapshots({18})
    run = run_scenario(candles, {9: LONG}, between=hook, risk=risk(take_profit_1_pct=5, take_profit_1_close_pct=50,
                                                                   take_profit_2_pct=10), exits=exits())
    entry = entry_fills(run)
    assert [f["qty"] for f in entry] == [Decimal("0.029")]
    tps = [r for r in algo_requests(run) if r.type is OrderType.TAKE_PROFIT_MARKET]
    assert [(r.purpose, r.close_position, r.quantity, r.reduce_only) for r in tps] == [
        (OrderPurpose.TAKE_PROFIT_1, False, Decimal("0.014"), True), (OrderPurpose.TAKE_PROFIT, True, None, False)]
    price = entry[0]["price"]
    assert tps[0].trigger_price == rules(run).round_price_up(price * Decimal("1.05"))
    assert tps[1].trigger_price == rules(run).round_price_up(price * Decimal("1.10"))

    # between the two targets: half the position is left, its stop and TP2 still rest on the exchange
    mid = seen[18]
    assert mid["position"] == Decimal("0.015")
    assert len(mid["stops"]) == 1 and mid["stops"][0]["closePosition"]
    resting_tps = [a["clientAlgoId"] for a in mid["algos"] if a["orderType"] == "TAKE_PROFIT_MARKET"]
    assert resting_tps == [tps[1].client_algo_id]

    out = exit_fills(run)
    assert [(f["coid"], f["qty"]) for f in out] == [(tps[0].client_algo_id, Decimal("0.014")),
                                                   (tps[1].client_algo_id, Decimal("0.015"))]
    t = one_trade(run)
    assert t.exit_reason is ExitReason.TAKE_PROFIT_2 and t.quantity == Decimal("0.029") and t.net_pnl > 0
    assert exchange_position(run) == 0 and not run.sim.open_algo_orders({})


def test_take_profit_levels_merge_when_half_is_below_min_notional():
    # at 30 000, 0.25% margin × 3x = 75 USDT → 0.002 BTC (60 USDT); half (0.001, ~31.5 USDT at TP1)
    # is below the 50 USDT minimum notional: one take-profit for the whole position
    candles = flat(10, 0.3) + path(0.3, 0.31, 0.32, 0.33, 0.34, start=10) + flat(3, 0.34, start=15)
    run = run_scenario(candles, {9: LONG}, risk=risk(position_size_pct="0.25", max_position_pct="0.25",
                                                     take_profit_1_pct=5, take_profit_2_pct=10), exits=exits())
    assert [f["qty"] for f in entry_fills(run)] == [Decimal("0.002")]
    tps = [r for r in algo_requests(run) if r.type is OrderType.TAKE_PROFIT_MARKET]
    assert len(tps) == 1 and tps[0].close_position
    assert [(f["coid"], f["qty"]) for f in exit_fills(run)] == [(tps[0].client_algo_id, Decimal("0.002"))]
    assert one_trade(run).exit_reason is ExitReason.TAKE_PROFIT_2
    assert exchange_position(run) == 0


# -- 4./5. trailing stops -----------------------------------------------------------------------

# up 0.5% a candle to +4% (104 000), then down 0.4% a candle to 101 200
TRAIL_PATH = (flat(10, 1.0) + path(1.0, *[1.0 + 0.005 * k for k in range(1, 9)],
                                   *[1.04 - 0.004 * k for k in range(1, 8)], start=10) + flat(5, 1.012, start=26))
PEAK = Decimal(104_000)


def test_trailing_stop_on_the_exchange():
    hook, seen = snapshots({10})
    run = run_scenario(TRAIL_PATH, {9: LONG}, between=hook, risk=risk(),
                       exits=exits(trailing="exchange", trailing_activation_pct=2, trailing_callback_pct=1))
    entry = entry_fills(run)[0]["price"]
    trailing = [a for a in seen[10]["algos"] if a["orderType"] == "TRAILING_STOP_MARKET"]
    assert len(trailing) == 1
    assert Decimal(trailing[0]["activatePrice"]) == rules(run).round_price_up(entry * Decimal("1.02"))
    assert Decimal(trailing[0]["callbackRate"]) == 1
    assert Decimal(trailing[0]["quantity"]) == Decimal("0.03") and trailing[0]["reduceOnly"]
    assert len(seen[10]["stops"]) == 1  # the stop loss rests beside it

    t = one_trade(run)
    assert t.exit_reason is ExitReason.TRAILING
    out = exit_fills(run)
    assert [f["coid"] for f in out] == [trailing[0]["clientAlgoId"]]
    target = PEAK * Decimal("0.99")
    assert abs(out[0]["price"] - target) <= target * Decimal("0.0005")
    assert exchange_position(run) == 0 and not run.sim.open_algo_orders({})


def test_exchange_trailing_stop_reports_its_activation():
    """ALGO_UPDATE ``ia``: the bracket (and so the console) knows when the exchange trailing stop
    stops waiting for its activation price (+2%: 102 020 after a 100 010 fill) and follows price."""
    states = {}

    def hook(run, candle):
        br = next(iter(run.engine.orders.brackets.values()), None)
        states[index(candle.open_time_ms)] = None if br is None else br.trailing_activated

    run = run_scenario(TRAIL_PATH, {9: LONG}, between=hook, risk=risk(),
                       exits=exits(trailing="exchange", trailing_activation_pct=2, trailing_callback_pct=1))
    assert states[8] is None  # no exchange trailing stop before the entry
    assert states[9] is False and states[14] is False  # placed; +2.0% at most so far (102 000 < 102 020)
    assert states[15] is True  # +2.5%: activated, following price
    assert one_trade(run).exit_reason is ExitReason.TRAILING


def test_trailing_stop_moved_by_the_engine():
    run = run_scenario(TRAIL_PATH, {9: LONG}, port_wrapper=StopWatch, risk=risk(),
                       exits=exits(trailing="engine", trailing_activation_pct=2, trailing_callback_pct=1))
    stops = [r for r in algo_requests(run) if r.type is OrderType.STOP_MARKET]
    assert stops[0].purpose is OrderPurpose.STOP_LOSS
    trail = stops[1:]
    assert len(trail) >= 3 and all(s.purpose is OrderPurpose.TRAILING_STOP and s.close_position for s in trail)
    prices = [s.trigger_price for s in stops]
    assert prices == sorted(prices) and len(set(prices)) == len(prices)  # only ever up
    assert trail[-1].trigger_price == rules(run).round_price_down(PEAK * Decimal("0.99"))
    # each replacement is placed before its predecessor is cancelled: never a moment without a stop
    assert len(run.port.after_cancel) >= len(trail) and not run.port.unprotected()
    for s in stops[:-1]:
        assert sim_algo(run, s.client_algo_id)["algoStatus"] == "CANCELED"

    t = one_trade(run)
    assert t.exit_reason is ExitReason.TRAILING
    out = exit_fills(run)
    assert [f["coid"] for f in out] == [trail[-1].client_algo_id]
    assert abs(out[0]["price"] - trail[-1].trigger_price) <= trail[-1].trigger_price * Decimal("0.0005")
    assert exchange_position(run) == 0 and not run.sim.open_algo_orders({})


# -- 6. limit entries with a time to live -------------------------------------------------------


def test_unfilled_limit_entry_is_cancelled_after_its_ttl():
    # the limit rests 20 bp under the signal price; price only goes up
    candles = flat(10, 1.0) + path(1.0, 1.002, 1.004, 1.006, 1.008, 1.01, start=10) + flat(20, 1.01, start=16)
    run = run_scenario(candles, {9: LONG, 20: LONG}, risk=risk(), exits=exits(),
                       execution={"entry_order": "limit", "order_ttl_s": 120, "limit_offset_bps": 20})
    entries = [st for st in run.engine.orders.orders.values() if st.req.purpose is OrderPurpose.ENTRY]
    assert run.engine.stats.accepted == 2  # the second signal is not blocked by a stale pending entry
    assert len(entries) == 2
    for st, i in zip(entries, (9, 20)):
        assert st.req.type is OrderType.LIMIT and st.req.time_in_force == "GTC"
        assert st.status is OrderStatus.CANCELED and st.filled_qty == 0
        sim = run.sim.query_order({"symbol": "BTCUSDT", "origClientOrderId": st.req.client_order_id})
        assert sim["status"] == "CANCELED"
        # cancelled at the first moment past the TTL the engine sees (a candle close)
        assert close_ms(i) + 120_000 <= sim["updateTime"] < close_ms(i) + 120_000 + MIN
    assert entries[0].req.price == rules(run).round_price_down(Decimal(100_000) * Decimal("0.998"))
    assert run.sim.all_fills() == [] and exchange_position(run) == 0
    assert run.sim.open_orders({}) == [] and run.sim.open_algo_orders({}) == []
    assert run.engine.orders.pending_entries == {} and run.engine.orders.brackets == {}


def test_filled_limit_entry_is_protected_like_a_market_entry():
    # a dip to 99 700 in candle 11 fills the limit at 99 800 (maker), before the TTL runs out
    candles = flat(10, 1.0) + path(1.0, 0.997, 1.0, start=10) + flat(10, 1.0, start=13)
    run = run_scenario(candles, {9: LONG}, risk=risk(take_profit_1_pct=5, take_profit_2_pct=10), exits=exits(),
                       execution={"entry_order": "limit", "order_ttl_s": 120, "limit_offset_bps": 20})
    (entry,) = entry_fills(run)
    assert entry["price"] == Decimal(99_800) and entry["maker"] and entry["qty"] == Decimal("0.03")
    assert index(entry["time"]) == 11
    stops = resting_stops(run)
    assert len(stops) == 1
    assert Decimal(stops[0]["triggerPrice"]) == rules(run).round_price_down(entry["price"] * Decimal("0.97"))
    tps = sorted(Decimal(a["triggerPrice"]) for a in run.sim.open_algo_orders({})
                 if a["orderType"] == "TAKE_PROFIT_MARKET")
    assert tps == [rules(run).round_price_up(entry["price"] * Decimal("1.05")),
                   rules(run).round_price_up(entry["price"] * Decimal("1.10"))]
    assert exchange_position(run) == Decimal("0.03")
    assert run.engine.orders.is_protected(run.engine.orders.key_for("BTCUSDT", LONG))
    assert run.engine.stats.unprotected_checks == 0


# -- 7. split entries ---------------------------------------------------------------------------

SPLIT = {"split_min_notional": 100, "split_slices": 3, "split_duration_s": 180}


def test_twap_entry_in_equal_slices_with_one_stop():
    hook, seen = snapshots({9, 10, 11})
    run = run_scenario(flat(30, 1.0), {9: LONG}, port_wrapper=StopWatch, between=hook,
                       risk=risk(take_profit_1_pct=5, take_profit_2_pct=10), exits=exits(),
                       execution={"split": "twap", **SPLIT})
    entry = entry_fills(run)
    assert [f["qty"] for f in entry] == [Decimal("0.01")] * 3
    assert [f["time"] for f in entry] == [close_ms(9), close_ms(9) + MIN, close_ms(9) + 2 * MIN]
    # the stop goes on with the first slice, and stays the single closePosition stop
    stops = [r for r in algo_requests(run) if r.type is OrderType.STOP_MARKET]
    assert len(stops) == 1 and stops[0].close_position
    assert algo_state(run, stops[0].client_algo_id).created_ms == entry[0]["time"]
    assert [seen[i]["position"] for i in (9, 10, 11)] == [Decimal("0.01"), Decimal("0.02"), Decimal("0.03")]
    assert all([s["clientAlgoId"] for s in seen[i]["stops"]] == [stops[0].client_algo_id] for i in (9, 10, 11))
    # take-profits once the whole entry is in, TP1 sized to the total filled
    tps = {r.purpose: r for r in algo_requests(run) if r.type is OrderType.TAKE_PROFIT_MARKET}
    assert tps[OrderPurpose.TAKE_PROFIT_1].quantity == Decimal("0.015")
    assert algo_state(run, tps[OrderPurpose.TAKE_PROFIT_1].client_algo_id).created_ms == entry[-1]["time"]
    assert run.engine.stats.unprotected_checks == 0


def _vwap_history(signal_at, volumes, level):
    """Candles one day before the slices' minutes of the day, with the given volumes."""
    first = signal_at + 1 - 1440
    return [bar(first + k, level, level * 1.0005, level * 0.9995, level, v) for k, v in enumerate(volumes)]


def test_vwap_slices_follow_yesterdays_volume_profile():
    s = 20
    candles = _vwap_history(s, [1, 2, 3], 1.0) + flat(30, 1.0)
    run = run_scenario(candles, {s: LONG}, risk=risk(), exits=exits(), execution={"split": "vwap", **SPLIT})
    entry = entry_fills(run)
    assert [f["qty"] for f in entry] == [Decimal("0.005"), Decimal("0.010"), Decimal("0.015")]
    assert [f["time"] for f in entry] == [close_ms(s), close_ms(s) + MIN, close_ms(s) + 2 * MIN]
    assert len(resting_stops(run)) == 1 and exchange_position(run) == Decimal("0.03")


def test_vwap_slice_too_small_is_merged_into_the_next():
    # at 30 000 the entry is 0.1 BTC; a 1/81 share (0.001 BTC = 30 USDT) is below the 50 USDT minimum
    s = 20
    candles = _vwap_history(s, [1, 40, 40], 0.3) + flat(30, 0.3)
    run = run_scenario(candles, {s: LONG}, risk=risk(), exits=exits(), execution={"split": "vwap", **SPLIT})
    entry = entry_fills(run)
    assert [f["qty"] for f in entry] == [Decimal("0.050"), Decimal("0.050")]  # 0.049 + the merged 0.001, then the rest
    assert [f["time"] for f in entry] == [close_ms(s) + MIN, close_ms(s) + 2 * MIN]
    assert len(resting_stops(run)) == 1 and exchange_position(run) == Decimal("0.1")


# -- 8. a fill whose position the exchange has not reported yet ----------------------------------

def kept(wrapper):
    """A ``port_wrapper`` that wraps the port in ``wrapper``, and a dict keeping it under "port"."""
    held = {}

    def wrap(port):
        held["port"] = wrapper(port)
        return held["port"]

    return wrap, held


FALL = flat(15, 1.0) + path(1.0, 0.99, 0.98, 0.97, 0.96, start=15) + flat(5, 0.96, start=20)


def test_protection_waits_for_the_position_report():
    wrap, held = kept(HoldAccountUpdates)
    seen = {}

    def between(run, candle):
        if index(candle.open_time_ms) == 9:  # the entry filled at this candle's close
            seen["before"] = (exchange_position(run), dict(run.engine.orders.algos), run.engine.positions.copy())
            held["port"].release(candle.close_time_ms + 2_000)  # the report arrives 2 s late
            tick(run, candle.close_time_ms + 2_000)

    run = run_scenario(FALL, {9: LONG}, port_wrapper=wrap, between=between, risk=risk(), exits=exits(),
                       execution={"position_wait_s": 5})
    pos, algos_before, positions_before = seen["before"]
    assert pos == Decimal("0.03") and positions_before == {}  # filled on the exchange, not reported
    assert algos_before == {}  # no protection yet
    (fill,) = entry_fills(run)
    stop = [r for r in algo_requests(run) if r.purpose is OrderPurpose.STOP_LOSS][0]
    assert algo_state(run, stop.client_algo_id).created_ms == fill["time"] + 2_000  # with the report, not the wait
    t = one_trade(run)
    assert t.exit_reason is ExitReason.STOP_LOSS
    assert exchange_position(run) == 0 and not run.sim.open_algo_orders({})


def test_a_position_reported_before_its_entry_fill_is_protected_at_once():
    """The entry's fill events are late (its answer stalled, the stream delayed) but the exchange
    already reports the position: the stop goes out with that report, priced from the position's
    entry price, not seconds later when the fill event finally comes."""
    wrap, held = kept(HoldEntryUpdates)
    seen = {}

    def between(run, candle):
        i = index(candle.open_time_ms)
        if i == 9:  # the entry filled at this candle's close; only the position report came
            seen["pos"], seen["stops"] = exchange_position(run), resting_stops(run)
        if i == 11:
            held["port"].release(candle.close_time_ms)
            tick(run, candle.close_time_ms)

    run = run_scenario(FALL, {9: LONG}, port_wrapper=wrap, between=between, risk=risk(), exits=exits())
    assert seen["pos"] == Decimal("0.03") and len(seen["stops"]) == 1
    (fill,) = entry_fills(run)
    assert Decimal(seen["stops"][0]["triggerPrice"]) == rules(run).round_price_down(fill["price"] * Decimal("0.97"))
    stops = [r for r in algo_requests(run) if r.purpose is OrderPurpose.STOP_LOSS]
    assert len(stops) == 1  # the fill event, when it came, did not place a second one
    t = one_trade(run)
    assert t.exit_reason is ExitReason.STOP_LOSS and t.entry_price == fill["price"]
    assert exchange_position(run) == 0 and not run.sim.open_algo_orders({})


def test_protection_goes_on_after_the_wait_when_the_position_is_never_reported():
    candles = FALL + flat(10, 0.96, start=25) + path(0.96, 0.98, 1.0, 1.02, 1.04, 1.06, 1.08, start=35)
    run = run_scenario(candles, {9: LONG, 30: LONG}, port_wrapper=HoldAccountUpdates, risk=risk(take_profit_1_pct=5,
                       take_profit_2_pct=10), exits=exits(), execution={"position_wait_s": 5})
    first_fill = entry_fills(run)[0]
    sid = first_fill["coid"].split("-", 1)[1]
    stop = [r for r in algo_requests(run) if r.purpose is OrderPurpose.STOP_LOSS and r.client_algo_id.endswith(sid)][0]
    created = algo_state(run, stop.client_algo_id).created_ms
    # the wait runs out between candles; the backtest sees it at the next candle close
    assert first_fill["time"] + 5_000 <= created < first_fill["time"] + 5_000 + MIN
    first, second = run.engine.trades.closed
    assert first.exit_reason is ExitReason.STOP_LOSS
    # the flat report cleared the first plan: its take-profits did not linger to close the next position
    assert all(st.status is not AlgoStatus.NEW for caid, st in run.engine.orders.algos.items() if caid.endswith(sid))
    assert second.exit_reason is ExitReason.TAKE_PROFIT_2
    assert all(not f["coid"].endswith(sid) for f in exit_fills(run)[1:])
    assert exchange_position(run) == 0 and not run.sim.open_algo_orders({})


def test_a_stale_position_report_does_not_undo_a_newer_one():
    """A delayed or replayed ACCOUNT_UPDATE (flat, from before the entry) arrives after the entry's
    own report: applying it would make the engine believe the position closed, cancel its stop and
    let the next signal open a second position."""
    from engine.events import ExAccountUpdate, ExPositionState
    from engine.model import PositionSide

    seen = {}

    def between(run, candle):
        i = index(candle.open_time_ms)
        eng = run.engine
        if i == 11:
            stale = ExAccountUpdate(reason="ORDER", wallet_balance=None, balance_change=Decimal(0),
                                    positions=(ExPositionState("BTCUSDT", PositionSide.BOTH, Decimal(0), Decimal(0),
                                                               Decimal(0), Decimal(0), "isolated", Decimal(0)),),
                                    time_ms=close_ms(8))  # before the entry at candle 9
            eng.on_exchange_event(stale)
            tick(run, candle.close_time_ms + 1_000)
            seen["after_stale"] = (dict(eng.positions), len(resting_stops(run)), eng.stats.stale_updates)

    run = run_scenario(FALL, {9: LONG, 12: LONG}, between=between, risk=risk(), exits=exits())
    positions, stops, stale = seen["after_stale"]
    assert positions[("BTCUSDT", PositionSide.BOTH)].amount == Decimal("0.03")
    assert stops == 1 and stale == 1
    assert len(entry_fills(run)) == 1  # the signal at candle 12 was denied: a position is open
    assert one_trade(run).exit_reason is ExitReason.STOP_LOSS
    assert exchange_position(run) == 0 and not run.sim.open_algo_orders({})


# -- 9. retries with backoff --------------------------------------------------------------------


def test_transient_stop_failure_is_retried_with_the_same_id_after_the_backoff():
    ports = {}

    def wrap(port):
        ports["p"] = FailingPlacements(port, {OrderPurpose.STOP_LOSS}, times=2)
        return ports["p"]

    attempts = {}

    def between(run, candle):
        if index(candle.open_time_ms) == 9:  # entry filled, first stop placement failed
            t = candle.close_time_ms
            for dt in (499, 500, 1_499, 1_500):  # backoff 0.5 s, then doubled
                tick(run, t + dt)
                attempts[dt] = [c for c in ports["p"].calls if c[2].purpose is OrderPurpose.STOP_LOSS]
            attempts["resting"] = resting_stops(run)

    run = run_scenario(FALL, {9: LONG}, port_wrapper=wrap, between=between, risk=risk(), exits=exits(),
                       execution={"retry_attempts": 3, "retry_backoff_s": 0.5})
    t0 = close_ms(9)
    assert len(attempts[499]) == 1  # not before the backoff
    assert len(attempts[500]) == 2 and len(attempts[1_499]) == 2
    tries = attempts[1_500]
    assert [c[0] for c in tries] == [t0, t0 + 500, t0 + 1_500]
    assert len({c[1] for c in tries}) == 1  # the same client id each time: it cannot be placed twice
    caid = tries[0][1]
    assert [s["clientAlgoId"] for s in attempts["resting"]] == [caid]  # protected after the third try
    assert sim_algo(run, caid)["algoStatus"] == "FINISHED"  # and later it did its job
    t = one_trade(run)
    assert t.exit_reason is ExitReason.STOP_LOSS
    assert [f["coid"] for f in exit_fills(run)] == [caid]
    assert run.engine.stats.protection_failures == 0


def banned(retry_after_s: float):
    """``FailingPlacements(error=...)``: a 418 ban with this Retry-After (certainly not placed)."""
    return lambda: Banned(-1003, "Way too many requests; IP banned", 418, until_ms=0, retry_after_s=retry_after_s)


def test_a_ban_on_the_stop_is_waited_out_not_treated_as_a_rejection():
    """418: nothing can be sent until the ban ends. The stop goes out when it does (an emergency
    close could not be sent either); it is not a rejection that closes the position."""
    ports = {}

    def wrap(port):
        ports["p"] = FailingPlacements(port, {OrderPurpose.STOP_LOSS}, times=1,
                                       error=banned(retry_after_s=3))
        return ports["p"]

    run = run_scenario(FALL, {9: LONG}, port_wrapper=wrap, risk=risk(), exits=exits(),
                       execution={"retry_attempts": 3, "retry_backoff_s": 0.5})
    tries = [c for c in ports["p"].calls if c[2].purpose is OrderPurpose.STOP_LOSS]
    assert len(tries) == 2 and tries[0][1] == tries[1][1]
    assert tries[1][0] >= tries[0][0] + 3_000  # after the ban, not after the 0.5 s backoff
    assert run.engine.stats.protection_failures == 0
    assert one_trade(run).exit_reason is ExitReason.STOP_LOSS
    assert not [c for c in ports["p"].calls if c[2].purpose is OrderPurpose.EMERGENCY_CLOSE]


def test_a_close_is_resent_past_retry_attempts_until_it_goes_through():
    """A market close the engine decided on is resent (reduce-only, same client id) for as long as
    the exchange answers with overload or rate limits; retry_attempts bounds only other orders."""
    ports = {}

    def wrap(port):
        ports["p"] = FailingPlacements(port, {OrderPurpose.BREAK_EVEN_TIMEOUT}, times=6)  # -1001 overload
        return ports["p"]

    run = run_scenario(flat(40, 1.0), {9: LONG}, port_wrapper=wrap, risk=risk(),
                       exits=exits(break_even_trigger_pct=1, break_even_timeout_s=300),
                       execution={"retry_attempts": 2, "retry_backoff_s": 0.5})
    tries = [c for c in ports["p"].calls if c[2].purpose is OrderPurpose.BREAK_EVEN_TIMEOUT]
    assert len(tries) == 7 and len({c[1] for c in tries}) == 1
    assert all(b[0] - a[0] >= 500 for a, b in zip(tries, tries[1:]))  # backing off
    assert one_trade(run).exit_reason is ExitReason.BREAK_EVEN_TIMEOUT
    assert exchange_position(run) == 0


def test_a_refused_close_is_not_resent_once_its_stop_has_closed_the_position():
    """The break-even timeout's close is refused (a ban: certainly not placed) and waits to be
    resent; meanwhile the stop closes the position. The close is not sent to a flat position and
    is recorded EXPIRED, so nothing shows it waiting (a restart or the database would)."""
    ports = {}

    def wrap(port):
        ports["p"] = FailingPlacements(port, {OrderPurpose.BREAK_EVEN_TIMEOUT}, times=100,
                                       error=banned(retry_after_s=900))
        return ports["p"]

    candles = flat(15, 1.0) + path(1.0, 0.98, 0.96, 0.94, start=15) + flat(20, 0.94, start=19)
    run = run_scenario(candles, {9: LONG}, port_wrapper=wrap, risk=risk(),
                       exits=exits(break_even_trigger_pct=1, break_even_timeout_s=240),
                       execution={"retry_attempts": 2, "retry_backoff_s": 0.5})
    tries = [c for c in ports["p"].calls if c[2].purpose is OrderPurpose.BREAK_EVEN_TIMEOUT]
    assert len(tries) == 1, tries  # refused once; not resent after the stop closed the position
    st = run.engine.orders.orders[tries[0][1]]
    assert st.status is OrderStatus.EXPIRED and "already closed" in st.reject_reason
    assert one_trade(run).exit_reason is ExitReason.STOP_LOSS
    assert exchange_position(run) == 0


def close_of_an_earlier_plan_answered_late(error):
    """Plan A's break-even close is out when A's stop closes the position and plan B enters on the
    symbol; then ``error`` arrives as the answer to A's close. Returns the run, A's close's state
    and the commands the engine had queued right after that answer."""
    seen = {}
    candles = FALL + flat(10, 0.96, start=25)

    def between(run, candle):
        om = run.engine.orders
        i = index(candle.open_time_ms)
        if i == 12:
            [br] = om.brackets.values()
            seen["close"] = om.close_position(br.key, OrderPurpose.BREAK_EVEN_TIMEOUT)
            om.outbox.clear()  # the request is out; its answer comes much later
            br.closing = False  # (A's plan goes on until its stop)
        if i == 28:
            assert len(om.brackets) == 1 and exchange_position(run) > 0  # B is in
            om.on_order_rejected(seen["close"], error)
            seen["outbox"] = list(om.outbox)

    run = run_scenario(candles, {9: LONG, 26: LONG}, between=between, risk=risk(), exits=exits())
    return run, run.engine.orders.orders[seen["close"]], seen["outbox"]


def test_a_refused_close_of_an_earlier_plan_never_closes_the_next_position():
    """The answer to A's close is a refusal (a ban). Resent, it would close B's position: it is
    recorded EXPIRED instead and B keeps its position and its stop."""
    run, st, _ = close_of_an_earlier_plan_answered_late(banned(retry_after_s=1)())
    assert st.status is OrderStatus.EXPIRED, st
    assert len(entry_fills(run)) == 2 and exchange_position(run) > 0 and len(resting_stops(run)) == 1


def test_a_close_of_unknown_status_of_an_earlier_plan_is_resolved_by_id_not_resent():
    """As above, but A's close ends "status unknown" (a timeout): it may have executed, and a
    filled order's client id is free again on the exchange, so a resend would be a new order that
    closes B's position. It is held for resolution by client id instead."""
    from engine.exchange.errors import UnknownStatusError

    run, st, outbox = close_of_an_earlier_plan_answered_late(
        UnknownStatusError(-1007, "Timeout waiting for response", 408))
    assert st.unknown and st.status is OrderStatus.PENDING_NEW, st
    assert not any(getattr(c, "req", None) is not None and c.req.client_order_id == st.req.client_order_id
                   for c in outbox + [c for _, c in run.engine.orders._retries])
    assert len(entry_fills(run)) == 2 and exchange_position(run) > 0 and len(resting_stops(run)) == 1


def test_transient_close_failure_is_retried_reduce_only_with_the_same_id():
    ports = {}

    def wrap(port):
        ports["p"] = FailingPlacements(port, {OrderPurpose.BREAK_EVEN_TIMEOUT}, times=1)
        return ports["p"]

    run = run_scenario(flat(30, 1.0), {9: LONG}, port_wrapper=wrap, risk=risk(),
                       exits=exits(break_even_trigger_pct=1, break_even_timeout_s=300),
                       execution={"retry_attempts": 3, "retry_backoff_s": 0.5})
    tries = [c for c in ports["p"].calls if c[2].purpose is OrderPurpose.BREAK_EVEN_TIMEOUT]
    assert len(tries) == 2 and tries[0][1] == tries[1][1]
    assert tries[1][0] >= tries[0][0] + 500
    assert all(c[2].reduce_only and c[2].type is OrderType.MARKET for c in tries)
    t = one_trade(run)
    assert t.exit_reason is ExitReason.BREAK_EVEN_TIMEOUT
    assert [f["coid"] for f in exit_fills(run)] == [tries[0][1]]
    assert exchange_position(run) == 0 and not run.sim.open_algo_orders({})


def test_no_second_entry_while_a_filled_position_is_not_reported_yet():
    # the entry filled but the exchange has not reported the position: a new signal on the symbol
    # must not double it (the plan in flight counts as a pending entry)
    run = run_scenario(FALL, {9: LONG, 10: LONG}, port_wrapper=HoldAccountUpdates, risk=risk(), exits=exits(),
                       execution={"position_wait_s": 60})
    verdicts = [(s.signal.candle_open_time_ms, s.verdict.value, s.reason) for s in run.journal_batch.signals]
    assert [v for _, v, _ in verdicts] == ["accepted", "denied"]
    assert "entry already pending" in verdicts[1][2]
    assert len(entry_fills(run)) == 1


def test_a_rejected_replacement_stop_never_unprotects_a_position_whose_stop_rests():
    """-2021 for a stop replacement the bracket no longer tracks as pending (a reconciliation
    replaced the stop meanwhile, or a resend after an unknown status): the resting stop stays and
    nothing is closed. Without a resting stop the same rejection does close the position."""
    from engine.exchange.errors import ExchangeError

    seen = {}

    def between(run, candle):
        if index(candle.open_time_ms) != 12:
            return
        om = run.engine.orders
        [br] = om.brackets.values()
        old_stop = br.stop_client_id
        om._move_stop(br, br.entry_price, OrderPurpose.BREAK_EVEN_STOP)
        moved = br.pending_stop[0]
        om.outbox.clear()  # never sent
        br.pending_stop = None  # no longer tracked as the pending move
        om.on_algo_rejected(moved, ExchangeError(-2021, "Order would immediately trigger."))
        seen["failed"] = list(om.effects.protection_failed)
        seen["stop"] = (br.stop_client_id == old_stop, om.is_protected(br.key), bool(om.outbox))

    run = run_scenario(flat(20, 1.0), {9: LONG}, between=between, risk=risk(), exits=exits())
    assert seen["failed"] == [] and seen["stop"] == (True, True, False)
    assert run.engine.stats.protection_failures == 0


def test_a_rejection_for_an_earlier_plan_leaves_the_current_plan_alone():
    """A stop move of plan A is out when A's stop triggers and plan B enters on the same symbol;
    B's first stop fails (transient, a resend is due) and then A's move answers -2021. That is A's
    news: B is neither closed at market nor left marked closing without a stop (before: one or
    the other, depending on whether B's fill had been seen)."""
    from engine.exchange.errors import ExchangeError

    seen, ports = {}, {}
    candles = FALL + flat(10, 0.96, start=25)

    def wrap(port):
        ports["p"] = FailingPlacements(port, {OrderPurpose.STOP_LOSS}, times=0)
        return ports["p"]

    def between(run, candle):
        om = run.engine.orders
        i = index(candle.open_time_ms)
        if i == 12:
            [br] = om.brackets.values()
            om._move_stop(br, br.entry_price * Decimal("0.98"), OrderPurpose.BREAK_EVEN_STOP)
            seen["moved"] = br.pending_stop[0]
            om.outbox.clear()  # the request is out; its answer comes much later
        if i == 20:
            ports["p"].times = ports["p"].failed + 1  # B's first stop placement fails
        if i == 26:
            [br] = om.brackets.values()
            assert not om.is_protected(br.key) and ports["p"].failed == 1
            om.on_algo_rejected(seen["moved"], ExchangeError(-2021, "Order would immediately trigger."))
            seen["after"] = (list(om.effects.protection_failed), br.closing, list(om.outbox))

    run = run_scenario(candles, {9: LONG, 26: LONG}, port_wrapper=wrap, between=between, risk=risk(), exits=exits())
    failed, closing, outbox = seen["after"]
    assert failed == [] and not closing and outbox == []
    assert len(entry_fills(run)) == 2 and run.engine.stats.protection_failures == 0
    assert exchange_position(run) > 0 and len(resting_stops(run)) == 1  # B protected by its resent stop


def test_a_stop_of_unknown_status_is_asked_again_never_treated_as_rejected():
    """The stop's placement ended "status unknown" (it could not be looked up: a ban). Before,
    that counted as a rejection: the position was closed at market, though the stop may well
    rest. Now the same request goes again (same client id) and the plan goes on."""
    from engine.exchange.errors import UnknownStatusError

    ports = {}

    def wrap(port):
        ports["p"] = FailingPlacements(port, {OrderPurpose.STOP_LOSS}, times=1,
                                       error=lambda: UnknownStatusError(-1003, "status unknown and it cannot be "
                                                                        "queried now (IP banned)", 418))
        return ports["p"]

    run = run_scenario(FALL, {9: LONG}, port_wrapper=wrap, risk=risk(), exits=exits(),
                       execution={"retry_backoff_s": 1})
    stops = [(t, cid) for t, cid, req in ports["p"].calls if req.purpose is OrderPurpose.STOP_LOSS]
    assert len(stops) == 2 and stops[0][1] == stops[1][1]  # asked again, same client id
    assert run.engine.stats.protection_failures == 0
    assert one_trade(run).exit_reason is ExitReason.STOP_LOSS
    assert not [st for st in run.engine.orders.algos.values() if st.status is AlgoStatus.REJECTED]


def test_stopping_records_requests_waiting_for_a_resend_as_not_sent():
    """A graceful stop while a close waits for its resend: the order is recorded EXPIRED (not
    sent), never left PENDING_NEW in the database as if it were on its way."""
    ports, seen = {}, {}

    def wrap(port):
        ports["p"] = FailingPlacements(port, {OrderPurpose.BREAK_EVEN_TIMEOUT}, times=1000)
        return ports["p"]

    def between(run, candle):
        om = run.engine.orders
        if "n" not in seen and any(c.startswith("pdB") for c in om.orders):
            seen["n"] = om.abandon_unsent()
            seen["close"] = next(st for c, st in om.orders.items() if c.startswith("pdB"))
            seen["rows"] = [o for o in run.journal._batch.orders if o.client_order_id.startswith("pdB")]

    run_scenario(flat(30, 1.0), {9: LONG}, port_wrapper=wrap, between=between, risk=risk(),
                 exits=exits(break_even_trigger_pct=1, break_even_timeout_s=300),
                 execution={"retry_attempts": 2, "retry_backoff_s": 30})
    assert seen["n"] == 1
    assert seen["close"].status is OrderStatus.EXPIRED and "not sent" in seen["close"].reject_reason
    assert seen["rows"][-1].status is OrderStatus.EXPIRED
