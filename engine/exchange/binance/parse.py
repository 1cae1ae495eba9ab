"""Binance USDⓈ-M payloads → domain values.

One parser for everything the exchange says, used by the real adapter and by the in-process sim
port alike, so every sim run exercises the same code that reads Binance. A payload that does not
have the expected shape raises :class:`ParseError`; callers log it (secrets redacted) and skip it.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

from engine.events import (
    ExAccountUpdate,
    ExAlgoUpdate,
    ExOrderUpdate,
    ExPositionState,
    ExStreamExpired,
)
from engine.model import (
    Account,
    AlgoStatus,
    Candle,
    Fill,
    MarginType,
    MarkPrice,
    OrderStatus,
    OrderType,
    Position,
    PositionSide,
    Side,
)


class ParseError(ValueError):
    """A Binance payload without the shape we expect."""


def _d(v: Any, field: str) -> Decimal:
    if v is None or v == "":
        return Decimal(0)
    if isinstance(v, float):
        v = repr(v)
    try:
        return Decimal(str(v))
    except (InvalidOperation, ValueError):
        raise ParseError(f"field {field!r}: expected a decimal string, got {v!r}") from None


def _i(v: Any, field: str) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        raise ParseError(f"field {field!r}: expected an integer, got {v!r}") from None


def _enum(cls: Any, v: Any, field: str) -> Any:
    try:
        return cls._value2member_map_[v]  # fast path of cls(v)
    except (KeyError, TypeError):
        raise ParseError(f"field {field!r}: unexpected value {v!r}") from None


def _get(m: Mapping[str, Any], key: str) -> Any:
    try:
        return m[key]
    except (KeyError, TypeError):
        raise ParseError(f"missing field {key!r}") from None


def _order_type(v: Any, field: str) -> OrderType:
    return _enum(OrderType, v, field)


# -- user data stream --------------------------------------------------------------------------


def unwrap(msg: Mapping[str, Any]) -> Mapping[str, Any]:
    """Strip the combined-stream wrapper ``{"stream": …, "data": {…}}`` if present."""
    if isinstance(msg, Mapping) and "data" in msg and "stream" in msg:
        return msg["data"]
    return msg


def parse_user_event(msg: Mapping[str, Any]) -> object | None:
    """Parse one user-data event. Unknown event types return ``None`` (ignored on purpose)."""
    msg = unwrap(msg)
    if not isinstance(msg, Mapping):
        raise ParseError(f"expected a JSON object, got {type(msg).__name__}")
    et = msg.get("e")
    if et == "ORDER_TRADE_UPDATE":
        return parse_order_trade_update(msg)
    if et == "ALGO_UPDATE":
        return parse_algo_update(msg)
    if et == "ACCOUNT_UPDATE":
        return parse_account_update(msg)
    if et == "listenKeyExpired":
        return ExStreamExpired(time_ms=_i(msg.get("E", 0), "E"))
    if et is None:
        raise ParseError("missing field 'e'")
    return None  # TRADE_LITE, ACCOUNT_CONFIG_UPDATE, MARGIN_CALL, STRATEGY_UPDATE, …


def parse_order_trade_update(msg: Mapping[str, Any]) -> ExOrderUpdate:
    o = _get(msg, "o")
    symbol = _get(o, "s")
    side = _enum(Side, _get(o, "S"), "o.S")
    otype = _order_type(_get(o, "o"), "o.o")
    orig = _order_type(o.get("ot", otype.value), "o.ot")
    status = _enum(OrderStatus, _get(o, "X"), "o.X")
    exec_type = _get(o, "x")
    ps = _enum(PositionSide, o.get("ps", "BOTH"), "o.ps")
    t_ms = _i(o.get("T", msg.get("T", msg.get("E", 0))), "o.T")
    fill = None
    last_qty = _d(o.get("l"), "o.l")
    # TRADE is a normal execution; CALCULATED is a liquidation or ADL fill — both move the position
    if exec_type in ("TRADE", "CALCULATED") and last_qty > 0:
        fill = Fill(
            symbol=symbol,
            trade_id=_i(_get(o, "t"), "o.t"),
            exchange_order_id=_i(_get(o, "i"), "o.i"),
            client_order_id=str(_get(o, "c")),
            side=side,
            position_side=ps,
            price=_d(_get(o, "L"), "o.L"),
            quantity=last_qty,
            commission=_d(o.get("n"), "o.n"),
            commission_asset=str(o.get("N") or "USDT"),
            realized_pnl=_d(o.get("rp"), "o.rp"),
            is_maker=bool(o.get("m", False)),
            time_ms=t_ms,
            order_type=orig,
        )
    return ExOrderUpdate(
        symbol=symbol,
        client_order_id=str(_get(o, "c")),
        exchange_order_id=_i(_get(o, "i"), "o.i"),
        side=side,
        type=otype,
        orig_type=orig,
        status=status,
        exec_type=str(exec_type),
        quantity=_d(o.get("q"), "o.q"),
        filled_qty=_d(o.get("z"), "o.z"),
        avg_price=_d(o.get("ap"), "o.ap"),
        position_side=ps,
        reduce_only=bool(o.get("R", False)),
        close_position=bool(o.get("cp", False)),
        time_ms=t_ms,
        fill=fill,
        expiry_reason=str(o.get("er", "0")),
    )


def parse_algo_update(msg: Mapping[str, Any]) -> ExAlgoUpdate:
    o = _get(msg, "o")
    ai = o.get("ai", "")
    return ExAlgoUpdate(
        symbol=_get(o, "s"),
        client_algo_id=str(_get(o, "caid")),
        algo_id=_i(_get(o, "aid"), "o.aid"),
        type=_order_type(_get(o, "o"), "o.o"),
        side=_enum(Side, _get(o, "S"), "o.S"),
        position_side=_enum(PositionSide, o.get("ps", "BOTH"), "o.ps"),
        status=_enum(AlgoStatus, _get(o, "X"), "o.X"),
        trigger_price=_d(o.get("tp"), "o.tp"),
        actual_order_id=_i(ai, "o.ai") if ai not in ("", None, "0") else None,
        close_position=bool(o.get("cp", False)),
        time_ms=_i(msg.get("T", msg.get("E", 0)), "T"),
        reason=str(o.get("rm", "") or ""),
        activated=_bool_or_none(o.get("ia"), "o.ia"),
    )


def _bool_or_none(v: Any, name: str) -> bool | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return v
    if v in ("true", "false"):
        return v == "true"
    raise ParseError(f"field {name!r}: expected true or false, got {v!r}")


def parse_account_update(msg: Mapping[str, Any]) -> ExAccountUpdate:
    a = _get(msg, "a")
    wallet = None
    change = Decimal(0)
    for b in a.get("B", []):
        if b.get("a") == "USDT":
            wallet = _d(b.get("wb"), "a.B.wb")
            change = _d(b.get("bc"), "a.B.bc")
    positions = tuple(
        ExPositionState(
            symbol=_get(p, "s"),
            position_side=_enum(PositionSide, p.get("ps", "BOTH"), "a.P.ps"),
            amount=_d(_get(p, "pa"), "a.P.pa"),
            entry_price=_d(p.get("ep"), "a.P.ep"),
            break_even_price=_d(p.get("bep"), "a.P.bep"),
            unrealized_pnl=_d(p.get("up"), "a.P.up"),
            margin_type=str(p.get("mt", "cross")),
            isolated_wallet=_d(p.get("iw"), "a.P.iw"),
        )
        for p in a.get("P", [])
    )
    return ExAccountUpdate(
        reason=str(a.get("m", "")),
        wallet_balance=wallet,
        balance_change=change,
        positions=positions,
        time_ms=_i(msg.get("T", msg.get("E", 0)), "T"),
    )


# -- market streams ----------------------------------------------------------------------------


def parse_kline_event(msg: Mapping[str, Any]) -> Candle:
    msg = unwrap(msg)
    k = _get(msg, "k")
    return Candle(
        symbol=_get(k, "s"),
        open_time_ms=_i(_get(k, "t"), "k.t"),
        close_time_ms=_i(_get(k, "T"), "k.T"),
        open=_d(_get(k, "o"), "k.o"),
        high=_d(_get(k, "h"), "k.h"),
        low=_d(_get(k, "l"), "k.l"),
        close=_d(_get(k, "c"), "k.c"),
        volume=_d(_get(k, "v"), "k.v"),
        closed=bool(_get(k, "x")),
    )


def parse_mark_price_event(msg: Mapping[str, Any]) -> MarkPrice:
    msg = unwrap(msg)
    return MarkPrice(
        symbol=_get(msg, "s"),
        mark_price=_d(_get(msg, "p"), "p"),
        funding_rate=_d(msg.get("r"), "r"),
        next_funding_time_ms=_i(msg.get("T", 0), "T"),
        event_time_ms=_i(_get(msg, "E"), "E"),
    )


def parse_rest_kline(symbol: str, row: list[Any]) -> Candle:
    if not isinstance(row, list) or len(row) < 7:
        raise ParseError(f"kline row: expected a 12-element array, got {row!r}")
    return Candle(
        symbol=symbol,
        open_time_ms=_i(row[0], "openTime"),
        close_time_ms=_i(row[6], "closeTime"),
        open=_d(row[1], "open"),
        high=_d(row[2], "high"),
        low=_d(row[3], "low"),
        close=_d(row[4], "close"),
        volume=_d(row[5], "volume"),
        closed=True,
    )


# -- REST ------------------------------------------------------------------------------------


def parse_position_risk(rows: list[Mapping[str, Any]]) -> list[Position]:
    out = []
    for r in rows:
        out.append(
            Position(
                symbol=_get(r, "symbol"),
                position_side=_enum(PositionSide, r.get("positionSide", "BOTH"), "positionSide"),
                amount=_d(_get(r, "positionAmt"), "positionAmt"),
                entry_price=_d(r.get("entryPrice"), "entryPrice"),
                break_even_price=_d(r.get("breakEvenPrice"), "breakEvenPrice"),
                unrealized_pnl=_d(r.get("unRealizedProfit"), "unRealizedProfit"),
                margin_type=MarginType.ISOLATED
                if _d(r.get("isolatedWallet"), "isolatedWallet") != 0 or str(r.get("marginType", "")).lower() == "isolated"
                else MarginType.CROSSED,
                isolated_wallet=_d(r.get("isolatedWallet"), "isolatedWallet"),
                update_time_ms=_i(r.get("updateTime", 0), "updateTime"),
            )
        )
    return out


def parse_user_trade(r: Mapping[str, Any], client_order_id: str, order_type: OrderType) -> Fill:
    """A ``GET /fapi/v1/userTrades`` row as a Fill (the row names no client id or order type:
    the caller looks them up by ``orderId``)."""
    return Fill(
        symbol=_get(r, "symbol"),
        trade_id=_i(_get(r, "id"), "id"),
        exchange_order_id=_i(_get(r, "orderId"), "orderId"),
        client_order_id=client_order_id,
        side=_enum(Side, _get(r, "side"), "side"),
        position_side=_enum(PositionSide, r.get("positionSide", "BOTH"), "positionSide"),
        price=_d(_get(r, "price"), "price"),
        quantity=_d(_get(r, "qty"), "qty"),
        commission=_d(r.get("commission", "0"), "commission"),
        commission_asset=str(r.get("commissionAsset", "USDT")),
        realized_pnl=_d(r.get("realizedPnl", "0"), "realizedPnl"),
        is_maker=bool(r.get("maker", False)),
        time_ms=_i(_get(r, "time"), "time"),
        order_type=order_type,
    )


def parse_account(payload: Mapping[str, Any], time_ms: int) -> Account:
    return Account(
        wallet_balance=_d(_get(payload, "totalWalletBalance"), "totalWalletBalance"),
        unrealized_pnl=_d(payload.get("totalUnrealizedProfit"), "totalUnrealizedProfit"),
        margin_balance=_d(payload.get("totalMarginBalance"), "totalMarginBalance"),
        available_balance=_d(payload.get("availableBalance"), "availableBalance"),
        initial_margin=_d(payload.get("totalInitialMargin"), "totalInitialMargin"),
        maint_margin=_d(payload.get("totalMaintMargin"), "totalMaintMargin"),
        update_time_ms=time_ms,
    )


def parse_order_ack(r: Mapping[str, Any]) -> tuple[int, OrderStatus]:
    return _i(_get(r, "orderId"), "orderId"), _enum(OrderStatus, _get(r, "status"), "status")


def parse_algo_ack(r: Mapping[str, Any]) -> tuple[int, AlgoStatus]:
    return _i(_get(r, "algoId"), "algoId"), _enum(AlgoStatus, _get(r, "algoStatus"), "algoStatus")
