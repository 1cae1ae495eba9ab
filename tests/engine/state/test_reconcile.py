"""The pure startup decisions of :mod:`engine.state.reconcile` on hand-made exchange state."""

from __future__ import annotations

from decimal import Decimal

from engine.model import MarginType, Position, PositionSide
from engine.state.reconcile import plan_startup

BOTH = PositionSide.BOTH


def _pos(amount: str) -> Position:
    return Position("ETHUSDT", BOTH, Decimal(amount), Decimal("1800"), Decimal("1800"), Decimal(0),
                    MarginType.ISOLATED, Decimal(0), 50_000)


def _plan(signal: str, direction: str, opened_ms: int = 10_000) -> dict:
    return {"symbol": "ETHUSDT", "position_side": "BOTH",
            "payload": {"bracket": {"signal_id": signal, "direction": direction, "opened_ms": opened_ms},
                        "trade": None}}


def _intent(signal: str, created_ms: int) -> dict:
    return {"client_id": f"pdE0-{signal}", "symbol": "ETHUSDT", "state": "resolved", "created_ms": created_ms,
            "payload": {"position_side": "BOTH", "signal_id": signal, "strategy": "x", "stop_pct": "1"}}


def test_a_plan_continues_on_the_position_it_was_made_for():
    sp = plan_startup(positions=[_pos("0.8")], open_orders=[], open_algos=[], plans=[_plan("a", "LONG")],
                      entry_intents=[_intent("a", 9_000)])
    assert [k for k, _p, _pos_ in sp.restore] == [("ETHUSDT", BOTH)] and not sp.dropped_plans


def test_a_plan_of_the_other_direction_is_not_continued():
    """The planned long closed while no process listened; a short of ours is held now: protect
    the short through its entry intent, never with the long's stop."""
    sp = plan_startup(positions=[_pos("-1.6")], open_orders=[], open_algos=[], plans=[_plan("a", "LONG")],
                      entry_intents=[_intent("a", 9_000), _intent("b", 30_000)])
    assert not sp.restore and [k for k, _p in sp.dropped_plans] == [("ETHUSDT", BOTH)]
    assert [it["signal_id"] for _k, _p, it in sp.adopt_ours] == ["b"]
    assert "plan_stale" in {c.kind for c in sp.corrections}


def test_a_plan_older_than_a_later_entry_of_ours_is_not_continued():
    """Same direction, but an entry for another signal went out after the planned one opened."""
    sp = plan_startup(positions=[_pos("0.8")], open_orders=[], open_algos=[], plans=[_plan("a", "LONG")],
                      entry_intents=[_intent("a", 9_000), _intent("b", 30_000)])
    assert not sp.restore and [it["signal_id"] for _k, _p, it in sp.adopt_ours] == ["b"]
