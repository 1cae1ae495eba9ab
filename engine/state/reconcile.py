"""Reconciliation: bring what we believe to the exchange's truth, and say what was corrected.

Pure decisions, no I/O: the runtime fetches the exchange's positions, open orders, open algo
orders and fills, reads the stored plans and intents, calls these functions, and hands the
decisions to the engine (which acts through the order manager) and the journal (every correction
is recorded as an event with its reason).

At startup (:func:`plan_startup`):

* a position with a stored plan continues that plan (break-even timer, TP progress, trailing);
* a position with no plan but a recent entry intent of ours on that symbol and side is ours — the
  process died between the entry fill and the moment its plan was written — and is protected;
* any other position was opened outside perpdeck: adopted under protection or left alone, per
  ``[reconcile] external_positions``; either way it is shown and never traded against blindly;
* a stored plan whose position is gone is dropped (the fills that closed it are recovered);
* our conditional orders resting for a position that no longer exists are cancelled; our entry
  orders still open are cancelled (their signal is stale, and a restart never resends an entry).

On a timer (:func:`diff_running`): positions the engine has wrong, stops the engine believes
resting that the exchange does not have, and our conditional orders left without a position.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterable

from engine.model import Position, PositionSide
from engine.orders.ids import role_of as _ours  # a leaf module: deterministic client ids only

Key = tuple[str, PositionSide]


@dataclass(frozen=True, slots=True)
class Correction:
    """One thing reconciliation changed or found, recorded as an event ``reconcile.<kind>``."""

    kind: str
    symbol: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class StartupPlan:
    restore: list[tuple[Key, dict, Position]] = field(default_factory=list)
    """(key, stored plan payload, the exchange's position)."""
    adopt_ours: list[tuple[Key, Position, dict]] = field(default_factory=list)
    """(key, position, the entry intent's payload) — ours, but its plan was never written."""
    external: list[tuple[Key, Position]] = field(default_factory=list)
    dropped_plans: list[tuple[Key, dict]] = field(default_factory=list)
    cancel_algos: list[tuple[str, str]] = field(default_factory=list)
    cancel_orders: list[tuple[str, str]] = field(default_factory=list)
    resting: dict[str, dict] = field(default_factory=dict)
    """Our conditional orders resting on the exchange, by client algo id."""
    corrections: list[Correction] = field(default_factory=list)


def _cancel_orphan(out: StartupPlan | RunningDiff, caid: str, row: dict) -> None:
    """One of our conditional orders rests with no position to protect: cancel it and say so."""
    out.cancel_algos.append((str(row["symbol"]), caid))
    out.corrections.append(Correction("orphan_cancelled", str(row["symbol"]),
                                      f"{row['symbol']}: {caid} rests with no position; cancelled",
                                      {"client_id": caid, "type": row.get("orderType")}))


def _key_of_row(row: dict) -> Key:
    return (str(row.get("symbol", "")), PositionSide(row.get("positionSide") or "BOTH"))


def _algo_key(row: dict, hedge: bool) -> Key:
    sym, ps = _key_of_row(row)
    return (sym, ps if hedge else PositionSide.BOTH)


def _stale_plan(plan: dict, p: Position, intent: dict | None) -> str:
    """Why a stored plan does not belong to the position found (empty: it does). A plan is only
    continued on the position it was made for: same direction, and no entry of ours for another
    signal sent after it opened (one position per key at a time, so that entry made the position
    now held, after the planned one ended while no process was listening)."""
    br = plan.get("bracket") or {}
    direction = br.get("direction")
    if direction in ("LONG", "SHORT") and p.position_side is PositionSide.BOTH:
        if (p.amount > 0) != (direction == "LONG"):
            return f"it is {direction} and the position is {p.amount}"
    if intent is not None:
        sig = (intent.get("payload") or {}).get("signal_id")
        opened = br.get("opened_ms") or 0
        if sig and sig != br.get("signal_id") and intent.get("created_ms", 0) > opened:
            return f"entry {intent.get('client_id')} of another signal was sent after it opened"
    return ""


def plan_startup(
    *,
    positions: Iterable[Position],
    open_orders: Iterable[dict],
    open_algos: Iterable[dict],
    plans: Iterable[dict],
    entry_intents: Iterable[dict],
    hedge: bool = False,
) -> StartupPlan:
    """Decide what a starting process does with what it finds. ``plans`` are stored plan rows
    (``symbol``, ``position_side``, ``payload``); ``entry_intents`` stored entry intents
    (``client_id``, ``symbol``, ``payload`` with ``position_side``, ``signal_id``, ``strategy``,
    ``stop_pct``, ``take_profit_pct``; ``state``; ``created_ms``), oldest first."""
    out = StartupPlan()
    pos = {(p.symbol, p.position_side): p for p in positions if p.amount != 0}
    by_plan = {(r["symbol"], PositionSide(r["position_side"])): r["payload"] for r in plans}
    latest_intent: dict[Key, dict] = {}
    for it in entry_intents:
        if it.get("state") in ("rejected", "missing"):
            continue
        ps = PositionSide(it["payload"].get("position_side", "BOTH"))
        latest_intent[(it["symbol"], ps)] = it
    for row in open_algos:
        caid = str(row.get("clientAlgoId", ""))
        if _ours(caid):
            out.resting[caid] = row
    for key, p in sorted(pos.items()):
        plan = by_plan.get(key)
        stale = _stale_plan(plan, p, latest_intent.get(key)) if plan is not None else ""
        if stale:
            by_plan.pop(key)
            out.dropped_plans.append((key, plan))
            out.corrections.append(Correction("plan_stale", key[0], f"{key[0]} {key[1].value}: stored plan of "
                                              f"signal {plan['bracket'].get('signal_id')} not continued: {stale}",
                                              {"position_side": key[1].value}))
            plan = None
        if plan is not None:
            out.restore.append((key, plan, p))
            out.corrections.append(Correction("plan_restored", key[0],
                                              f"{key[0]} {key[1].value}: plan continued after restart",
                                              {"position_side": key[1].value, "amount": str(p.amount)}))
            continue
        it = latest_intent.get(key)
        if it is not None and (p.update_time_ms == 0 or it["created_ms"] <= p.update_time_ms + 60_000):
            out.adopt_ours.append((key, p, it["payload"] | {"client_id": it["client_id"]}))
            out.corrections.append(Correction(
                "plan_rebuilt", key[0],
                f"{key[0]} {key[1].value}: our position (entry {it['client_id']}) had no stored plan; protecting it",
                {"position_side": key[1].value, "amount": str(p.amount), "entry": it["client_id"]}))
            continue
        out.external.append((key, p))
        out.corrections.append(Correction("external_position", key[0],
                                          f"{key[0]} {key[1].value}: position {p.amount} was not opened by perpdeck",
                                          {"position_side": key[1].value, "amount": str(p.amount),
                                           "entry_price": str(p.entry_price)}))
    for key, plan in sorted(by_plan.items()):
        if key not in pos:
            out.dropped_plans.append((key, plan))
            out.corrections.append(Correction("plan_closed", key[0],
                                              f"{key[0]} {key[1].value}: position closed while perpdeck was down",
                                              {"position_side": key[1].value}))
    held = set(pos)
    for caid, row in out.resting.items():
        if _algo_key(row, hedge) not in held and _ours(caid) != "entry":
            _cancel_orphan(out, caid, row)
    for row in open_orders:
        coid = str(row.get("clientOrderId", ""))
        if _ours(coid) == "entry":
            out.cancel_orders.append((str(row["symbol"]), coid))
            out.corrections.append(Correction("entry_cancelled", str(row["symbol"]),
                                              f"{row['symbol']}: entry {coid} from before the restart cancelled "
                                              "(entries are never resumed)", {"client_id": coid}))
    return out


@dataclass
class RunningDiff:
    amounts: list[tuple[Key, Decimal, Decimal]] = field(default_factory=list)
    """(key, engine's amount, exchange's amount) where they differ."""
    stops_lost: list[tuple[Key, str]] = field(default_factory=list)
    """(key, client algo id) — the engine believes this stop rests; the exchange does not have it."""
    cancel_algos: list[tuple[str, str]] = field(default_factory=list)
    new_external: list[tuple[Key, Position]] = field(default_factory=list)
    orphan_rows: dict[str, dict] = field(default_factory=dict)
    """The exchange's rows of the orphans in ``cancel_algos`` (so the cancel's outcome is recorded)."""
    unguarded: list[tuple[Key, Position]] = field(default_factory=list)
    """Managed positions the exchange holds with no stop resting at all (the engine decides
    whether one is on its way)."""
    corrections: list[Correction] = field(default_factory=list)


PROTECTIVE_TYPES = frozenset({"STOP_MARKET", "TRAILING_STOP_MARKET"})


def diff_running(
    *,
    engine_amounts: dict[Key, Decimal],
    believed_stops: dict[Key, str],
    managed: Iterable[Key],
    known_external: Iterable[Key],
    positions: Iterable[Position],
    open_algos: Iterable[dict],
    inflight_algos: Iterable[str] = (),
    hedge: bool = False,
) -> RunningDiff:
    """Compare a running engine with the exchange. ``believed_stops``: per managed position, the
    client id of the stop the engine believes acknowledged and resting; ``inflight_algos``: ids
    sent and not yet answered (not orphans, not lost)."""
    out = RunningDiff()
    pos = {(p.symbol, p.position_side): p for p in positions if p.amount != 0}
    resting = {str(r.get("clientAlgoId", "")): r for r in open_algos}
    inflight = set(inflight_algos)
    for key in sorted(set(engine_amounts) | set(pos)):
        mine = engine_amounts.get(key, Decimal(0))
        theirs = pos[key].amount if key in pos else Decimal(0)
        if mine != theirs:
            out.amounts.append((key, mine, theirs))
            out.corrections.append(Correction("position_corrected", key[0],
                                              f"{key[0]} {key[1].value}: engine had {mine}, exchange has {theirs}",
                                              {"position_side": key[1].value, "engine": str(mine),
                                               "exchange": str(theirs)}))
    managed = set(managed)
    external = set(known_external)
    for key, p in sorted(pos.items()):
        if key not in managed and key not in external:
            out.new_external.append((key, p))
    for key, caid in sorted(believed_stops.items()):
        if key in pos and caid not in resting and caid not in inflight:
            out.stops_lost.append((key, caid))
            out.corrections.append(Correction("stop_lost", key[0],
                                              f"{key[0]} {key[1].value}: stop {caid} is not resting on the exchange; "
                                              "replacing it", {"position_side": key[1].value, "client_id": caid}))
    guarded = {_algo_key(row, hedge) for row in resting.values()
               if str(row.get("orderType", row.get("type", ""))) in PROTECTIVE_TYPES}
    for key, p in sorted(pos.items()):
        if key in managed and key not in guarded:
            out.unguarded.append((key, p))
    for caid, row in sorted(resting.items()):
        role = _ours(caid)
        if role is None or role == "entry" or caid in inflight:
            continue
        if _algo_key(row, hedge) not in pos:
            _cancel_orphan(out, caid, row)
            out.orphan_rows[caid] = row
    return out


def missing_fills(exchange_fills: Iterable[dict], recorded: set[tuple[str, int]]) -> list[dict]:
    """``GET /fapi/v1/userTrades`` rows not yet in the database, oldest first."""
    rows = [r for r in exchange_fills if (str(r["symbol"]), int(r["id"])) not in recorded]
    rows.sort(key=lambda r: (int(r.get("time", 0)), int(r["id"])))
    return rows
