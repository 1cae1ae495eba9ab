"""Deterministic client ids and the one order-status transition table."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.model import AlgoStatus, OrderStatus
from engine.orders.ids import CLIENT_ID_RE, client_id, role_of
from engine.orders.status import ALGO_TRANSITIONS, ORDER_TRANSITIONS, IllegalTransition, algo_transition, order_transition


@given(st.text(min_size=0, max_size=80), st.text(min_size=1, max_size=120),
       st.sampled_from(["entry", "stop_loss", "take_profit", "emergency_close", "flatten", "end_of_data"]),
       st.integers(min_value=0, max_value=9))
def test_client_ids_are_valid_deterministic_and_carry_their_role(ns, key, role, attempt):
    a = client_id(ns, key, role, attempt)
    assert a == client_id(ns, key, role, attempt)  # a retry carries the same id
    assert CLIENT_ID_RE.match(a) and len(a) <= 36
    assert role_of(a) == role


def test_ids_differ_by_role_namespace_and_attempt():
    ids = {client_id("run1", "s", "entry"), client_id("run2", "s", "entry"), client_id("run1", "s", "stop_loss"),
           client_id("run1", "s", "stop_loss", 1), client_id("run1", "t", "entry")}
    assert len(ids) == 5
    assert role_of("web_abc123") is None


def test_every_pair_outside_the_table_raises():
    for old in OrderStatus:
        for new in OrderStatus:
            allowed = new in ORDER_TRANSITIONS[old] or (old == new and old is not OrderStatus.PARTIALLY_FILLED)
            if allowed:
                assert order_transition(old, new) is new
            else:
                with pytest.raises(IllegalTransition):
                    order_transition(old, new)


def test_terminal_states_never_reopen():
    for terminal in (OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED):
        with pytest.raises(IllegalTransition):
            order_transition(terminal, OrderStatus.NEW)
    for terminal in (AlgoStatus.FINISHED, AlgoStatus.CANCELED, AlgoStatus.REJECTED, AlgoStatus.EXPIRED):
        assert not ALGO_TRANSITIONS[terminal]
        with pytest.raises(IllegalTransition):
            algo_transition(terminal, AlgoStatus.NEW)
    assert algo_transition(AlgoStatus.NEW, AlgoStatus.TRIGGERED) is AlgoStatus.TRIGGERED


def test_every_order_purpose_we_send_has_a_client_id_role():
    from engine.model import OrderPurpose
    from engine.orders.ids import client_id, role_of

    for purpose in OrderPurpose:
        if purpose is OrderPurpose.EXTERNAL:
            continue  # never sent by us
        cid = client_id("ns", "sig", purpose.value)
        assert role_of(cid) == purpose.value
