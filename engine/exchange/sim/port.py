"""In-process port onto the sim matching engine.

Requests are turned into exactly the query parameters a Binance client would send, responses and
user-data events come back in Binance's JSON shapes and go through the same parser as the real
adapter. Only the transport is missing (the local HTTP/WebSocket server adds it).
"""

from __future__ import annotations

import logging
from decimal import Decimal

from engine.exchange.binance.parse import ParseError, parse_account, parse_position_risk, parse_user_event
from engine.exchange.errors import ExchangeError
from engine.exchange.filters import SymbolRules, fmt
from engine.exchange.sim.matching import SimApiError, SimExchange
from engine.model import Account, AlgoOrderRequest, OrderRequest, OrderType, Position, PositionSide

log = logging.getLogger(__name__)


def order_params(req: OrderRequest) -> dict[str, str]:
    p = {
        "symbol": req.symbol,
        "side": req.side.value,
        "type": req.type.value,
        "quantity": fmt(req.quantity),
        "newClientOrderId": req.client_order_id,
        "newOrderRespType": "RESULT",
    }
    if req.position_side is not PositionSide.BOTH:
        p["positionSide"] = req.position_side.value
    if req.reduce_only:
        p["reduceOnly"] = "true"
    if req.price is not None:
        p["price"] = fmt(req.price)
    if req.time_in_force:
        p["timeInForce"] = req.time_in_force
    return p


def algo_params(req: AlgoOrderRequest) -> dict[str, str]:
    p = {
        "algoType": "CONDITIONAL",
        "symbol": req.symbol,
        "side": req.side.value,
        "type": req.type.value,
        "workingType": req.working_type.value,
        "clientAlgoId": req.client_algo_id,
        "priceProtect": "true" if req.price_protect else "false",
    }
    if req.type is OrderType.TRAILING_STOP_MARKET:
        p["activatePrice"] = fmt(req.trigger_price)
        p["callbackRate"] = fmt(req.callback_rate if req.callback_rate is not None else Decimal(1))
    else:
        p["triggerPrice"] = fmt(req.trigger_price)
    if req.position_side is not PositionSide.BOTH:
        p["positionSide"] = req.position_side.value
    if req.close_position:
        p["closePosition"] = "true"
    else:
        if req.quantity is not None:
            p["quantity"] = fmt(req.quantity)
        if req.reduce_only:
            p["reduceOnly"] = "true"
    return p


class SimPort:
    """``SyncExchange`` over an in-process :class:`SimExchange`."""

    def __init__(self, sim: SimExchange) -> None:
        self.sim = sim
        self.malformed = 0

    def symbol_rules(self) -> dict[str, SymbolRules]:
        return self.sim.rules

    def _call(self, fn, params):
        try:
            return fn(params)
        except SimApiError as e:
            raise ExchangeError(e.code, e.msg, e.http_status) from None

    def place_order(self, req: OrderRequest) -> int:
        r = self._call(self.sim.new_order, order_params(req))
        return int(r["orderId"])

    def place_algo_order(self, req: AlgoOrderRequest) -> int:
        r = self._call(self.sim.new_algo_order, algo_params(req))
        return int(r["algoId"])

    def cancel_order(self, symbol: str, client_order_id: str) -> None:
        self._call(self.sim.cancel_order, {"symbol": symbol, "origClientOrderId": client_order_id})

    def cancel_algo_order(self, symbol: str, client_algo_id: str) -> None:
        self._call(self.sim.cancel_algo_order, {"symbol": symbol, "clientAlgoId": client_algo_id})

    def positions(self) -> list[Position]:
        return parse_position_risk(self._call(self.sim.position_risk, {}))

    def account(self) -> Account:
        return parse_account(self._call(self.sim.account, {}), self.sim.now_ms)

    def has_events(self) -> bool:
        return self.sim.has_events()

    def drain_events(self) -> list[object]:
        out = []
        for raw in self.sim.drain_events():
            try:
                ev = parse_user_event(raw)
            except ParseError as exc:
                self.malformed += 1
                log.error("skipping malformed user-data event: %s; payload=%s", exc, raw)
                continue
            if ev is not None:
                out.append(ev)
        return out
