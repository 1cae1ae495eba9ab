"""Plans as plain data: a position's management plan (:class:`Bracket`) and its open trade, to and
from JSON-ready dicts, so a restart mid-trade continues the same plan (break-even timer, partial
take-profit progress, trailing state, the trade's fees, funding and excursions so far).

Decimals travel as strings, enums as their values; unknown keys are ignored and missing keys keep
their defaults, so a plan written by an older version still loads.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from enum import Enum
from typing import Any

from engine.model import Direction, ExitReason, OrderPurpose, PositionSide
from engine.orders.manager import Bracket
from engine.orders.trades import _Open

_ENUMS: dict[str, type[Enum]] = {
    "direction": Direction,
    "stop_purpose": OrderPurpose,
    "position_side": PositionSide,
    "last_exit_reason": ExitReason,
}
_BRACKET_DECIMALS = {
    "stop_pct", "take_profit_pct", "stop_price", "take_profit_price", "entry_price", "filled_qty",
    "tp1_price", "tp1_qty", "be_trigger", "be_price", "trail_extreme",
}
_TRADE_DECIMALS = {
    "amount", "entry_cost", "entry_qty", "exit_cost", "exit_qty", "fees", "funding", "realized", "mfe", "mae",
    "high", "low", "stop_price", "take_profit_price",
}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def bracket_to_dict(br: Bracket) -> dict[str, Any]:
    return {f.name: _plain(getattr(br, f.name)) for f in dataclasses.fields(br)}


def bracket_from_dict(d: dict[str, Any]) -> Bracket:
    kw: dict[str, Any] = {}
    names = {f.name for f in dataclasses.fields(Bracket)}
    for k, v in d.items():
        if k not in names:
            continue
        if k == "key":
            v = (str(v[0]), PositionSide(v[1]))
        elif k in _ENUMS and v is not None:
            v = _ENUMS[k](v)
        elif k in _BRACKET_DECIMALS and v is not None:
            v = Decimal(v)
        elif k == "slices":
            v = [(int(ms), Decimal(q)) for ms, q in v]
        elif k == "pending_stop" and v is not None:
            v = (str(v[0]), Decimal(v[1]), OrderPurpose(v[2]))
        elif k == "entry_ids":
            v = list(v)
        kw[k] = v
    return Bracket(**kw)


def trade_to_dict(t: _Open) -> dict[str, Any]:
    return {f.name: _plain(getattr(t, f.name)) for f in dataclasses.fields(t)}


def trade_from_dict(d: dict[str, Any]) -> _Open:
    kw: dict[str, Any] = {}
    names = {f.name for f in dataclasses.fields(_Open)}
    for k, v in d.items():
        if k not in names:
            continue
        if k in _ENUMS and v is not None:
            v = _ENUMS[k](v)
        elif k in _TRADE_DECIMALS and v is not None:
            v = Decimal(v)
        kw[k] = v
    return _Open(**kw)
