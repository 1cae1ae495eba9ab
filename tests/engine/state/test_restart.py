"""A restart mid-trade continues the same plan; what happened while no process listened is
reconciled from the exchange (the sim), never guessed.

Each test runs crafted candles through the real backtest loop (sim matching engine + engine), then
"kills" the engine at a chosen candle — its in-memory state and every event not yet delivered are
lost; only what it had handed to the journal (the plans) survives — and starts a new engine on the
same exchange the way the live runtime does: bootstrap from the exchange, plan the startup with
:func:`plan_startup`, recover missed fills with :func:`fetch_missing_fills`, :meth:`Engine.restore`.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from decimal import Decimal

from engine.backtest import build_engine
from engine.config import Settings
from engine.core import pump
from engine.events import ExAlgoUpdate, ExOrderUpdate, SwitchStrategy
from engine.exchange.errors import ExchangeError, UnknownStatusError
from engine.exchange.sim.matching import SimApiError
from engine.model import AlgoStatus, Direction, ExitReason, OrderPurpose, OrderStatus, OrderType
from engine.restart import fetch_missing_fills, resolve_managed
from engine.state.reconcile import diff_running, plan_startup
from tests.engine.orders.scenario import MIN, close_ms, exchange_position, flat, path, resting_stops, run_scenario
from tests.engine.orders.scenario import Scripted

LONG = Direction.LONG
NO_EXITS = {"break_even_trigger_pct": 0, "break_even_trigger_r": 0, "break_even_timeout_s": 0, "trailing": "off"}
RISK = {"stop_loss_pct": 3, "take_profit_1_pct": 0, "take_profit_2_pct": 20, "funding_blackout_min": 0}


class SimAdapter:
    """The async adapter calls restart code makes, answered by the sim's REST-shaped methods."""

    def __init__(self, sim):
        self.sim = sim

    async def user_trades(self, symbol, start_ms=None):
        return self.sim.user_trades({"symbol": symbol, "startTime": start_ms})

    async def order_by_id(self, symbol, order_id):
        return self.sim.query_order({"symbol": symbol, "orderId": order_id})

    async def query_order(self, symbol, cid):
        return _as_exchange_error(self.sim.query_order, {"symbol": symbol, "origClientOrderId": cid})

    async def query_algo_order(self, cid):
        return _as_exchange_error(self.sim.query_algo_order, {"clientAlgoId": cid})


def _as_exchange_error(call, params):
    """The sim's API error as the adapter raises it (an ExchangeError with Binance's code)."""
    try:
        return call(params)
    except SimApiError as e:
        raise ExchangeError(e.code, e.msg, e.http_status) from None


def settings_for(**kw) -> Settings:
    d = dict(symbols=["BTCUSDT"], risk=RISK, exits=NO_EXITS)
    d.update(kw)
    return Settings(**d)


class Crash:
    """A ``between`` hook: after candle ``at`` the engine dies and a new one takes over.

    ``down`` candles pass with no engine at all (the exchange goes on: stops may trigger).
    ``before_restart(run)`` may tamper with the exchange (e.g. cancel the stop) first."""

    def __init__(self, settings, at: int, *, down: int = 0, before_restart=None, external="ignore",
                 unprotected="protect", record=None):
        self.settings, self.at, self.down = settings, at, down
        self.before_restart = before_restart
        self.external, self.unprotected = external, unprotected
        self.plans: list[dict] = []
        self.old = None
        self.notes = []
        self.seen = record if record is not None else {}

    def __call__(self, run, candle):
        i = (candle.open_time_ms - close_ms(0) - 1) // MIN + 1
        if i in self.seen:
            self.seen[i] = {"position": exchange_position(run), "stops": resting_stops(run)}
        if i == self.at:
            old = self.old = run.engine
            # what the journal held when it died: the plans of the last flush
            self.plans = [{"symbol": k[0], "position_side": k[1].value, "payload": p}
                          for k, p in old.plan_updates() if p is not None]
            run.port.drain_events()  # events in flight die with the process
            self.down_until = self.at + self.down
            if self.down == 0:
                self._restart(run)
            else:
                run.engine = _Dead(old)
        elif self.old is not None and isinstance(run.engine, _Dead) and i >= self.down_until:
            run.port.drain_events()
            self._restart(run)

    def _restart(self, run):
        if self.before_restart is not None:
            self.before_restart(run)
        new = build_engine(self.settings, run.engine.rules, run_id="second", namespace="scn")
        new.strategies["scripted"] = type(new.strategies["ema_trend"])(Scripted({}))
        new.handle(SwitchStrategy("scripted"))
        new._apply_switch()
        positions = run.port.positions()
        new.bootstrap(run.port.account(), positions)
        new.clock.advance(run.sim.now_ms)
        sp = plan_startup(positions=positions, open_orders=run.sim.open_orders({}),
                          open_algos=run.sim.open_algo_orders({}), plans=self.plans, entry_intents=[])
        recorded = {(f.symbol, f.trade_id) for f in _fills_of(self.old)}
        fills = asyncio.run(fetch_missing_fills(SimAdapter(run.sim), ["BTCUSDT"], run.sim.now_ms - 3_600_000,
                                                     recorded))
        self.notes = new.restore(sp, unprotected=self.unprotected, external=self.external, restart=1,
                                 recovered_fills=fills)
        run.engine = new
        pump(new, run.port)


class _Dead:
    """No engine: candles reach only the exchange."""

    def __init__(self, old):
        self.old = old
        self.rules = old.rules

    def on_candle(self, c):
        pass

    def take_commands(self):
        return []

    def has_commands(self):
        return False

    def on_exchange_event(self, ev):
        pass

    positions = {}

    def audit_protection(self):
        return 0


def _fills_of(engine) -> list:
    """The fills the dead engine had recorded (they were flushed with its plans)."""
    return [f for f in engine.journal._batch.fills] if engine.journal is not None else []


def run_with_crash(candles, at_signal, crash: Crash, **kw):
    s = crash.settings
    return run_scenario(candles, at_signal, between=crash, swappable=True, symbols=s.symbols,
                        risk=s.risk.model_dump(), exits=s.exits.model_dump(), **kw)


def test_break_even_timer_runs_on_after_a_restart_from_its_original_deadline():
    timeout_s = 630
    s = settings_for(exits={**NO_EXITS, "break_even_trigger_pct": 1, "break_even_timeout_s": timeout_s})
    crash = Crash(s, at=13)
    run = run_with_crash(flat(40, 1.0), {9: LONG}, crash)
    [br_old] = crash.old.orders.brackets.values()
    deadline = br_old.be_deadline_ms
    assert deadline is not None
    new = run.engine
    assert [n.kind for n in crash.notes if n.kind == "plan_restored"] == ["plan_restored"]
    [t] = new.trades.closed
    assert t.exit_reason is ExitReason.BREAK_EVEN_TIMEOUT
    assert t.entry_time_ms + timeout_s * 1000 == deadline  # the same timer, not a new one from the restart
    assert deadline <= t.exit_time_ms < deadline + MIN
    assert t.trade_id == crash.old.trades.open[("BTCUSDT", t.position_side)].trade_id  # one trade, continued
    assert t.entry_reason == "scripted LONG at candle 9"
    assert exchange_position(run) == 0 and not run.sim.open_algo_orders({})


def test_break_even_reached_before_the_crash_is_not_undone():
    s = settings_for(exits={**NO_EXITS, "break_even_trigger_pct": 1, "break_even_timeout_s": 300})
    candles = flat(10, 1.0) + path(1.0, 1.006, 1.012, start=10) + flat(30, 1.012, start=13)
    crash = Crash(s, at=16)
    run = run_with_crash(candles, {9: LONG}, crash)
    new = run.engine
    [br] = new.orders.brackets.values()
    assert br.be_reached and br.be_deadline_ms is None
    assert br.stop_purpose is OrderPurpose.BREAK_EVEN_STOP
    assert [a["clientAlgoId"] for a in resting_stops(run)] == [br.stop_client_id]  # taken over, not re-placed
    assert exchange_position(run) == Decimal("0.030") and new.trades.closed == []


def test_a_missing_stop_is_replaced_at_once_under_a_new_id():
    s = settings_for()

    def lose_stop(run):
        for a in resting_stops(run):
            run.sim.cancel_algo_order({"symbol": "BTCUSDT", "clientAlgoId": a["clientAlgoId"]})
        assert not resting_stops(run)

    seen = {14: None}
    crash = Crash(s, at=12, before_restart=lose_stop, record=seen)
    run = run_with_crash(flat(20, 1.0), {9: LONG}, crash)
    old_stop = crash.old.orders.brackets[next(iter(crash.old.orders.brackets))].stop_client_id
    stops = seen[14]["stops"]
    assert len(stops) == 1 and stops[0]["clientAlgoId"] != old_stop
    assert any(n.kind == "plan_note" and "no resting stop" in n.message for n in crash.notes)


def test_unprotected_close_policy_closes_instead():
    s = settings_for(reconcile={"unprotected": "close"})

    def lose_stop(run):
        for a in resting_stops(run):
            run.sim.cancel_algo_order({"symbol": "BTCUSDT", "clientAlgoId": a["clientAlgoId"]})

    crash = Crash(s, at=12, before_restart=lose_stop, unprotected="close")
    run = run_with_crash(flat(20, 1.0), {9: LONG}, crash)
    assert exchange_position(run) == 0 and not run.sim.open_algo_orders({})
    [t] = run.engine.trades.closed
    assert t.exit_reason is ExitReason.NO_PROTECTION


def test_partial_take_profit_progress_survives_and_tp2_closes_the_rest():
    s = settings_for(risk={**RISK, "take_profit_1_pct": 5, "take_profit_1_close_pct": 50, "take_profit_2_pct": 10})
    candles = (flat(10, 1.03) + path(1.03, 1.05, 1.07, 1.09, start=10) + flat(5, 1.09, start=14)
               + path(1.09, 1.11, 1.13, 1.14, start=19) + flat(3, 1.14, start=23))
    crash = Crash(s, at=16)  # after TP1 filled, before TP2
    run = run_with_crash(candles, {9: LONG}, crash)
    [br_old] = crash.old.orders.brackets.values()
    assert br_old.tp1_done
    new = run.engine
    tp1_sent_again = [st for st in new.orders.algos.values() if st.req.purpose is OrderPurpose.TAKE_PROFIT_1
                      and st.req.client_algo_id != br_old.tp1_client_id]
    assert tp1_sent_again == []
    [t] = new.trades.closed
    assert t.exit_reason is ExitReason.TAKE_PROFIT_2 and t.quantity == Decimal("0.029")
    fees = sum((Decimal(f["commission"]) for f in run.sim.all_fills()), Decimal(0))
    assert t.fees == fees  # entry, TP1 (before the crash) and TP2 (after): one trade, every fee
    assert exchange_position(run) == 0 and not run.sim.open_algo_orders({})


def test_a_stop_hit_while_down_closes_the_trade_from_the_recovered_fill():
    s = settings_for(risk={**RISK, "take_profit_2_pct": 20})
    # entry at candle 9, the engine dies at 11, price falls through the 3% stop at 14, restart at 18
    candles = flat(12, 1.0) + path(1.0, 0.99, 0.98, 0.96, start=12) + flat(10, 0.96, start=16)
    crash = Crash(s, at=11, down=7)
    run = run_with_crash(candles, {9: LONG}, crash)
    kinds = [n.kind for n in crash.notes]
    assert "plan_closed" in kinds and "fill_recovered" in kinds and "orphan_cancelled" in kinds
    [t] = run.engine.trades.closed
    assert t.exit_reason is ExitReason.STOP_LOSS and t.net_pnl < 0
    fees = sum((Decimal(f["commission"]) for f in run.sim.all_fills()), Decimal(0))
    assert t.fees == fees
    assert not run.sim.open_algo_orders({})  # the TP left behind was cancelled


def test_an_outside_position_is_left_alone_or_adopted_per_config():
    def outside(run):
        run.sim.new_order({"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.010",
                           "newClientOrderId": "manual-1", "timestamp": run.sim.now_ms})

    for policy in ("ignore", "adopt"):
        s = settings_for(reconcile={"external_positions": policy})
        crash = Crash(s, at=5, before_restart=outside, external=policy)
        run = run_with_crash(flat(12, 1.0), {9: LONG}, crash)
        new = run.engine
        key = ("BTCUSDT", next(iter(new.positions))[1])
        assert any(n.kind == "external_position" for n in crash.notes)
        if policy == "ignore":
            assert key in new.external_keys and not run.sim.open_algo_orders({})
            assert exchange_position(run) == Decimal("-0.010")  # our LONG signal at 9 was refused, not netted
        else:
            [stop] = resting_stops(run)
            assert stop["side"] == "BUY" and Decimal(stop["triggerPrice"]) > Decimal(100_000)


def test_timer_reconciliation_replaces_a_lost_stop_and_cancels_orphans():
    run = run_scenario(flat(12, 1.0), {9: LONG}, risk=RISK, exits=NO_EXITS)
    eng = run.engine
    [stop] = resting_stops(run)
    run.sim.cancel_algo_order({"symbol": "BTCUSDT", "clientAlgoId": stop["clientAlgoId"]})  # lost, unheard
    run.port.drain_events()
    orphan = {"symbol": "ETHUSDT", "clientAlgoId": "pdS0-0000000000000000000000", "positionSide": "BOTH",
              "orderType": "STOP_MARKET", "side": "SELL", "triggerPrice": "2000", "closePosition": True}
    positions = run.port.positions()
    diff = diff_running(engine_amounts={k: p.amount for k, p in eng.positions.items()},
                        believed_stops=eng.believed_stops(), managed=list(eng.orders.brackets), known_external=(),
                        positions=positions, open_algos=run.sim.open_algo_orders({}) + [orphan])
    assert [k for k, _ in diff.stops_lost] == [next(iter(eng.positions))]
    assert diff.cancel_algos == [("ETHUSDT", orphan["clientAlgoId"])]
    eng.apply_running_diff(diff, positions)
    cmds = eng.take_commands()
    placed = [c.req for c in cmds if hasattr(c, "req")]
    assert [(r.type, r.close_position) for r in placed] == [(OrderType.STOP_MARKET, True)]
    assert placed[0].client_algo_id != stop["clientAlgoId"]
    # the orphan (an earlier run's order) is taken on: the cancel's outcome is recorded by this run
    assert eng.orders.algos[orphan["clientAlgoId"]].status is AlgoStatus.NEW
    eng.orders.on_cancel_ok(orphan["clientAlgoId"], algo=True)
    assert eng.orders.algos[orphan["clientAlgoId"]].status is AlgoStatus.CANCELED


def test_a_position_report_older_than_the_reconciliation_snapshot_is_ignored():
    """The stream replays the entry's report after reconciliation found the position closed: the
    snapshot already reflects that report, so applying it would resurrect a closed position."""
    from engine.events import ExAccountUpdate, ExPositionState

    run = run_scenario(flat(12, 1.0), {9: LONG}, risk=RISK, exits=NO_EXITS)
    eng = run.engine
    [key] = list(eng.positions)
    entry_report_ms = eng.positions[key].update_time_ms
    amount = eng.positions[key].amount
    run.sim.new_order({"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": str(amount),
                       "reduceOnly": "true", "newClientOrderId": "manual-close", "timestamp": run.sim.now_ms})
    run.port.drain_events()  # its reports are lost
    as_of = run.sim.now_ms
    positions = [p for p in run.port.positions() if p.amount != 0]
    diff = diff_running(engine_amounts={k: p.amount for k, p in eng.positions.items()},
                        believed_stops=eng.believed_stops(), managed=list(eng.orders.brackets), known_external=(),
                        positions=positions, open_algos=run.sim.open_algo_orders({}))
    eng.apply_running_diff(diff, positions, as_of_ms=as_of, symbols=["BTCUSDT"])
    assert key not in eng.positions
    replayed = ExAccountUpdate(reason="ORDER", wallet_balance=None, balance_change=Decimal(0),
                               positions=(ExPositionState(key[0], key[1], amount, Decimal(1), Decimal(1), Decimal(0),
                                                          "isolated", Decimal(0)),),
                               time_ms=entry_report_ms)
    eng.on_exchange_event(replayed)
    assert key not in eng.positions and eng.stats.stale_updates == 1
    later = replace(replayed, time_ms=as_of + 1)  # a genuine new report is applied
    eng.on_exchange_event(later)
    assert eng.positions[key].amount == amount


def test_timer_reconciliation_acts_on_a_managed_position_with_no_stop_and_nothing_on_its_way():
    """The safety net: whatever left a managed position bare (a plan stuck closing with no close
    order, a dead stop nobody replaced), the next reconciliation closes or protects it; a stop
    that is merely on its way is left alone."""
    from engine.model import AlgoStatus as AS

    def bare(how):
        run = run_scenario(flat(12, 1.0), {9: LONG}, risk=RISK, exits=NO_EXITS)
        eng = run.engine
        [br] = eng.orders.brackets.values()
        [stop] = resting_stops(run)
        run.sim.cancel_algo_order({"symbol": "BTCUSDT", "clientAlgoId": stop["clientAlgoId"]})
        run.port.drain_events()
        st = eng.orders.algos[stop["clientAlgoId"]]
        if how == "closing":
            st.status, br.closing = AS.CANCELED, True
        elif how == "dead":
            st.status = AS.REJECTED
        else:  # a replacement on its way
            st.status = AS.CANCELED
            eng.orders._protect(br, br.entry_price)
            eng.take_commands()
        positions = [p for p in run.port.positions() if p.amount != 0]
        diff = diff_running(engine_amounts={k: p.amount for k, p in eng.positions.items()},
                            believed_stops=eng.believed_stops(), managed=list(eng.orders.brackets),
                            known_external=(), positions=positions, open_algos=run.sim.open_algo_orders({}))
        assert [k for k, _ in diff.unguarded] == [br.key] and diff.stops_lost == []
        eng.apply_running_diff(diff, positions)
        return eng, stop, [c.req for c in eng.take_commands() if hasattr(c, "req")]

    eng, _stop, sent = bare("closing")
    [close] = sent
    assert close.purpose is OrderPurpose.EMERGENCY_CLOSE and close.reduce_only and close.quantity == Decimal("0.03")
    eng, stop, sent = bare("dead")
    [new] = sent
    assert new.type is OrderType.STOP_MARKET and new.close_position and new.client_algo_id != stop["clientAlgoId"]
    assert new.trigger_price == Decimal(stop["triggerPrice"])
    eng, _stop, sent = bare("on its way")
    assert sent == []


class DropOrderEvents:
    """Port wrapper: ORDER_TRADE_UPDATE and ALGO_UPDATE events of client ids with one of the
    given prefixes never arrive (a dropped user stream)."""

    def __init__(self, port, prefixes):
        self.port, self.prefixes, self.dropped = port, tuple(prefixes), []

    def drain_events(self):
        out = []
        for ev in self.port.drain_events():
            cid = getattr(ev, "client_order_id", None) or getattr(ev, "client_algo_id", None)
            if isinstance(ev, (ExOrderUpdate, ExAlgoUpdate)) and cid and cid.startswith(self.prefixes):
                self.dropped.append(ev)
                continue
            out.append(ev)
        return out

    def __getattr__(self, name):
        return getattr(self.port, name)


def test_lost_order_updates_are_resolved_by_asking_the_exchange():
    """The break-even timeout's market close filled, but none of its updates arrived: the engine
    believes it still open, and would never send another close under that purpose. The
    reconciliation asks the exchange by client id and applies what the stream should have said.
    The take-profit it cancelled is known CANCELED from the cancel's answer alone."""
    ports = {}

    def wrap(port):
        ports["p"] = DropOrderEvents(port, ("pdB", "pdT"))
        return ports["p"]

    run = run_scenario(flat(30, 1.0), {9: Direction.LONG}, port_wrapper=wrap, risk=RISK,
                       exits={**NO_EXITS, "break_even_trigger_pct": 1, "break_even_timeout_s": 300})
    om = run.engine.orders
    assert ports["p"].dropped and exchange_position(run) == 0
    assert [c for c, st in om.orders.items() if st.status.is_open and c.startswith("pdB")]
    assert all(st.status is AlgoStatus.CANCELED for c, st in om.algos.items() if c.startswith("pdT"))

    # the exchange's clock stood still since the close was acknowledged (a replay at its end): the
    # lookup does not wait for time to pass
    for c, st in om.orders.items():
        if c.startswith("pdB"):
            st.updated_ms = run.engine.clock.now_ms()
    adapter = SimAdapter(run.sim)
    notes = asyncio.run(resolve_managed(run.engine, adapter, open_orders=run.sim.open_orders({}),
                                        open_algos=run.sim.open_algo_orders({})))
    assert {n.kind for n in notes} == {"order_resolved"}
    assert not [c for c, st in om.orders.items() if st.status.is_open]
    close = next(st for c, st in om.orders.items() if c.startswith("pdB"))
    assert close.status is OrderStatus.FILLED and close.filled_qty == Decimal("0.030")
    assert asyncio.run(resolve_managed(run.engine, adapter, open_orders=[], open_algos=[])) == []


class UnknownEntries:
    """Port wrapper: every entry ends "status unknown" (the client could not learn whether the
    exchange has it); ``applied`` says whether the exchange in fact took it."""

    def __init__(self, port, applied: bool):
        self.port, self.applied, self.sent = port, applied, []

    def place_order(self, req):
        if req.purpose is not OrderPurpose.ENTRY:
            return self.port.place_order(req)
        self.sent.append(req.client_order_id)
        if self.applied:
            self.port.place_order(req)
        raise UnknownStatusError(0, f"order {req.client_order_id}: could not learn whether it exists", 0)

    def __getattr__(self, name):
        return getattr(self.port, name)


def test_an_entry_of_unknown_status_is_resolved_by_client_id_never_resent():
    """An entry whose status stayed unknown is neither resent nor forgotten: the symbol takes no
    other entry until reconciliation asks by client id. Placed and filled: the position got its
    stop from the exchange's position report already (the entry's own updates never came), and
    the plan goes on with it. Never placed: the plan is dropped and the symbol trades again."""
    for applied in (True, False):
        ports = {}

        def wrap(port, applied=applied):
            ports["u"] = UnknownEntries(DropOrderEvents(port, ("pdE",)), applied)
            return ports["u"]

        run = run_scenario(flat(14, 1.0), {9: Direction.LONG, 11: Direction.LONG}, port_wrapper=wrap, risk=RISK,
                           exits=NO_EXITS)
        eng, om = run.engine, run.engine.orders
        [first] = ports["u"].sent  # the signal at 11 was refused: an entry is pending on the symbol
        assert om.orders[first].status is OrderStatus.PENDING_NEW and om.orders[first].unknown
        verdicts = [s.reason for s in run.journal_batch.signals]
        assert ("position already open" if applied else "entry already pending") in verdicts[1]
        assert exchange_position(run) == (Decimal("0.030") if applied else 0)
        notes = asyncio.run(resolve_managed(eng, SimAdapter(run.sim), open_orders=run.sim.open_orders({}),
                                            open_algos=run.sim.open_algo_orders({})))
        assert [n.kind for n in notes] == ["order_resolved"]
        assert not om.orders[first].unknown
        cmds = eng.take_commands()
        if applied:
            assert om.orders[first].status is OrderStatus.FILLED
            [stop] = resting_stops(run)
            assert stop["clientAlgoId"] == om.brackets[("BTCUSDT", om.orders[first].req.position_side)].stop_client_id
            assert not [c for c in cmds if getattr(getattr(c, "req", None), "type", None) is OrderType.STOP_MARKET]
        else:
            assert om.orders[first].status is OrderStatus.REJECTED
            assert not om.brackets and not om.pending_entries and cmds == []
        assert ports["u"].sent == [first]  # never sent a second time


def test_a_take_profit_whose_updates_were_lost_is_resolved_as_finished():
    """The take-profit triggered and filled; its updates never arrived (the position report did).
    The engine believes it resting; the reconciliation learns it FINISHED."""
    ports = {}

    def wrap(port):
        ports["p"] = DropOrderEvents(port, ("pdT",))
        return ports["p"]

    run = run_scenario(flat(10, 1.0) + path(1.0, 1.01, 1.02, 1.03, 1.04, start=10) + flat(5, 1.04, start=15),
                       {9: Direction.LONG}, port_wrapper=wrap, risk={**RISK, "take_profit_2_pct": 2},
                       exits=NO_EXITS)
    om = run.engine.orders
    assert exchange_position(run) == 0
    believed = [c for c, st in om.algos.items() if st.status.is_open and c.startswith("pdT")]
    assert believed
    notes = asyncio.run(resolve_managed(run.engine, SimAdapter(run.sim), open_orders=run.sim.open_orders({}),
                                        open_algos=run.sim.open_algo_orders({})))
    assert {n.kind for n in notes} == {"algo_resolved"}
    assert om.algos[believed[0]].status is AlgoStatus.FINISHED
