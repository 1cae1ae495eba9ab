"""Order status changes go through one transition table; anything else is a bug.

``transition`` raises :class:`IllegalTransition` for a change the table does not allow. The
manager catches it for exchange-driven updates (logs loudly, keeps the exchange's word) so a
surprising venue message cannot crash trading, while tests run with ``strict=True`` and fail.
"""

from __future__ import annotations

from engine.model import AlgoStatus as A
from engine.model import OrderStatus as S


class IllegalTransition(RuntimeError):
    pass


ORDER_TRANSITIONS: dict[S, frozenset[S]] = {
    S.PENDING_NEW: frozenset({S.NEW, S.PARTIALLY_FILLED, S.FILLED, S.REJECTED, S.CANCELED, S.EXPIRED, S.EXPIRED_IN_MATCH}),
    S.NEW: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.EXPIRED, S.EXPIRED_IN_MATCH}),
    S.PARTIALLY_FILLED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.EXPIRED, S.EXPIRED_IN_MATCH}),
    S.FILLED: frozenset(),
    S.CANCELED: frozenset(),
    S.REJECTED: frozenset(),
    S.EXPIRED: frozenset(),
    S.EXPIRED_IN_MATCH: frozenset(),
}

ALGO_TRANSITIONS: dict[A, frozenset[A]] = {
    A.PENDING_NEW: frozenset({A.NEW, A.TRIGGERING, A.TRIGGERED, A.FINISHED, A.CANCELED, A.REJECTED, A.EXPIRED}),
    A.NEW: frozenset({A.TRIGGERING, A.TRIGGERED, A.FINISHED, A.CANCELED, A.REJECTED, A.EXPIRED}),
    A.TRIGGERING: frozenset({A.TRIGGERED, A.FINISHED, A.CANCELED, A.REJECTED, A.EXPIRED}),
    A.TRIGGERED: frozenset({A.FINISHED, A.CANCELED, A.EXPIRED, A.REJECTED}),
    A.FINISHED: frozenset(),
    A.CANCELED: frozenset(),
    A.REJECTED: frozenset(),
    A.EXPIRED: frozenset(),
}


def order_transition(old: S, new: S) -> S:
    if old == new and old is not S.PARTIALLY_FILLED:
        return old  # duplicate update: idempotent
    if new not in ORDER_TRANSITIONS[old]:
        raise IllegalTransition(f"order status {old.value} -> {new.value} is not allowed")
    return new


def algo_transition(old: A, new: A) -> A:
    if old == new:
        return old
    if new not in ALGO_TRANSITIONS[old]:
        raise IllegalTransition(f"algo status {old.value} -> {new.value} is not allowed")
    return new
