"""REST side: the endpoint table (§4, §5) and the request pipeline.

Pipeline per request: IP ban / 429 back-off gate (418) → route (404/405) → request weight (429)
→ gateway faults (``fail_next``, ``rate_limit_next``, ``stall_next``) → ``delay_rest_s`` → API key
(-2014/-2015, 401) → ``timestamp``/``recvWindow`` (-1021) → signature (-1022) → order count (429
-1015) → engine faults (``reject_next``, ``unknown_next``, ``stall_response_next``) → the sim →
user-data events pushed → answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import parse_qsl

from engine.exchange.sim.matching import SimApiError
from engine.exchange.sim.server.auth import check_timestamp
from engine.exchange.sim.server.http import HttpRequest, HttpResponse
from engine.exchange.sim.server.limits import Verdict
from engine.exchange.sim.server.replay import kline_weight

if TYPE_CHECKING:  # pragma: no cover
    from engine.exchange.sim.server.local import LocalExchange

log = logging.getLogger(__name__)

NONE, USER_STREAM, SIGNED = "NONE", "USER_STREAM", "SIGNED"
_STRIP = ("timestamp", "recvWindow", "signature")


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), default=str).encode()


@dataclass(frozen=True)
class Endpoint:
    security: str
    weight: Callable[[dict[str, str]], int]
    handler: Callable[["LocalExchange", dict[str, str]], Any]
    is_order: bool = False


def _w(n: int) -> Callable[[dict[str, str]], int]:
    return lambda p: n


def _w_sym(with_symbol: int, without: int) -> Callable[[dict[str, str]], int]:
    return lambda p: with_symbol if p.get("symbol") else without


def _err(code: int, msg: str, status: int = 400) -> SimApiError:
    return SimApiError(status, code, msg)


# -- handlers that are more than a straight call into the sim ----------------------------------


def _exchange_info(ex: "LocalExchange", p: dict[str, str]) -> dict:
    info = ex.sim.exchange_info()
    info["rateLimits"] = ex.limits.exchange_info_entries()
    return info


def _open_order(ex: "LocalExchange", p: dict[str, str]) -> dict:
    o = ex.sim.query_order(p)
    if o.get("status") not in ("NEW", "PARTIALLY_FILLED"):
        raise _err(-2013, "Order does not exist.")
    return o


def _configs(ex: "LocalExchange", p: dict[str, str]) -> dict[str, dict]:
    sub = {"symbol": p["symbol"]} if p.get("symbol") else {}
    return {c["symbol"]: c for c in ex.sim.symbol_config(sub)}


def _sides(ex: "LocalExchange") -> tuple[str, ...]:
    return ("LONG", "SHORT") if ex.sim.get_position_mode({}).get("dualSidePosition") else ("BOTH",)


def _v2_margin_type(cfg: dict) -> str:
    return "isolated" if cfg["marginType"] == "ISOLATED" else "cross"


def _position_risk_v2(ex: "LocalExchange", p: dict[str, str]) -> list:
    """v2: every symbol (flat rows too), plus ``leverage``/``marginType``/``isAutoAddMargin``/``maxNotionalValue``."""
    rows = {(r["symbol"], r["positionSide"]): r for r in ex.sim.position_risk(p)}
    out = []
    for sym, cfg in _configs(ex, p).items():
        mark = None
        for ps in _sides(ex):
            r = rows.get((sym, ps))
            if r is None:
                if mark is None:
                    mark = ex.sim.premium_index({"symbol": sym})["markPrice"]
                r = {"symbol": sym, "positionSide": ps, "positionAmt": "0", "entryPrice": "0", "breakEvenPrice": "0",
                     "markPrice": mark, "unRealizedProfit": "0", "liquidationPrice": "0", "isolatedMargin": "0",
                     "notional": "0", "isolatedWallet": "0", "updateTime": 0}
            else:
                r = {k: v for k, v in r.items() if k not in ("initialMargin", "maintMargin", "positionInitialMargin",
                                                             "openOrderInitialMargin", "adl", "bidNotional",
                                                             "askNotional", "marginAsset")}
            r["marginType"] = _v2_margin_type(cfg)
            r["isAutoAddMargin"] = "false"
            r["leverage"] = str(cfg["leverage"])
            r["maxNotionalValue"] = cfg["maxNotionalValue"]
            out.append(r)
    return out


def _account_v2(ex: "LocalExchange", p: dict[str, str]) -> dict:
    acc = ex.sim.account({})
    risk = {(r["symbol"], r["positionSide"]): r for r in ex.sim.position_risk({})}
    have = {(r["symbol"], r["positionSide"]): r for r in acc["positions"]}
    positions = []
    for sym, cfg in _configs(ex, {}).items():
        for ps in _sides(ex):
            base = have.get((sym, ps))
            r = risk.get((sym, ps), {})
            row = dict(base) if base is not None else {
                "symbol": sym, "positionSide": ps, "positionAmt": "0", "unrealizedProfit": "0", "isolatedMargin": "0",
                "notional": "0", "isolatedWallet": "0", "initialMargin": "0", "maintMargin": "0", "updateTime": 0}
            row.update({
                "leverage": str(cfg["leverage"]), "isolated": cfg["marginType"] == "ISOLATED",
                "entryPrice": r.get("entryPrice", "0"), "breakEvenPrice": r.get("breakEvenPrice", "0"),
                "maxNotional": cfg["maxNotionalValue"],
                "positionInitialMargin": r.get("positionInitialMargin", "0"),
                "openOrderInitialMargin": r.get("openOrderInitialMargin", "0"),
                "bidNotional": r.get("bidNotional", "0"), "askNotional": r.get("askNotional", "0"),
            })
            positions.append(row)
    assets = [dict(a, marginAvailable=True) for a in acc["assets"]]
    out = {"feeTier": 0, "feeBurn": False, "canTrade": True, "canDeposit": True, "canWithdraw": True,
           "updateTime": 0, "multiAssetsMargin": False, "tradeGroupId": -1}
    out.update({k: v for k, v in acc.items() if k not in ("assets", "positions")})
    out["assets"] = assets
    out["positions"] = positions
    return out


def _sim(name: str) -> Callable[["LocalExchange", dict[str, str]], Any]:
    def call(ex: "LocalExchange", p: dict[str, str]) -> Any:
        return getattr(ex.sim, name)(p)
    call.__name__ = name
    return call


ENDPOINTS: dict[tuple[str, str], Endpoint] = {
    ("GET", "/fapi/v1/ping"): Endpoint(NONE, _w(1), lambda ex, p: {}),
    ("GET", "/fapi/v1/time"): Endpoint(NONE, _w(1), lambda ex, p: {"serverTime": ex.request_time_ms()}),
    ("GET", "/fapi/v1/exchangeInfo"): Endpoint(NONE, _w(1), _exchange_info),
    ("GET", "/fapi/v1/klines"): Endpoint(NONE, kline_weight, lambda ex, p: ex.tape.klines(p, set(ex.sim.rules))),
    ("GET", "/fapi/v1/premiumIndex"): Endpoint(NONE, _w_sym(1, 10), _sim("premium_index")),
    ("GET", "/fapi/v1/leverageBracket"): Endpoint(SIGNED, _w(1), _sim("leverage_brackets")),
    ("POST", "/fapi/v1/leverage"): Endpoint(SIGNED, _w(1), _sim("change_leverage")),
    ("POST", "/fapi/v1/marginType"): Endpoint(SIGNED, _w(1), _sim("change_margin_type")),
    ("GET", "/fapi/v1/positionSide/dual"): Endpoint(SIGNED, _w(30), _sim("get_position_mode")),
    ("POST", "/fapi/v1/positionSide/dual"): Endpoint(SIGNED, _w(1), _sim("change_position_mode")),
    ("POST", "/fapi/v1/order"): Endpoint(SIGNED, _w(0), _sim("new_order"), is_order=True),
    ("GET", "/fapi/v1/order"): Endpoint(SIGNED, _w(1), _sim("query_order")),
    ("DELETE", "/fapi/v1/order"): Endpoint(SIGNED, _w(1), _sim("cancel_order")),
    ("GET", "/fapi/v1/openOrders"): Endpoint(SIGNED, _w_sym(1, 40), _sim("open_orders")),
    ("GET", "/fapi/v1/openOrder"): Endpoint(SIGNED, _w(1), _open_order),
    ("DELETE", "/fapi/v1/allOpenOrders"): Endpoint(SIGNED, _w(1), _sim("cancel_all_open_orders")),
    ("POST", "/fapi/v1/algoOrder"): Endpoint(SIGNED, _w(0), _sim("new_algo_order"), is_order=True),
    ("GET", "/fapi/v1/algoOrder"): Endpoint(SIGNED, _w(1), _sim("query_algo_order")),
    ("DELETE", "/fapi/v1/algoOrder"): Endpoint(SIGNED, _w(1), _sim("cancel_algo_order")),
    ("GET", "/fapi/v1/openAlgoOrders"): Endpoint(SIGNED, _w_sym(1, 40), _sim("open_algo_orders")),
    ("DELETE", "/fapi/v1/algoOpenOrders"): Endpoint(SIGNED, _w(1), _sim("cancel_all_algo_open_orders")),
    ("GET", "/fapi/v3/positionRisk"): Endpoint(SIGNED, _w(5), _sim("position_risk")),
    ("GET", "/fapi/v2/positionRisk"): Endpoint(SIGNED, _w(5), _position_risk_v2),
    ("GET", "/fapi/v3/account"): Endpoint(SIGNED, _w(5), _sim("account")),
    ("GET", "/fapi/v2/account"): Endpoint(SIGNED, _w(5), _account_v2),
    ("GET", "/fapi/v3/balance"): Endpoint(SIGNED, _w(5), _sim("balance")),
    ("GET", "/fapi/v2/balance"): Endpoint(SIGNED, _w(5), _sim("balance")),
    ("GET", "/fapi/v1/userTrades"): Endpoint(SIGNED, _w(5), _sim("user_trades")),
    ("GET", "/fapi/v1/commissionRate"): Endpoint(SIGNED, _w(20), _sim("commission_rate")),
    ("GET", "/fapi/v1/symbolConfig"): Endpoint(SIGNED, _w(5), _sim("symbol_config")),
    ("POST", "/fapi/v1/listenKey"): Endpoint(USER_STREAM, _w(1), lambda ex, p: ex._listen_key_post()),
    ("PUT", "/fapi/v1/listenKey"): Endpoint(USER_STREAM, _w(1), lambda ex, p: ex._listen_key_put()),
    ("DELETE", "/fapi/v1/listenKey"): Endpoint(USER_STREAM, _w(1), lambda ex, p: ex._listen_key_delete()),
}
_PATHS = {path for _, path in ENDPOINTS}


def _is_form(req: HttpRequest) -> bool:
    ctype = (req.header("content-type") or "").lower()
    return not ctype or ctype.startswith("application/x-www-form-urlencoded")


class RestApi:
    def __init__(self, ex: "LocalExchange") -> None:
        self.ex = ex

    def _json(self, status: int, obj: Any, headers: list[tuple[str, str]]) -> HttpResponse:
        return HttpResponse(status, _dumps(obj), list(headers))

    def _error(self, e: SimApiError, headers: list[tuple[str, str]]) -> HttpResponse:
        return self._json(e.http_status, {"code": e.code, "msg": e.msg}, headers)

    def _verdict(self, v: Verdict, headers: list[tuple[str, str]]) -> HttpResponse:
        return self._json(v.status, {"code": v.code, "msg": v.msg},
                          headers + [("Retry-After", str(v.retry_after_s))])

    async def handle(self, req: HttpRequest) -> HttpResponse:
        ex = self.ex
        lim = ex._limiter
        ip = req.client_ip
        path = req.path
        now = ex.wall_ms()
        ex.request_log.append((time.monotonic(), req.method, path))

        def weight_header() -> list[tuple[str, str]]:
            return [("X-MBX-USED-WEIGHT-1M", str(lim.used_weight(ip, ex.wall_ms())))]

        v = lim.gate(ip, now)
        if v.status:
            return self._verdict(v, weight_header())
        ep = ENDPOINTS.get((req.method, path))
        if ep is None:
            lim.add_weight(ip, now, 1)
            if path in _PATHS:
                return self._json(405, {"code": -1000, "msg": f"Method {req.method} is not supported for {path}."},
                                  weight_header())
            return self._json(404, {"code": -1000, "msg": f"Unknown path {path}."}, weight_header())

        raw_query = req.raw_query
        raw_body = ""
        params: dict[str, str] = {}
        if req.body and _is_form(req):
            raw_body = req.body.decode("utf-8", errors="replace")
            params.update(parse_qsl(raw_body, keep_blank_values=True))
        params.update(parse_qsl(raw_query, keep_blank_values=True))  # the query string wins

        v = lim.add_weight(ip, now, ep.weight(params))
        if v.status:
            return self._verdict(v, weight_header())

        fault = ex.faults.take(("fail", "ratelimit", "stall"), path)
        if fault is not None:
            if fault.kind == "ratelimit":
                mono = time.monotonic()
                ex.faults.refusals.append((mono, mono + fault.retry_after_s, "429"))
                return self._verdict(lim.too_many(ip, now, fault.retry_after_s), weight_header())
            if fault.kind == "stall":  # lost on the way in: hang, then drop the connection
                await asyncio.sleep(fault.hold_s)
                return HttpResponse(-1, b"")
            if fault.status == 0:
                return HttpResponse(-1, b"")
            return HttpResponse(fault.status, fault.body, weight_header(), fault.content_type)

        if ex.faults.delay_rest_s > 0:
            await asyncio.sleep(ex.faults.delay_rest_s)

        try:
            if ep.security in (USER_STREAM, SIGNED):
                api_key = req.header("x-mbx-apikey")
                ex.keys.check_key(api_key)
                if ep.security == SIGNED:
                    check_timestamp(params, ex.request_time_ms())
                    assert api_key is not None
                    ex.keys.verify(api_key, raw_query, raw_body)
        except SimApiError as e:
            return self._error(e, weight_header())

        order_headers: list[tuple[str, str]] = []
        if ep.is_order:
            v = lim.count_order(ex.wall_ms())
            order_headers = lim.order_headers(ex.wall_ms())
            if v.status:
                return self._verdict(v, weight_header() + order_headers)

        fault = ex.faults.take(("reject", "unknown", "stall_response"), path)
        if fault is not None and fault.kind == "reject":
            return self._json(fault.status, {"code": fault.code, "msg": fault.msg}, weight_header() + order_headers)

        clean = {k: v for k, v in params.items() if k not in _STRIP}
        try:
            result = ep.handler(ex, clean)
            error = None
        except SimApiError as e:
            result, error = None, e
        except Exception:
            log.exception("sim failed on %s %s", req.method, path)
            result, error = None, _err(-1000, "An unknown error occured while processing the request.", 500)
        finally:
            await ex._publish_user_events()
        headers = weight_header() + order_headers
        if fault is not None and fault.kind == "stall_response":  # applied; the answer is late or lost
            await asyncio.sleep(fault.hold_s)
            if not fault.respond:
                return HttpResponse(-1, b"")
        elif fault is not None:  # unknown_next: applied, but the client is told "status unknown"
            return HttpResponse(fault.status, fault.body, headers, fault.content_type)
        if error is not None:
            return self._error(error, headers)
        return self._json(200, result, headers)
