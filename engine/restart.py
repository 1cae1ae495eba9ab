"""Restart and timer reconciliation against a real (or local) exchange: the I/O around the pure
decisions of :mod:`engine.state.reconcile`.

At startup, before any stream is opened: unfinished intents are resolved by asking the exchange
(never by resending), the fills made while no process was listening are fetched and recorded
exactly once, the stored plans are continued, positions without a plan are protected (ours) or
treated per config (outside ones), and orphaned orders are cancelled. Every correction is a
``reconcile.<kind>`` event in the journal.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
from decimal import Decimal, InvalidOperation
from collections.abc import Set as AbstractSet
from typing import Any, Awaitable, Callable, Iterable

from engine.exchange.binance.parse import parse_user_trade
from engine.exchange.binance.rest import QUICK_READ_TIMEOUT_S, gather_or_cancel, quick_read
from engine.exchange.errors import ExchangeError
from engine.model import (
    AlgoStatus,
    Fill,
    MarginType,
    OrderPurpose,
    OrderStatus,
    OrderType,
    Position,
    PositionMode,
)
from engine.orders.ids import role_of
from engine.orders.manager import ROLE_PURPOSE
from engine.state.reconcile import Correction, missing_fills, plan_startup

log = logging.getLogger("engine.restart")

_UNKNOWN = (-2013, -2011, -2026)
"""Order does not exist / unknown order sent / order was canceled or expired (not found)."""

FILL_LOOKBACK_MS = 60_000
"""Fills are fetched from a minute before the point up to which all are known (clock and ordering slack)."""
FILL_MARK_SLACK_MS = 5_000
"""A fetch up to exchange time T marks fills complete up to T minus this (a fill stamped just
before T may not be listed yet)."""


async def exchange_now_ms(adapter) -> int:
    """The exchange's clock now (0 when it cannot be read: callers take the larger of it and the
    engine's clock). Fill fetches end there: a local replay's clock is not the request clock."""
    try:
        return int(await adapter.exchange_time_ms())
    except (ExchangeError, AttributeError, TypeError, ValueError) as exc:
        log.warning("could not read the exchange clock (%s); using the engine's", exc)
        return int(getattr(adapter, "info_time_ms", 0) or 0)


async def fill_window_start(store, account: str, intents: list[dict]) -> int | None:
    """Exchange ms from which a starting run fetches the account's fills: a minute before the
    point up to which every fill is known to be recorded (written by the last fetch of any run,
    at startup or by a reconciliation round). Without that mark (a database from before it), a
    minute before the newest recorded fill, or before the first stored intent; None when the
    account has never traded here."""
    mark = await store.fills_complete_ms(account)
    if mark is not None:
        return mark - FILL_LOOKBACK_MS
    last = await store.last_fill_ms(account)
    if last is not None:
        return last - FILL_LOOKBACK_MS
    starts = [i["created_ms"] for i in intents]
    return min(starts) - FILL_LOOKBACK_MS if starts else None


def account_key(endpoints, credentials) -> str:
    """A stable name for the exchange account: its endpoint and a fingerprint of the API key
    (never the key itself). Runs on the same account share plans, intents and client ids."""
    digest = hashlib.blake2b(f"{endpoints.rest_url}|{credentials.api_key}".encode(), digest_size=8).hexdigest()
    return f"{endpoints.name}-{digest}"


def _plan_purposes(plans: Iterable[dict]) -> dict[str, OrderPurpose]:
    """Client id -> purpose for every order a stored plan names (a break-even stop keeps its kind)."""
    out: dict[str, OrderPurpose] = {}
    for r in plans:
        b = r["payload"].get("bracket", {})
        if b.get("stop_client_id"):
            out[b["stop_client_id"]] = OrderPurpose(b.get("stop_purpose", "stop_loss"))
        ps = b.get("pending_stop")
        if ps:
            out[ps[0]] = OrderPurpose(ps[2])
        for k, p in (("take_profit_client_id", OrderPurpose.TAKE_PROFIT), ("tp1_client_id", OrderPurpose.TAKE_PROFIT_1),
                     ("trail_client_id", OrderPurpose.TRAILING_STOP)):
            if b.get(k):
                out[b[k]] = p
        for c in b.get("entry_ids", []):
            out[c] = OrderPurpose.ENTRY
    return out


async def fetch_missing_fills(adapter, symbols: Iterable[str], since_ms: int,
                              recorded: AbstractSet[tuple[str, int]],
                              known: dict[str, OrderPurpose] | None = None,
                              until_ms: int | None = None) -> list[tuple[Fill, OrderPurpose]]:
    """Fills on the exchange since ``since_ms`` that are not in ``recorded``, oldest first, each
    with its order's client id and purpose (looked up by order id: a userTrades row names neither)."""
    known = known or {}

    async def one(sym: str) -> list[tuple[Fill, OrderPurpose]]:
        got: list[tuple[Fill, OrderPurpose]] = []
        orders: dict[int, tuple[str, OrderType]] = {}
        rows = await (adapter.user_trades(sym, since_ms, until_ms) if until_ms is not None
                      else adapter.user_trades(sym, since_ms))
        for row in missing_fills(rows, recorded):
            oid = int(row["orderId"])
            if oid not in orders:
                try:
                    o = await adapter.order_by_id(sym, oid)
                    otype = o.get("origType") or o.get("type") or "MARKET"
                    orders[oid] = (str(o.get("clientOrderId", "")), OrderType(otype))
                except (ExchangeError, ValueError) as exc:
                    log.warning("fill %s of order %s on %s: order lookup failed (%s)", row.get("id"), oid, sym, exc)
                    orders[oid] = ("", OrderType.MARKET)
            coid, otype = orders[oid]
            purpose = known.get(coid) or ROLE_PURPOSE.get(role_of(coid) or "", OrderPurpose.EXTERNAL)
            got.append((parse_user_trade(row, coid, otype), purpose))
        return got

    # every symbol at once (pages of one symbol in order)
    out = [fp for part in await asyncio.gather(*(one(s) for s in sorted(set(symbols)))) for fp in part]
    out.sort(key=lambda fp: (fp[0].time_ms, fp[0].symbol, fp[0].trade_id))
    return out


INTENT_QUERY_TIMEOUT_S = 1.0
"""How long startup waits for one intent's status: a hung query must not hold back the
protection of the positions found (the intent stays pending and is asked again next time)."""
ROW_QUERY_TIMEOUT_S = 1.0
"""The same for the status queries of a reconciliation round: no answer, the next round asks again."""


async def resolve_intents(adapter, store, account: str, now_ms: int,
                          timeout_s: float = INTENT_QUERY_TIMEOUT_S) -> list[Correction]:
    """Intents stored but never answered (the process died while sending): ask the exchange by
    client id, all at once, each for at most ``timeout_s``. Found: ``resolved`` (its fills and
    position are reconciled like any other); not found: ``missing`` — it never arrived, and it is
    NOT sent again; no answer: left ``pending`` for the next start."""
    pending = await store.intents(account, ("pending",))

    async def ask(it: dict) -> str | None:
        cid, sym = it["client_id"], it["symbol"]

        def query() -> Awaitable[Any]:
            return adapter.query_algo_order(cid) if it["kind"] == "algo" else adapter.query_order(sym, cid)

        try:  # hedged: a query lost on the way costs half the timeout, not all of it
            hedge_s = min(QUICK_READ_TIMEOUT_S, timeout_s / 2)
            await asyncio.wait_for(quick_read(query, f"intent {cid}", timeout_s=hedge_s), timeout=timeout_s)
            return "resolved"
        except asyncio.TimeoutError:
            log.warning("intent %s: the exchange did not answer within %.1f s; left pending", cid, timeout_s)
            return None
        except ExchangeError as exc:
            if exc.code not in _UNKNOWN:  # a transient error: leave it for the next start
                log.warning("intent %s: could not ask the exchange (%s); left pending", cid, exc)
                return None
            return "missing"

    notes: list[Correction] = []
    for it, state in zip(pending, await asyncio.gather(*(ask(it) for it in pending))):
        if state is None:
            continue
        cid, sym = it["client_id"], it["symbol"]
        await store.set_intent_state(account, cid, state, now_ms)
        what = "reached the exchange" if state == "resolved" else "never reached the exchange; not resent"
        notes.append(Correction(f"intent_{state}", sym, f"{sym}: {it['role']} {cid} {what}", {"client_id": cid}))
    return notes


@dataclasses.dataclass
class StartupReads:
    """What a start reads from the exchange before it decides anything, read at once."""

    mode_notes: list[str]
    positions: list[Position]
    account: Any
    open_orders: list[dict]
    open_algos: list[dict]
    intent_notes: list[Correction]


async def read_startup(adapter, store, *, account: str | None, position_mode: Any, clock: asyncio.Future,
                       retry: Callable[[Callable[[], Awaitable[Any]], str], Awaitable[Any]]) -> StartupReads:
    """The signed startup reads, all sent the moment ``clock`` (the clock sync) is done, beside the
    exchangeInfo: position mode (checked before any order), positions, balances, open orders, open
    algo orders and the stored intents never answered (``account``: None for a self-contained sim
    run, which keeps none). Each read is hedged (:func:`quick_read`: a copy goes beside one left
    unanswered) and run by ``retry`` until the exchange answers: a bare position's stop waits for
    the slowest of them only, once."""
    await asyncio.shield(clock)

    def read(call: Callable[[], Awaitable[Any]], what: str) -> Awaitable[Any]:
        return retry(lambda: quick_read(call, what), what)

    async def intents() -> list[Correction]:
        if account is None:
            return []
        return await retry(lambda: resolve_intents(adapter, store, account, adapter.rest.server_now_ms()),
                           "stored intents")

    mode_notes, positions, acct, open_orders, open_algos, notes = await gather_or_cancel(
        read(lambda: adapter.configure_position_mode(position_mode), "position mode"),
        read(adapter.positions, "positions"), read(adapter.account, "account"),
        read(adapter.open_orders, "open orders"), read(adapter.open_algo_orders, "open algo orders"),
        intents())
    return StartupReads(list(mode_notes), list(positions), acct, list(open_orders), list(open_algos), notes)


async def reconcile_at_startup(engine, adapter, store, *, account: str, run_id: str, settings,
                               reads: StartupReads, kick: Callable[[], None] | None = None,
                               retry: Callable[[Callable[[], Awaitable[Any]], str], Awaitable[Any]] | None = None,
                               ) -> list[Correction]:
    """Bring a starting engine (already bootstrapped with ``reads.positions``) to the exchange's truth.

    With ``kick`` (the runtime's dispatch), the protection decided from positions, plans and open
    orders goes out *before* the fills missed while down are fetched (a few requests more on a slow
    exchange); they are applied to their trades right after. ``retry(call, what)`` runs each of
    those later reads until the exchange answers."""
    positions, open_orders, open_algos, notes = reads.positions, reads.open_orders, reads.open_algos, \
        list(reads.intent_notes)
    plans = await store.plans(account)
    intents = await store.intents(account)
    entry_intents = [i for i in intents if i["role"] == "entry"]
    sp = plan_startup(positions=positions, open_orders=open_orders, open_algos=open_algos, plans=plans,
                      entry_intents=entry_intents, hedge=engine.params.position_mode is PositionMode.HEDGE)
    sp.corrections[:0] = notes
    await store.take_open_trades(account, run_id)
    since = await fill_window_start(store, account, intents)
    recorded = await store.account_fill_keys(account, since) if since is not None else set()
    engine.remember_fills(recorded)
    restart = await store.run_count(account)

    async def missing() -> tuple[int, list[tuple[Fill, OrderPurpose]]]:
        # exchange time now: the server's clock live; a local replay's clock is its exchangeInfo's
        # serverTime (its /time answers wall time, for request signing)
        fetched_to = max(engine.clock.now_ms(), await exchange_now_ms(adapter))
        if since is None or since >= fetched_to:
            return fetched_to, []
        symbols = set(settings.symbols) | {p.symbol for p in positions} | {r["symbol"] for r in plans}
        return fetched_to, await fetch_missing_fills(adapter, symbols, since, recorded, _plan_purposes(plans),
                                                     until_ms=fetched_to + FILL_MARK_SLACK_MS)

    def finish(fetched_to: int) -> None:
        if engine.journal is not None:  # written with the recovered fills, in one transaction
            engine.journal.fills_complete(account, fetched_to - FILL_MARK_SLACK_MS, fetched_to)
        engine.fill_window_start_ms = since if since is not None else fetched_to - FILL_LOOKBACK_MS

    opts = dict(unprotected=settings.reconcile.unprotected, external=settings.reconcile.external_positions,
                restart=max(1, restart))
    if kick is None:
        fetched_to, recovered = await missing()
        finish(fetched_to)
        notes = engine.restore(sp, recovered_fills=recovered, **opts)
    else:
        notes = engine.restore(sp, recovered_fills=None, **opts)
        kick()  # protection first
        fetched_to, recovered = await (retry(missing, "missed fills") if retry is not None else missing())
        finish(fetched_to)
        notes += engine.apply_recovered_fills(sp, recovered)
    # The rows of earlier runs are brought to the exchange's truth by the round that runs once the
    # user stream is connected (sync_rows): their queries must not hold back the protection decided here.
    return notes


def _dec(v: Any, default: Decimal) -> Decimal:
    try:
        return Decimal(str(v)) if v not in (None, "") else default
    except InvalidOperation:
        return default


async def sync_rows(engine, adapter, store, account: str, *, open_orders: list[dict] | None = None,
                    open_algos: list[dict] | None = None, positions: list[Position] | None = None,
                    skip_symbols: AbstractSet[str] = frozenset(), left: list[str] | None = None) -> list[Correction]:
    """Bring the database's newest rows of ``account`` to the exchange's truth, for everything the
    running engine does not manage itself, and write the result as rows of the current run.

    * An order or algo order whose newest row is open (often ``PENDING_NEW``: a run was killed
      while sending it, or it finished while no process listened) but that is not open on the
      exchange gets its final state as the exchange reports it by client id. An order the
      exchange has never heard of is ``EXPIRED`` with the reason "not found on the exchange".
    * A position whose newest row differs from the exchange's gets a row with the exchange's
      position (a zero row once it is flat).

    Called by every reconciliation round (the first runs once the user stream is connected, right
    after startup); a transient error or a query unanswered within a second leaves a row for
    the next round (its id is added to ``left``: the caller asks again soon).
    """
    left = left if left is not None else []
    om = engine.orders
    now = engine.clock.now_ms()
    if open_orders is None:
        open_orders = await adapter.open_orders()
    if open_algos is None:
        open_algos = await adapter.open_algo_orders()
    if positions is None:
        positions = await adapter.positions()
    ex_orders = {str(o.get("clientOrderId")) for o in open_orders}
    ex_algos = {str(a.get("clientAlgoId")) for a in open_algos}
    rows_o, rows_a, rows_p = await store.latest_rows(account)
    if skip_symbols:  # a request in flight on these: the next round looks again
        rows_o = [o for o in rows_o if o.symbol not in skip_symbols]
        rows_a = [a for a in rows_a if a.symbol not in skip_symbols]
        rows_p = [(r, p) for r, p in rows_p if p.symbol not in skip_symbols]
        positions = [p for p in positions if p.symbol not in skip_symbols]
    notes: list[Correction] = []
    for o in rows_o:
        cid = o.client_order_id
        if not o.status.is_open or cid in ex_orders or (cid in om.orders and om.orders[cid].status.is_open):
            continue
        try:
            row = await asyncio.wait_for(adapter.query_order(o.symbol, cid), ROW_QUERY_TIMEOUT_S)
            status = OrderStatus(str(row.get("status")))
            fixed = dataclasses.replace(
                o, status=status, exchange_order_id=int(row.get("orderId") or 0) or o.exchange_order_id,
                filled_qty=_dec(row.get("executedQty"), o.filled_qty), avg_price=_dec(row.get("avgPrice"), o.avg_price),
                updated_ms=max(now, o.updated_ms))
        except ExchangeError as exc:
            if exc.code not in _UNKNOWN:
                left.append(cid)
                continue
            fixed = dataclasses.replace(o, status=OrderStatus.EXPIRED, updated_ms=max(now, o.updated_ms),
                                        reject_reason="not found on the exchange (reconciliation)")
        except (ValueError, TypeError, asyncio.TimeoutError):
            left.append(cid)
            continue
        if fixed.status.is_open:  # opened between the two reads: the next round sees it
            left.append(cid)
            continue
        engine.journal.order(fixed)
        notes.append(Correction("order_row_closed", o.symbol,
                                f"{o.symbol}: order {cid} recorded {o.status.value}, exchange {fixed.status.value}",
                                {"client_id": cid, "was": o.status.value, "now": fixed.status.value}))
    for a in rows_a:
        cid = a.client_algo_id
        if not a.status.is_open or cid in ex_algos or (cid in om.algos and om.algos[cid].status.is_open):
            continue
        try:
            row = await asyncio.wait_for(adapter.query_algo_order(cid), ROW_QUERY_TIMEOUT_S)
            fixed = dataclasses.replace(a, status=AlgoStatus(str(row.get("algoStatus"))),
                                        updated_ms=max(now, a.updated_ms))
        except ExchangeError as exc:
            if exc.code not in _UNKNOWN:
                left.append(cid)
                continue
            fixed = dataclasses.replace(a, status=AlgoStatus.EXPIRED, updated_ms=max(now, a.updated_ms),
                                        reject_reason="not found on the exchange (reconciliation)")
        except (ValueError, TypeError, asyncio.TimeoutError):
            left.append(cid)
            continue
        if fixed.status.is_open:
            left.append(cid)
            continue
        engine.journal.algo_order(fixed)
        notes.append(Correction("algo_row_closed", a.symbol,
                                f"{a.symbol}: algo order {cid} recorded {a.status.value}, exchange {fixed.status.value}",
                                {"client_id": cid, "was": a.status.value, "now": fixed.status.value}))
    ex_pos = {(p.symbol, p.position_side): p for p in positions if p.amount != 0}
    db_pos = {(p.symbol, p.position_side): p for _run, p in rows_p}
    for key in sorted(set(ex_pos) | {k for k, p in db_pos.items() if p.amount != 0}, key=lambda k: (k[0], k[1].value)):
        theirs = ex_pos.get(key)
        mine = db_pos.get(key)
        amount = theirs.amount if theirs is not None else Decimal(0)
        if mine is not None and mine.amount == amount:
            continue
        believed = engine.positions.get(key)
        if (believed.amount if believed is not None else Decimal(0)) != amount:
            left.append(f"{key[0]} {key[1].value}")
            continue  # the engine does not agree yet (events in flight): the next round writes it
        row = believed if believed is not None else Position(
            key[0], key[1], Decimal(0), Decimal(0), Decimal(0), Decimal(0),
            mine.margin_type if mine is not None else MarginType.CROSSED, Decimal(0), now)
        engine.journal.position(row)
        notes.append(Correction("position_row", key[0],
                                f"{key[0]} {key[1].value}: recorded {mine.amount if mine else 0}, exchange {amount}",
                                {"position_side": key[1].value, "amount": str(amount)}))
    if notes:
        engine._record_corrections(notes)
    return notes


async def resolve_managed(engine, adapter, *, open_orders: list[dict], open_algos: list[dict],
                          min_age_ms: int = 0, skip_symbols: AbstractSet[str] = frozenset(),
                          left: list[str] | None = None) -> list[Correction]:
    """Orders the engine still believes open (acknowledged; at least ``min_age_ms`` old by the
    exchange's clock, which a replay may hold still, so by default any age) that the exchange no
    longer lists as open: their events were lost (a dropped user stream, an expired
    listenKey). Ask the exchange by client id and apply the final status as the order update the
    stream should have brought (fills are recovered separately, from ``userTrades``). A close the
    engine believes in flight forever would otherwise block the next close."""
    from engine.events import ExAlgoUpdate, ExOrderUpdate

    om = engine.orders
    now = engine.clock.now_ms()
    ex_orders = {str(o.get("clientOrderId")) for o in open_orders}
    ex_algos = {str(a.get("clientAlgoId")) for a in open_algos}
    left = left if left is not None else []
    notes: list[Correction] = await _resolve_unknown(engine, adapter, skip_symbols, left)
    stale_orders = [(cid, st) for cid, st in om.orders.items()
                    if st.status in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED) and cid not in ex_orders
                    and st.updated_ms <= now - min_age_ms and st.req.symbol not in skip_symbols]
    for cid, st in stale_orders:
        try:
            row = await asyncio.wait_for(adapter.query_order(st.req.symbol, cid), ROW_QUERY_TIMEOUT_S)
            status = OrderStatus(str(row.get("status")))
        except (ExchangeError, ValueError, asyncio.TimeoutError):
            left.append(cid)
            continue
        if status.is_open or not om.orders[cid].status.is_open:
            continue
        r = st.req
        engine.on_exchange_event(ExOrderUpdate(
            symbol=r.symbol, client_order_id=cid, exchange_order_id=int(row.get("orderId") or st.exchange_order_id or 0),
            side=r.side, type=r.type, orig_type=r.type, status=status, exec_type="RECONCILED",
            quantity=r.quantity, filled_qty=_dec(row.get("executedQty"), st.filled_qty),
            avg_price=_dec(row.get("avgPrice"), st.avg_price), position_side=r.position_side,
            reduce_only=r.reduce_only, close_position=False, time_ms=now))
        notes.append(Correction("order_resolved", r.symbol, f"{r.symbol}: order {cid} believed {st.status.value}; "
                                f"the exchange says {status.value} (its update was lost)", {"client_id": cid}))
    final_algo = (AlgoStatus.FINISHED, AlgoStatus.CANCELED, AlgoStatus.EXPIRED, AlgoStatus.REJECTED)
    stale_algos = [(cid, st) for cid, st in om.algos.items()
                   if st.status is AlgoStatus.NEW and cid not in ex_algos and st.updated_ms <= now - min_age_ms
                   and st.req.symbol not in skip_symbols]
    for cid, st in stale_algos:
        try:
            row = await asyncio.wait_for(adapter.query_algo_order(cid), ROW_QUERY_TIMEOUT_S)
            status = AlgoStatus(str(row.get("algoStatus")))
        except (ExchangeError, ValueError, asyncio.TimeoutError):
            left.append(cid)
            continue
        if status not in final_algo or not om.algos[cid].status.is_open:
            continue
        r = st.req
        actual = str(row.get("actualOrderId") or "")
        engine.on_exchange_event(ExAlgoUpdate(
            symbol=r.symbol, client_algo_id=cid, algo_id=int(row.get("algoId") or st.algo_id or 0), type=r.type,
            side=r.side, position_side=r.position_side, status=status, trigger_price=r.trigger_price,
            actual_order_id=int(actual) if actual.isdigit() and int(actual) else None,
            close_position=r.close_position, time_ms=now))
        notes.append(Correction("algo_resolved", r.symbol, f"{r.symbol}: algo order {cid} believed NEW; "
                                f"the exchange says {status.value} (its update was lost)", {"client_id": cid}))
    if notes:
        engine._record_corrections(notes)
    return notes


async def _resolve_unknown(engine, adapter, skip_symbols: AbstractSet[str], left: list[str]) -> list[Correction]:
    """Orders whose placement ended "status unknown" (sent; it could not be learnt whether the
    exchange has them): ask by client id. Found: the engine gets its acknowledgement and status as
    the stream would have brought them. Not there: it never arrived, and is not sent again."""
    from engine.events import ExOrderUpdate
    from engine.orders.manager import SubmitOrder

    om = engine.orders
    notes: list[Correction] = []
    for cid, st in [(c, st) for c, st in om.orders.items()
                    if st.unknown and st.status is OrderStatus.PENDING_NEW and st.req.symbol not in skip_symbols]:
        r = st.req
        try:
            row = await asyncio.wait_for(adapter.query_order(r.symbol, cid), ROW_QUERY_TIMEOUT_S)
            status = OrderStatus(str(row.get("status")))
        except (asyncio.TimeoutError, ValueError):
            left.append(cid)
            continue  # asked again next round
        except ExchangeError as exc:
            if exc.code not in _UNKNOWN:
                left.append(cid)
                continue
            st.unknown = False
            engine.on_command_failed(SubmitOrder(r), ExchangeError(exc.code, "never reached the exchange (not resent)",
                                                                   exc.http_status))
            notes.append(Correction("order_resolved", r.symbol, f"{r.symbol}: order {cid} (status unknown) never "
                                    "reached the exchange; not resent", {"client_id": cid}))
            continue
        st.unknown = False
        oid = int(row.get("orderId") or 0)
        engine.on_command_ok(SubmitOrder(r), oid)
        if status is not OrderStatus.NEW:
            engine.on_exchange_event(ExOrderUpdate(
                symbol=r.symbol, client_order_id=cid, exchange_order_id=oid, side=r.side, type=r.type,
                orig_type=r.type, status=status, exec_type="RECONCILED", quantity=r.quantity,
                filled_qty=_dec(row.get("executedQty"), Decimal(0)), avg_price=_dec(row.get("avgPrice"), Decimal(0)),
                position_side=r.position_side, reduce_only=r.reduce_only, close_position=False,
                time_ms=engine.clock.now_ms()))
        notes.append(Correction("order_resolved", r.symbol, f"{r.symbol}: order {cid} (status unknown) is on the "
                                f"exchange: {status.value}", {"client_id": cid}))
    return notes


def intent_payload(engine, req: Any, kind: str) -> dict:
    """What a restart needs to know about an order request sent before it died."""
    d: dict[str, Any] = {"position_side": req.position_side.value, "side": req.side.value, "type": req.type.value,
                         "signal_id": req.signal_id, "purpose": req.purpose.value}
    if kind == "order":
        d["quantity"] = str(req.quantity)
    br = engine.orders.brackets.get((req.symbol, req.position_side))
    if br is not None:
        d.update(strategy=br.strategy, stop_pct=str(br.stop_pct),
                 take_profit_pct=str(br.take_profit_pct) if br.take_profit_pct is not None else None,
                 direction=br.direction.value)
    return d
