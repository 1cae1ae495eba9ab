"""In-process matching engine with Binance USDⓈ-M perpetual semantics.

:class:`SimExchange` is the exchange the backtest (and, later, the loopback HTTP/WebSocket
server) talks to. Its public methods are shaped like Binance REST endpoints: they take the
query parameters as ``dict[str, str]`` exactly as a Binance client sends them and return the
JSON-able ``dict``/``list`` Binance would return (Binance field names and JSON types: prices and
quantities as strings, ids as ints, flags as bools). Errors are raised as :class:`SimApiError`
carrying the Binance ``code``/``msg`` and the HTTP status. User-data events
(``ORDER_TRADE_UPDATE``, ``ACCOUNT_UPDATE``, ``ALGO_UPDATE``, ``ACCOUNT_CONFIG_UPDATE``) are queued
and handed out by :meth:`SimExchange.drain_events`.

The clock is the replay clock (:attr:`SimExchange.now_ms`); nothing here reads wall-clock time.
All money is ``Decimal``; every money amount that is booked (realised PnL, commission, funding,
isolated margin) is first quantized to 8 decimals, so the wallet equals the sum of the reported
strings *exactly*.

Price path inside a candle
--------------------------
A closed 1m kline only tells open/high/low/close, so the engine walks an assumed intrabar path:
``open → low → high → close`` when ``close ≥ open``, else ``open → high → low → close``.
**Exception (conservative):** when the symbol has an open position the adverse extreme comes
first (net long: ``open → low → high → close``; net short: ``open → high → low → close``), so a
stop and a take-profit that both lie inside one candle resolve as *stop first*. Along each
monotone leg, events (resting LIMIT fills, algo triggers, liquidations) fire in the order the
price reaches them; at equal levels the order is stop-type algos, liquidation, LIMIT fills,
take-profit algos. The jump from the previous close to the open is a *gap*: anything already
crossed at the open fires at the open price (a stop that gapped through its trigger fills at the
open, then slippage). The mark-price path equals the contract path; after the candle
``last = mark = close``. :meth:`SimExchange.set_mark_price` overrides the mark between candles
and immediately evaluates ``MARK_PRICE`` triggers and liquidations against it (a market child
then fills at the last contract price).

Simplifications (documented deviations from the real exchange)
--------------------------------------------------------------
* Infinite liquidity, no order book: MARKET orders and marketable LIMIT orders fill completely
  at once as taker at the last contract price moved against the taker by ``slippage_bps``
  (rounded to the tick, BUY up / SELL down; a LIMIT never fills beyond its price). Resting LIMIT
  orders fill completely as maker at their limit price when the path reaches it (also when the
  candle gapped through it). Each order therefore has at most one fill, except a resting
  reduce-only order larger than the (shrunk) position: it fills the position size and the rest
  EXPIRES (``er`` 4). Self-trade prevention, ``priceMatch`` (only ``NONE``), ``GTD``/``RPI``
  time-in-force (-1115) and ``PERCENT_PRICE`` for MARKET orders (-4131) are not modelled.
* One-way reduce-only orders and hedge-mode closing orders (SELL+LONG, BUY+SHORT) are clipped to
  the position size at placement (``origQty`` is the clipped size) and are exempt from
  MIN_NOTIONAL and from the margin check. Resting ones EXPIRE when their position goes flat.
* Margin: initial margin = notional / leverage at the mark; open-order margin counts only the
  part of the resting LIMIT orders (per side, at their average price) that would open exposure.
  ``availableBalance = crossWallet + crossUnrealised − cross position IM − open-order IM``
  (clamped at 0 in responses). -2019 is raised when an opening order would leave the available
  balance negative *after* its fill, fee and slippage (or, for a resting order, after adding its
  open-order margin); the same check at trigger time REJECTs an algo child. Lowering the leverage
  so far that the available balance turns negative → -2028; above the bracket cap → -2027.
* Isolated margin: opening puts ``open_qty × price / leverage`` into the isolated wallet;
  closing releases the closed fraction of it (realised PnL and commission go to the wallet, not
  to the isolated wallet); funding of an isolated position is booked to its isolated wallet.
* Break-even price = entry ± (commissions paid on the open position) / size; ``cr`` in
  ACCOUNT_UPDATE is the cumulative realised PnL of that position side.
* Liquidation price uses Binance's formula with the *one-position approximation*: the wallet is
  the isolated wallet (isolated) or the whole cross wallet (cross), ignoring other positions'
  maintenance margin and PnL; brackets are re-evaluated at the liquidation notional. When the
  mark reaches it, the symbol's resting LIMIT orders are cancelled and the position is closed at
  the liquidation price (tick-rounded against the trader; cross: the path price instead when it
  is worse, e.g. a gap) by an order ``c = autoclose-<n>``, ``o = ot = LIQUIDATION``. The lost
  margin is booked as that fill's commission (the clearance fee): isolated → the rest of the
  isolated wallet (so exactly the isolated margin is lost), cross → the position's maintenance
  margin (bounded by what is left of the cross wallet). There is no insurance fund: a cross
  liquidation through a gap can leave the wallet negative. Algo orders are left alone (a
  closePosition one will later EXPIRE).
* Algo orders: no margin check until trigger (as Binance); -2021 is raised for a stop/TP whose
  trigger is already crossed at placement (an assumption: Binance's algo service behaviour is
  unverified). At trigger, closePosition without a position → ``EXPIRED`` (``rm`` says why), a
  reduce-only order that cannot reduce or an opening child without margin → ``REJECTED``.
  ``priceProtect`` can only block a trigger coming from :meth:`set_mark_price` (inside a candle
  mark == contract price). In hedge mode ``closePosition`` with BUY+LONG / SELL+SHORT → -2022.
  Trailing stops track the extreme along the same path; their ``tp`` is reported as ``"0"``
  until they trigger.
* Funding is charged at every multiple of ``funding_interval_ms`` crossed by the clock at the
  current mark; a funding time inside a candle longer than the interval is applied when the
  candle closes.
* ``userTrades`` without a time range returns the last 7 days of the replay clock; ``-1127`` for
  ranges over 7 days. ``allOpenOrders`` does not cancel algo orders.
* ``leverageBracket`` numbers are JSON numbers (floats for ratios/cum) as Binance sends them;
  ``leverageBracket`` always returns a list, also with ``symbol``.
* ACCOUNT_UPDATE for ``FUNDING_FEE`` on a cross position carries ``"P": []``.
"""

from __future__ import annotations

import copy
import json
import re
from bisect import bisect_left
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from importlib import resources
from typing import Any, Mapping

from engine.exchange.filters import (
    FilterError,
    SymbolRules,
    fmt,
    parse_exchange_info,
    parse_leverage_brackets,
    with_brackets,
)
from engine.model import Candle, MarginType, PositionMode

__all__ = ["SimApiError", "SimExchange", "load_default_rules", "load_default_exchange_info"]

ZERO = Decimal(0)
ONE = Decimal(1)
Q8 = Decimal("0.00000001")
_BPS = Decimal(10000)
_HUNDRED = Decimal(100)
_SEVEN_DAYS_MS = 7 * 24 * 3600 * 1000
_FUNDING_MATCH_MS = 60_000
_MAX_OPEN_ALGOS = 200

BUY, SELL = "BUY", "SELL"
BOTH, LONG, SHORT = "BOTH", "LONG", "SHORT"
MARKET, LIMIT, LIQUIDATION = "MARKET", "LIMIT", "LIQUIDATION"
STOP, STOP_MARKET = "STOP", "STOP_MARKET"
TAKE_PROFIT, TAKE_PROFIT_MARKET = "TAKE_PROFIT", "TAKE_PROFIT_MARKET"
TRAILING = "TRAILING_STOP_MARKET"
_ALGO_TYPES = frozenset({STOP, STOP_MARKET, TAKE_PROFIT, TAKE_PROFIT_MARKET, TRAILING})
_CONTRACT, _MARK = "CONTRACT_PRICE", "MARK_PRICE"
_TIFS = frozenset({"GTC", "IOC", "FOK", "GTX"})
_STP_MODES = frozenset({"EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH", "NONE"})

# order statuses
NEW, PARTIALLY_FILLED, FILLED = "NEW", "PARTIALLY_FILLED", "FILLED"
CANCELED, EXPIRED, REJECTED = "CANCELED", "EXPIRED", "REJECTED"
TRIGGERING, TRIGGERED, FINISHED = "TRIGGERING", "TRIGGERED", "FINISHED"

# event priority at equal price levels (lower first)
_PRIO_STOP, _PRIO_LIQ, _PRIO_LIMIT, _PRIO_TP = 0, 1, 2, 3

_NUM_RE = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")
_NUM_RANGE = r"^([0-9]{1,20})(\.[0-9]{1,20})?$"
_CID_RE = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
_CID_RANGE = r"^[\.A-Z\:/a-z0-9_-]{1,36}$"

_MSG_4120 = "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead."
_MSG_CANCEL_ALL = "The operation of cancel all open order is done."


# ---------------------------------------------------------------------------------------------
# errors and parameter parsing
# ---------------------------------------------------------------------------------------------


class SimApiError(Exception):
    """A Binance API error: ``{"code": code, "msg": msg}`` with HTTP status ``http_status``."""

    def __init__(self, http_status: int, code: int, msg: str) -> None:
        super().__init__(f"{code}: {msg}")
        self.http_status = http_status
        self.code = code
        self.msg = msg

    def __str__(self) -> str:
        return f"{self.code}: {self.msg}"

    @property
    def payload(self) -> dict:
        """The JSON error body Binance sends."""
        return {"code": self.code, "msg": self.msg}


def _err(code: int, msg: str, http_status: int = 400) -> SimApiError:
    return SimApiError(http_status, code, msg)


def _mandatory(name: str) -> SimApiError:
    return _err(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def _not_required(name: str) -> SimApiError:
    return _err(-1106, f"Parameter '{name}' sent when not required.")


def _invalid(name: str) -> SimApiError:
    return _err(-1130, f"Data sent for parameter '{name}' is not valid.")


def _get(params: Mapping[str, Any], name: str) -> str | None:
    v = params.get(name)
    if v is None:
        return None
    if isinstance(v, bool):
        v = "true" if v else "false"
    elif not isinstance(v, str):
        v = str(v)
    return v if v != "" else None


def _req(params: Mapping[str, Any], name: str) -> str:
    v = _get(params, name)
    if v is None:
        raise _mandatory(name)
    return v


def _num(params: Mapping[str, Any], name: str, required: bool = False) -> Decimal | None:
    v = _get(params, name)
    if v is None:
        if required:
            raise _mandatory(name)
        return None
    if not _NUM_RE.match(v):
        raise _err(-1100, f"Illegal characters found in parameter '{name}'; legal range is '{_NUM_RANGE}'.")
    return Decimal(v)


def _flag(params: Mapping[str, Any], name: str) -> bool | None:
    v = _get(params, name)
    if v is None:
        return None
    lv = v.lower()
    if lv == "true":
        return True
    if lv == "false":
        return False
    raise _invalid(name)


def _int(params: Mapping[str, Any], name: str, required: bool = False) -> int | None:
    v = _get(params, name)
    if v is None:
        if required:
            raise _mandatory(name)
        return None
    try:
        return int(v)
    except ValueError:
        raise _err(-1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.") from None


def _decimals(d: Decimal) -> int:
    exp = d.normalize().as_tuple().exponent
    return -exp if isinstance(exp, int) and exp < 0 else 0


def _q8(x: Decimal) -> Decimal:
    return x.quantize(Q8, rounding=ROUND_HALF_UP)


def _f8(x: Decimal) -> str:
    return fmt(_q8(x))


def _filter(exc: FilterError) -> SimApiError:
    return _err(exc.code, exc.msg)


def _jnum(d: Decimal) -> int | float:
    """A Decimal as a JSON number (Binance sends leverage brackets as numbers)."""
    if d == d.to_integral_value():
        return int(d)
    return float(d)


# ---------------------------------------------------------------------------------------------
# default data (the sim's symbols and brackets)
# ---------------------------------------------------------------------------------------------


def _data_text(name: str) -> str:
    return resources.files("engine.exchange.sim").joinpath("data", name).read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def _default_exchange_info() -> dict:
    return json.loads(_data_text("exchange_info.json"))


@lru_cache(maxsize=1)
def _default_brackets() -> list:
    return json.loads(_data_text("leverage_brackets.json"))


def load_default_exchange_info() -> dict:
    """A fresh copy of the sim's ``/fapi/v1/exchangeInfo`` payload."""
    return copy.deepcopy(_default_exchange_info())


def load_default_rules() -> dict[str, SymbolRules]:
    """The sim's symbols (``data/exchange_info.json``) with their brackets merged in."""
    rules = parse_exchange_info(_default_exchange_info())
    brackets = parse_leverage_brackets(_default_brackets())
    return {s: with_brackets(r, brackets.get(s, r.brackets)) for s, r in rules.items()}


def _synth_symbol_entry(r: SymbolRules) -> dict:
    """exchangeInfo entry for a symbol that is not in the bundled file."""
    pf, ls, ms = r.price_filter, r.lot_size, r.market_lot_size
    filters: list[dict] = [
        {"filterType": "PRICE_FILTER", "minPrice": fmt(pf.min_price), "maxPrice": fmt(pf.max_price),
         "tickSize": fmt(pf.tick_size)},
        {"filterType": "LOT_SIZE", "minQty": fmt(ls.min_qty), "stepSize": fmt(ls.step_size), "maxQty": fmt(ls.max_qty)},
        {"filterType": "MARKET_LOT_SIZE", "minQty": fmt(ms.min_qty), "stepSize": fmt(ms.step_size),
         "maxQty": fmt(ms.max_qty)},
        {"filterType": "MAX_NUM_ORDERS", "limit": r.max_num_orders},
        {"filterType": "MIN_NOTIONAL", "notional": fmt(r.min_notional)},
    ]
    if r.percent_price is not None:
        pp = r.percent_price
        filters.append({"filterType": "PERCENT_PRICE", "multiplierUp": fmt(pp.multiplier_up),
                        "multiplierDown": fmt(pp.multiplier_down), "multiplierDecimal": str(pp.multiplier_decimal)})
    filters.append({"filterType": "POSITION_RISK_CONTROL", "positionControlSide": "NONE"})
    return {
        "symbol": r.symbol, "pair": r.symbol, "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
        "onboardDate": 0, "status": r.status, "maintMarginPercent": "2.5000", "requiredMarginPercent": "5.0000",
        "baseAsset": r.base_asset, "quoteAsset": r.quote_asset, "marginAsset": r.quote_asset,
        "pricePrecision": _decimals(pf.tick_size), "quantityPrecision": _decimals(ls.step_size),
        "baseAssetPrecision": 8, "quotePrecision": 8, "underlyingType": "COIN", "underlyingSubType": [],
        "triggerProtect": fmt(r.trigger_protect), "liquidationFee": "0.012500", "marketTakeBound": "0.05",
        "maxMoveOrderLimit": 10000, "filters": filters,
        "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET",
                       "TRAILING_STOP_MARKET"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"], "permissionSets": [],
    }


# ---------------------------------------------------------------------------------------------
# state records
# ---------------------------------------------------------------------------------------------


class _Pos:
    """One position (per symbol and positionSide). ``amt`` is signed (SHORT side negative)."""

    __slots__ = ("side", "amt", "entry", "iw", "fees", "cr", "update", "lp", "lp_ver")

    def __init__(self, side: str) -> None:
        self.side = side
        self.amt = ZERO
        self.entry = ZERO
        self.iw = ZERO  # isolated wallet
        self.fees = ZERO  # commissions paid on the open position (break-even price)
        self.cr = ZERO  # cumulative realised PnL of this position side
        self.update = 0
        self.lp = ZERO
        self.lp_ver = -1


class _Order:
    """A plain order (``/fapi/v1/order``), an algo child or a liquidation order."""

    __slots__ = (
        "order_id", "client_id", "symbol", "side", "ps", "type", "orig_type", "tif", "qty", "price",
        "reduce_only", "close_position", "status", "executed", "cum_quote", "avg", "stop_price", "wt",
        "pp", "time", "update_time", "algo", "activate_price", "price_rate", "stp", "pm", "gtd",
    )

    def __init__(self, order_id: int, client_id: str, symbol: str, side: str, ps: str, otype: str, tif: str,
                 qty: Decimal, price: Decimal, reduce_only: bool, now: int) -> None:
        self.order_id = order_id
        self.client_id = client_id
        self.symbol = symbol
        self.side = side
        self.ps = ps
        self.type = otype
        self.orig_type = otype
        self.tif = tif
        self.qty = qty
        self.price = price
        self.reduce_only = reduce_only
        self.close_position = False
        self.status = NEW
        self.executed = ZERO
        self.cum_quote = ZERO
        self.avg = ZERO
        self.stop_price = ZERO
        self.wt = _CONTRACT
        self.pp = False
        self.time = now
        self.update_time = now
        self.algo: _Algo | None = None
        self.activate_price: Decimal | None = None
        self.price_rate: Decimal | None = None
        self.stp = "EXPIRE_MAKER"
        self.pm = "NONE"
        self.gtd = 0


class _Algo:
    """A conditional order of the Algo Service (``/fapi/v1/algoOrder``)."""

    __slots__ = (
        "algo_id", "client_id", "symbol", "side", "ps", "type", "tif", "qty", "price", "trigger", "wt",
        "close_position", "pp", "reduce_only", "activate", "callback", "status", "actual_order_id",
        "actual_price", "actual_qty", "act", "create_time", "update_time", "trigger_time", "stp", "pm",
        "gtd", "activated", "extreme", "rm",
    )

    def __init__(self) -> None:
        self.qty: Decimal | None = None
        self.price = ZERO
        self.trigger = ZERO
        self.activate: Decimal | None = None
        self.callback: Decimal | None = None
        self.status = NEW
        self.actual_order_id: int | None = None
        self.actual_price = ZERO
        self.actual_qty = ZERO
        self.act = "0"
        self.trigger_time = 0
        self.activated = False
        self.extreme: Decimal | None = None
        self.rm = ""


_POS_INF = Decimal("Infinity")
_NEG_INF = Decimal("-Infinity")


def _reach(cur: Decimal, p1: Decimal, level: Decimal, up: bool) -> Decimal | None:
    """Distance travelled from ``cur`` toward ``p1`` before the price touches ``level``
    (0 when already there or beyond), or None if this move does not reach it. ``up`` says the
    level fires when the price is at or above it."""
    if up:
        if cur >= level:
            return ZERO
        return level - cur if p1 >= level else None
    if cur <= level:
        return ZERO
    return cur - level if p1 <= level else None


def _order_options(params: Mapping[str, Any], *, default_stp: str) -> tuple[str, str]:
    """``newOrderRespType`` and ``selfTradePreventionMode`` (validated); ``priceMatch`` must be NONE.
    Shared by ``/fapi/v1/order`` (STP default EXPIRE_MAKER) and ``/fapi/v1/algoOrder`` (NONE)."""
    resp_type = _get(params, "newOrderRespType") or "ACK"
    if resp_type not in ("ACK", "RESULT"):
        raise _invalid("newOrderRespType")
    if (_get(params, "priceMatch") or "NONE") != "NONE":
        raise _invalid("priceMatch")
    stp = _get(params, "selfTradePreventionMode") or default_stp
    if stp not in _STP_MODES:
        raise _invalid("selfTradePreventionMode")
    return resp_type, stp


class _Sym:
    """Per-symbol state. ``busy`` is False when there is nothing for a candle to do."""

    __slots__ = (
        "symbol", "rules", "last", "mark", "cur", "leverage", "margin_type", "positions", "orders", "algos",
        "busy", "price_dec", "qty_dec", "mqty_dec", "max_leverage", "band_lo", "band_hi", "band_ver",
    )

    def __init__(self, rules: SymbolRules, leverage: int, margin_type: MarginType, hedge: bool) -> None:
        self.symbol = rules.symbol
        self.rules = rules
        self.last: Decimal | None = None
        self.mark: Decimal | None = None
        self.cur = ZERO
        self.max_leverage = rules.brackets[0].initial_leverage if rules.brackets else 125
        self.leverage = max(1, min(leverage, self.max_leverage))
        self.margin_type = margin_type
        self.positions: dict[str, _Pos] = {}
        self.set_mode(hedge)
        self.orders: dict[int, _Order] = {}  # resting (open) plain orders
        self.algos: dict[int, _Algo] = {}  # untriggered algo orders
        self.busy = False
        # cached quiet band: nothing fires while low > band_lo and high < band_hi
        self.band_lo = _POS_INF  # invalid until computed (low > +inf is never true)
        self.band_hi = _NEG_INF
        self.band_ver = -1
        # allowed decimals: those of the grid (tick/step anchored at minPrice/minQty)
        pf, ls, ms = rules.price_filter, rules.lot_size, rules.market_lot_size
        self.price_dec = max(_decimals(pf.tick_size), _decimals(pf.min_price)) if pf.tick_size else 20
        self.qty_dec = max(_decimals(ls.step_size), _decimals(ls.min_qty)) if ls.step_size else 20
        self.mqty_dec = max(_decimals(ms.step_size), _decimals(ms.min_qty)) if ms.step_size else 20

    def set_mode(self, hedge: bool) -> None:
        self.positions = {LONG: _Pos(LONG), SHORT: _Pos(SHORT)} if hedge else {BOTH: _Pos(BOTH)}

    def has_position(self) -> bool:
        for p in self.positions.values():
            if p.amt:
                return True
        return False

    def net_amt(self) -> Decimal:
        n = ZERO
        for p in self.positions.values():
            n += p.amt
        return n

    def touch(self) -> None:
        self.busy = bool(self.orders) or bool(self.algos) or self.has_position()


# ---------------------------------------------------------------------------------------------
# the exchange
# ---------------------------------------------------------------------------------------------


class SimExchange:
    """Binance USDⓈ-M futures exchange for one USDT (single-asset mode) account. See module doc."""

    def __init__(
        self,
        rules: dict[str, SymbolRules],
        *,
        starting_balance: Decimal = Decimal("10000"),
        taker_fee_rate: Decimal = Decimal("0.0005"),
        maker_fee_rate: Decimal = Decimal("0.0002"),
        slippage_bps: Decimal = Decimal("0"),
        funding_rates: dict[str, dict[int, Decimal]] | None = None,
        default_funding_rate: Decimal = Decimal("0.0001"),
        funding_interval_ms: int = 8 * 3600 * 1000,
        position_mode: PositionMode = PositionMode.ONEWAY,
        default_leverage: int = 20,
        default_margin_type: MarginType = MarginType.CROSSED,
        start_time_ms: int = 0,
    ) -> None:
        if funding_interval_ms <= 0:
            raise ValueError("funding_interval_ms must be positive")
        self._rules = dict(rules)
        self._hedge = PositionMode(position_mode) is PositionMode.HEDGE
        self._syms: dict[str, _Sym] = {
            s: _Sym(r, default_leverage, MarginType(default_margin_type), self._hedge) for s, r in rules.items()
        }
        self._starting_balance = Decimal(starting_balance)
        self._wallet = Decimal(starting_balance)
        self._iw_total = ZERO
        self._taker = Decimal(taker_fee_rate)
        self._maker = Decimal(maker_fee_rate)
        self._slip = Decimal(slippage_bps) / _BPS
        self._default_rate = Decimal(default_funding_rate)
        self._interval = int(funding_interval_ms)
        self._fr: dict[str, dict[int, Decimal]] = {s: dict(m) for s, m in (funding_rates or {}).items()}
        self._fr_keys: dict[str, list[int]] = {s: sorted(m) for s, m in self._fr.items()}
        self.now_ms = int(start_time_ms)
        self._next_funding = (self.now_ms // self._interval + 1) * self._interval
        # user-data events not yet drained; drivers may test it for truth (read-only)
        self.pending_events: list[dict] = []
        self._trades: list[dict] = []
        self._funding: list[dict] = []
        self._orders_all: dict[int, _Order] = {}
        self._order_cids: dict[tuple[str, str], int] = {}
        self._algos_all: dict[int, _Algo] = {}
        self._algo_cids: dict[str, int] = {}
        self._next_order_id = 4_000_000_000
        self._next_algo_id = 1_000_000_000_000
        self._next_trade_id = 100_000_000
        self._liq_seq = 0
        self._ver = 0  # bumped whenever wallet, positions, orders or algo orders change (caches)
        # fault hook (``LocalExchange.faults.split_next_fill``): the next ``split_fills`` fills
        # (liquidations excepted) are booked as two fills of about half the quantity each
        self.split_fills = 0

    # -- introspection ----------------------------------------------------------------------

    @property
    def rules(self) -> dict[str, SymbolRules]:
        """The symbols' exchange rules (read-only view; do not mutate)."""
        return self._rules

    def wallet_balance(self) -> Decimal:
        return self._wallet

    def all_fills(self) -> list[dict]:
        """Every ``userTrades`` row ever, across symbols, in execution order."""
        return [dict(r) for r in self._trades]

    def funding_history(self) -> list[dict]:
        """Every funding payment (``/fapi/v1/income`` FUNDING_FEE style, plain Decimals).

        Rows: ``symbol``, ``positionSide``, ``time`` (funding instant, ms), ``rate``, ``mark``,
        ``amount`` (signed, positive = received).
        """
        return [dict(r) for r in self._funding]

    def has_events(self) -> bool:
        """True when user-data events are waiting to be drained (cheap; called per candle)."""
        return bool(self.pending_events)

    def drain_events(self) -> list[dict]:
        ev = self.pending_events
        self.pending_events = []
        return ev

    # -- market data / clock ----------------------------------------------------------------

    def exchange_info(self) -> dict:
        base = _default_exchange_info()
        by_sym = {s["symbol"]: s for s in base.get("symbols", [])}
        symbols = [copy.deepcopy(by_sym[s]) if s in by_sym else _synth_symbol_entry(r) for s, r in self._rules.items()]
        return {
            "timezone": base.get("timezone", "UTC"),
            "serverTime": self.now_ms,
            "futuresType": base.get("futuresType", "U_MARGINED"),
            "rateLimits": copy.deepcopy(base.get("rateLimits", [])),
            "exchangeFilters": copy.deepcopy(base.get("exchangeFilters", [])),
            "assets": copy.deepcopy(base.get("assets", [])),
            "symbols": symbols,
        }

    def advance_time(self, now_ms: int) -> None:
        """Move the clock forward (never back), applying every funding instant crossed."""
        if now_ms >= self._next_funding:
            self._cross_funding(now_ms)
        if now_ms > self.now_ms:
            self.now_ms = now_ms

    def set_mark_price(self, symbol: str, price: Decimal) -> None:
        """Override the mark (tests, mark stream); fires MARK_PRICE triggers and liquidations."""
        st = self._syms.get(symbol)
        if st is None:
            raise _err(-1121, "Invalid symbol.")
        st.mark = Decimal(price)
        if st.busy:
            self._mark_events(st)

    def on_candle(self, candle: Candle) -> None:
        """Feed one closed kline: funding up to its open, then the intrabar path (module doc)."""
        st = self._syms.get(candle.symbol)
        if st is None or not candle.closed:
            return
        t = candle.open_time_ms
        if t >= self._next_funding:
            self._cross_funding(t)
        if st.busy:
            if t > self.now_ms:
                self.now_ms = t
            # fast path: the cached quiet band says nothing can fire inside this candle's range
            if st.band_ver != self._ver or not (candle.low > st.band_lo and candle.high < st.band_hi):
                self._walk(st, candle)
        close = candle.close
        st.last = close
        st.mark = close
        t = candle.close_time_ms
        if t > self.now_ms:
            self.now_ms = t
            if t >= self._next_funding:
                self._cross_funding(t)

    # -- REST: plain orders -----------------------------------------------------------------

    def new_order(self, params: Mapping[str, Any]) -> dict:
        """``POST /fapi/v1/order`` (MARKET and LIMIT)."""
        st = self._symbol(params)
        side = self._side(params)
        otype = _req(params, "type")
        if otype in _ALGO_TYPES:
            raise _err(-4120, _MSG_4120)
        if otype not in (MARKET, LIMIT):
            raise _err(-1116, "Invalid orderType.")
        ps = self._position_side(params)
        reduce_only = _flag(params, "reduceOnly")
        if reduce_only is not None and self._hedge and reduce_only:
            raise _not_required("reduceOnly")
        reduce_only = bool(reduce_only)
        if _get(params, "closePosition") is not None:
            raise _not_required("closePosition")
        for name in ("stopPrice", "activationPrice", "callbackRate"):
            if _get(params, name) is not None:
                raise _not_required(name)
        market = otype == MARKET
        qty = _num(params, "quantity", required=True)
        assert qty is not None
        price = _num(params, "price", required=not market)
        if market and price is not None:
            raise _not_required("price")
        tif = _get(params, "timeInForce")
        if market:
            tif = "GTC"
        else:
            if tif is None:
                raise _mandatory("timeInForce")
            if tif not in _TIFS:
                raise _err(-1115, "Invalid timeInForce.")
        resp_type, stp = _order_options(params, default_stp="EXPIRE_MAKER")
        cid = self._client_id(params, "newClientOrderId", st.symbol)
        # precision, then the symbol filters in Binance's order
        if price is not None and _decimals(price) > st.price_dec:
            raise _err(-1111, "Precision is over the maximum defined for this asset.")
        if _decimals(qty) > (st.mqty_dec if market else st.qty_dec):
            raise _err(-1111, "Precision is over the maximum defined for this asset.")
        rules = st.rules
        try:
            if price is not None:
                rules.check_price(price)
            rules.check_qty(qty, market)
        except FilterError as exc:
            raise _filter(exc) from None
        last = st.last if st.last is not None else st.mark
        if market and last is None:
            raise _err(-2020, "Unable to fill.")
        closing = reduce_only or self._is_hedge_close(side, ps)
        try:
            if not market and st.mark is not None:
                rules.check_percent_price(side, price, st.mark)  # type: ignore[arg-type]
            ref = price if price is not None else (st.mark if st.mark is not None else last)
            rules.check_notional(qty, ref, reduce_only=closing)  # type: ignore[arg-type]
        except FilterError as exc:
            raise _filter(exc) from None
        if not market and len(st.orders) + len(st.algos) >= rules.max_num_orders:
            raise _err(-2025, "Reach max open order limit.")
        # marketability and fill price
        marketable = market
        fill_price = ZERO
        if market:
            fill_price = self._taker_price(st, side, last)  # type: ignore[arg-type]
        elif last is not None:
            assert price is not None
            if (side == BUY and price >= last) or (side == SELL and price <= last):
                marketable = True
                tp = self._taker_price(st, side, last)
                fill_price = min(price, tp) if side == BUY else max(price, tp)
        # margin (closing orders never need margin) then reduce-only rules
        if closing:
            close_qty, _ = self._split(st, side, ps, qty)
            if close_qty == 0:
                raise _err(-2022, "ReduceOnly Order is rejected.")
            qty = close_qty
        elif marketable and tif != "GTX":  # a crossing GTX is rejected below (-5022)
            self._check_fill_margin(st, side, ps, qty, fill_price)
        # time in force outcome
        if not market:
            if tif == "GTX" and marketable:
                raise _err(-5022, "Due to the order could not be executed as maker, the Post Only order will be rejected.")
            if tif == "FOK" and not marketable:
                raise _err(-5021, "Due to the order could not be filled immediately, the FOK order has been rejected.")
        if not marketable and tif in ("GTC", "GTX") and not closing:
            assert price is not None
            self._check_resting_margin(st, side, ps, otype, tif, qty, price)
        o = self._make_order(st, cid, side, ps, otype, tif, qty, price if price is not None else ZERO, reduce_only)
        o.stp = stp
        self._register_order(o)
        self._emit_order(o, NEW)
        ack = self._order_json(o, new=True)
        if marketable:
            self._fill(st, o, qty, fill_price, maker=False)
        elif tif == "IOC":
            o.status = EXPIRED
            self._emit_order(o, EXPIRED, er="2")
        else:
            st.orders[o.order_id] = o
            st.touch()
        if resp_type == "ACK":
            return ack
        return self._order_json(o, new=True)

    def cancel_order(self, params: Mapping[str, Any]) -> dict:
        """``DELETE /fapi/v1/order``."""
        st = self._symbol(params)
        o = self._find_order(st, params)
        if o is None or o.order_id not in st.orders:
            raise _err(-2011, "Unknown order sent.")
        self._end_order(st, o, CANCELED, CANCELED)
        st.touch()
        return self._order_json(o, new=True)

    def query_order(self, params: Mapping[str, Any]) -> dict:
        """``GET /fapi/v1/order``."""
        st = self._symbol(params)
        o = self._find_order(st, params)
        if o is None:
            raise _err(-2013, "Order does not exist.")
        return self._order_json(o, query=True)

    def open_orders(self, params: Mapping[str, Any]) -> list:
        """``GET /fapi/v1/openOrders`` (untriggered algo orders are not listed)."""
        if _get(params, "symbol") is not None:
            syms = [self._symbol(params)]
        else:
            syms = list(self._syms.values())
        out = []
        for st in syms:
            for oid in sorted(st.orders):
                out.append(self._order_json(st.orders[oid], query=True))
        return out

    def cancel_all_open_orders(self, params: Mapping[str, Any]) -> dict:
        """``DELETE /fapi/v1/allOpenOrders`` (plain orders only)."""
        st = self._symbol(params)
        for oid in sorted(st.orders):
            self._end_order(st, st.orders[oid], CANCELED, CANCELED)
        st.touch()
        return {"code": 200, "msg": _MSG_CANCEL_ALL}

    # -- REST: algo orders ------------------------------------------------------------------

    def new_algo_order(self, params: Mapping[str, Any]) -> dict:
        """``POST /fapi/v1/algoOrder`` (``algoType=CONDITIONAL``)."""
        algo_type = _req(params, "algoType")
        if algo_type != "CONDITIONAL":
            raise _invalid("algoType")
        st = self._symbol(params)
        side = self._side(params)
        otype = _req(params, "type")
        if otype not in _ALGO_TYPES:
            raise _err(-1116, "Invalid orderType.")
        ps = self._position_side(params)
        reduce_only = _flag(params, "reduceOnly")
        if reduce_only is not None and self._hedge and reduce_only:
            raise _not_required("reduceOnly")
        close_position = bool(_flag(params, "closePosition"))
        price_protect = bool(_flag(params, "priceProtect"))
        market = otype in (STOP_MARKET, TAKE_PROFIT_MARKET, TRAILING)
        qty = _num(params, "quantity")
        price = _num(params, "price")
        trigger = _num(params, "triggerPrice")
        activate = _num(params, "activatePrice")
        callback = _num(params, "callbackRate")
        if close_position:
            if otype not in (STOP_MARKET, TAKE_PROFIT_MARKET):
                raise _not_required("closePosition")
            if qty is not None:
                raise _err(-4137, "Quantity must be zero with closePosition equals true.")
            if reduce_only:
                raise _err(-4138, "Reduce only must be true with closePosition equals true.")
            if self._hedge and ((side == BUY and ps == LONG) or (side == SELL and ps == SHORT)):
                raise _err(-2022, "ReduceOnly Order is rejected.")
        elif qty is None:
            raise _mandatory("quantity")
        if market and price is not None:
            raise _not_required("price")
        if not market and price is None:
            raise _mandatory("price")
        if otype == TRAILING:
            if trigger is not None:
                raise _not_required("triggerPrice")
            if callback is None:
                raise _mandatory("callbackRate")
            if not (Decimal("0.1") <= callback <= Decimal("20")):
                raise _invalid("callbackRate")
        else:
            if trigger is None:
                raise _mandatory("triggerPrice")
            if activate is not None:
                raise _not_required("activatePrice")
            if callback is not None:
                raise _not_required("callbackRate")
        tif = _get(params, "timeInForce") or "GTC"
        if tif not in _TIFS:
            raise _err(-1115, "Invalid timeInForce.")
        wt = _get(params, "workingType") or _CONTRACT
        if wt not in (_CONTRACT, _MARK):
            raise _invalid("workingType")
        resp_type, stp = _order_options(params, default_stp="NONE")
        cid = self._client_id(params, "clientAlgoId", st.symbol)
        for p in (price, trigger, activate):
            if p is not None and _decimals(p) > st.price_dec:
                raise _err(-1111, "Precision is over the maximum defined for this asset.")
        if qty is not None and _decimals(qty) > (st.mqty_dec if market else st.qty_dec):
            raise _err(-1111, "Precision is over the maximum defined for this asset.")
        rules = st.rules
        try:
            for p in (trigger, price, activate):
                if p is not None:
                    rules.check_price(p)
            if qty is not None:
                rules.check_qty(qty, market)
        except FilterError as exc:
            raise _filter(exc) from None
        closing = close_position or bool(reduce_only) or self._is_hedge_close(side, ps)
        if qty is not None:
            ref = price if price is not None else (trigger if trigger is not None else (activate or st.last or st.mark))
            if ref is not None:
                try:
                    rules.check_notional(qty, ref, reduce_only=closing)
                except FilterError as exc:
                    raise _filter(exc) from None
        n_algos = sum(len(s.algos) for s in self._syms.values())
        if n_algos >= _MAX_OPEN_ALGOS:
            raise _err(-4045, "Reach max stop order limit.")
        # immediate trigger (-2021)
        ref_price = st.mark if wt == _MARK else st.last
        if ref_price is None:
            ref_price = st.last if st.last is not None else st.mark
        if ref_price is not None:
            if otype == TRAILING:
                if activate is not None and (
                    (side == BUY and activate >= ref_price) or (side == SELL and activate <= ref_price)
                ):
                    raise _err(-2021, "Order would immediately trigger.")
            else:
                assert trigger is not None
                if self._algo_condition(otype, side, trigger, ref_price):
                    raise _err(-2021, "Order would immediately trigger.")
        a = _Algo()
        self._next_algo_id += 1
        a.algo_id = self._next_algo_id
        a.client_id = cid if cid is not None else f"simalgo{a.algo_id}"
        a.symbol = st.symbol
        a.side = side
        a.ps = ps
        a.type = otype
        a.tif = tif
        a.qty = qty
        a.price = price if price is not None else ZERO
        a.trigger = trigger if trigger is not None else ZERO
        a.wt = wt
        a.close_position = close_position
        a.pp = price_protect
        a.reduce_only = bool(reduce_only)
        a.activate = activate
        a.callback = callback
        a.create_time = a.update_time = self.now_ms
        a.stp = stp
        a.pm = "NONE"  # priceMatch other than NONE is refused by _order_options
        a.gtd = 0
        if otype == TRAILING and activate is None:
            a.activated = True
            a.extreme = ref_price
        st.algos[a.algo_id] = a
        self._algos_all[a.algo_id] = a
        self._algo_cids[a.client_id] = a.algo_id
        st.touch()
        self._emit_algo(a)
        return self._algo_json(a, full=False)

    def cancel_algo_order(self, params: Mapping[str, Any]) -> dict:
        """``DELETE /fapi/v1/algoOrder``."""
        a = self._find_algo(params)
        if a is None or a.status != NEW:
            raise _err(-2011, "Unknown order sent.")
        st = self._syms[a.symbol]
        self._cancel_algo(st, a)
        st.touch()
        return {"algoId": a.algo_id, "clientAlgoId": a.client_id, "code": "200", "msg": "success"}

    def query_algo_order(self, params: Mapping[str, Any]) -> dict:
        """``GET /fapi/v1/algoOrder``."""
        a = self._find_algo(params)
        if a is None:
            raise _err(-2013, "Order does not exist.")
        return self._algo_json(a, full=True)

    def open_algo_orders(self, params: Mapping[str, Any]) -> list:
        """``GET /fapi/v1/openAlgoOrders`` (``algoType``, ``symbol``, ``algoId`` all optional)."""
        algo_type = _get(params, "algoType")
        if algo_type is not None and algo_type != "CONDITIONAL":
            raise _invalid("algoType")
        syms = [self._symbol(params)] if _get(params, "symbol") is not None else list(self._syms.values())
        algo_id = _int(params, "algoId")
        out = []
        for st in syms:
            for aid in sorted(st.algos):
                if algo_id is not None and aid != algo_id:
                    continue
                out.append(self._algo_json(st.algos[aid], full=True))
        return out

    def cancel_all_algo_open_orders(self, params: Mapping[str, Any]) -> dict:
        """``DELETE /fapi/v1/algoOpenOrders``."""
        st = self._symbol(params)
        for aid in sorted(st.algos):
            self._cancel_algo(st, st.algos[aid])
        st.touch()
        return {"code": 200, "msg": _MSG_CANCEL_ALL}

    # -- REST: account ----------------------------------------------------------------------

    def position_risk(self, params: Mapping[str, Any]) -> list:
        """``GET /fapi/v3/positionRisk``: symbols with a position or open orders."""
        syms = [self._symbol(params)] if _get(params, "symbol") is not None else list(self._syms.values())
        out = []
        for st in syms:
            if not (st.orders or st.algos or st.has_position()):
                continue
            oo = self._oo_margin(st)
            bid, ask = self._book_notional(st)
            for pos in st.positions.values():
                mark = self._mark_of(st)
                upnl = (mark - pos.entry) * pos.amt if pos.amt else ZERO
                notional = pos.amt * mark
                pim = abs(notional) / st.leverage
                # open-order margin is reported on the row it would open (one-way: BOTH)
                ooim = self._oo_margin_side(st, pos.side) if self._hedge else oo
                iso = st.margin_type is MarginType.ISOLATED
                out.append({
                    "symbol": st.symbol,
                    "positionSide": pos.side,
                    "positionAmt": fmt(pos.amt),
                    "entryPrice": _f8(pos.entry),
                    "breakEvenPrice": _f8(self._bep(pos)),
                    "markPrice": _f8(mark),
                    "unRealizedProfit": _f8(upnl),
                    "liquidationPrice": _f8(self._liq_price(st, pos)),
                    "isolatedMargin": _f8(pos.iw + upnl) if iso and pos.amt else "0",
                    "notional": _f8(notional),
                    "marginAsset": "USDT",
                    "isolatedWallet": _f8(pos.iw) if iso else "0",
                    "initialMargin": _f8(pim + ooim),
                    "maintMargin": _f8(st.rules.maint_margin(notional) if pos.amt else ZERO),
                    "positionInitialMargin": _f8(pim),
                    "openOrderInitialMargin": _f8(ooim),
                    "adl": 0,
                    "bidNotional": _f8(bid),
                    "askNotional": _f8(ask),
                    "updateTime": pos.update,
                })
        return out

    def account(self, params: Mapping[str, Any]) -> dict:
        """``GET /fapi/v3/account`` (single-asset mode, USDT)."""
        t = self._totals()
        asset = {
            "asset": "USDT",
            "walletBalance": _f8(self._wallet),
            "unrealizedProfit": _f8(t["upnl"]),
            "marginBalance": _f8(self._wallet + t["upnl"]),
            "maintMargin": _f8(t["mm"]),
            "initialMargin": _f8(t["pim"] + t["ooim"]),
            "positionInitialMargin": _f8(t["pim"]),
            "openOrderInitialMargin": _f8(t["ooim"]),
            "crossWalletBalance": _f8(t["cw"]),
            "crossUnPnl": _f8(t["cupnl"]),
            "availableBalance": _f8(t["avail"]),
            "maxWithdrawAmount": _f8(t["maxw"]),
            "updateTime": self.now_ms,
        }
        positions = []
        for st in self._syms.values():
            if not (st.orders or st.algos or st.has_position()):
                continue
            mark = self._mark_of(st)
            iso = st.margin_type is MarginType.ISOLATED
            for pos in st.positions.values():
                upnl = (mark - pos.entry) * pos.amt if pos.amt else ZERO
                notional = pos.amt * mark
                ooim = self._oo_margin_side(st, pos.side) if self._hedge else self._oo_margin(st)
                positions.append({
                    "symbol": st.symbol,
                    "positionSide": pos.side,
                    "positionAmt": fmt(pos.amt),
                    "unrealizedProfit": _f8(upnl),
                    "isolatedMargin": _f8(pos.iw + upnl) if iso and pos.amt else "0",
                    "notional": _f8(notional),
                    "isolatedWallet": _f8(pos.iw) if iso else "0",
                    "initialMargin": _f8(abs(notional) / st.leverage + ooim),
                    "maintMargin": _f8(st.rules.maint_margin(notional) if pos.amt else ZERO),
                    "updateTime": pos.update,
                })
        return {
            "totalInitialMargin": asset["initialMargin"],
            "totalMaintMargin": asset["maintMargin"],
            "totalWalletBalance": asset["walletBalance"],
            "totalUnrealizedProfit": asset["unrealizedProfit"],
            "totalMarginBalance": asset["marginBalance"],
            "totalPositionInitialMargin": asset["positionInitialMargin"],
            "totalOpenOrderInitialMargin": asset["openOrderInitialMargin"],
            "totalCrossWalletBalance": asset["crossWalletBalance"],
            "totalCrossUnPnl": asset["crossUnPnl"],
            "availableBalance": asset["availableBalance"],
            "maxWithdrawAmount": asset["maxWithdrawAmount"],
            "assets": [asset],
            "positions": positions,
        }

    def balance(self, params: Mapping[str, Any]) -> list:
        """``GET /fapi/v3/balance``."""
        t = self._totals()
        return [{
            "accountAlias": "SimSim",
            "asset": "USDT",
            "balance": _f8(self._wallet),
            "crossWalletBalance": _f8(t["cw"]),
            "crossUnPnl": _f8(t["cupnl"]),
            "availableBalance": _f8(t["avail"]),
            "maxWithdrawAmount": _f8(t["maxw"]),
            "marginAvailable": True,
            "updateTime": self.now_ms,
        }]

    def user_trades(self, params: Mapping[str, Any]) -> list:
        """``GET /fapi/v1/userTrades``."""
        st = self._symbol(params)
        order_id = _int(params, "orderId")
        start = _int(params, "startTime")
        end = _int(params, "endTime")
        from_id = _int(params, "fromId")
        limit = _int(params, "limit")
        if limit is None:
            limit = 500
        if limit <= 0 or limit > 1000:
            raise _invalid("limit")
        if from_id is not None and (start is not None or end is not None):
            raise _err(-1128, "Combination of optional parameters invalid.")
        if start is not None and end is not None:
            if end - start > _SEVEN_DAYS_MS:
                raise _err(-1127, "More than 168 hours between startTime and endTime.")
        elif order_id is None and from_id is None:
            if start is not None:
                end = start + _SEVEN_DAYS_MS
            elif end is not None:
                start = end - _SEVEN_DAYS_MS
            else:
                end = self.now_ms
                start = end - _SEVEN_DAYS_MS
        rows = [r for r in self._trades if r["symbol"] == st.symbol]
        if order_id is not None:
            rows = [r for r in rows if r["orderId"] == order_id]
        if start is not None:
            rows = [r for r in rows if r["time"] >= start]
        if end is not None:
            rows = [r for r in rows if r["time"] <= end]
        if from_id is not None:
            rows = [r for r in rows if r["id"] >= from_id][:limit]
        else:
            rows = rows[-limit:]
        return [dict(r) for r in rows]

    def change_leverage(self, params: Mapping[str, Any]) -> dict:
        """``POST /fapi/v1/leverage``."""
        st = self._symbol(params)
        lev = _int(params, "leverage", required=True)
        assert lev is not None
        if lev < 1 or lev > st.max_leverage:
            raise _err(-4028, f"Leverage {lev} is not valid")
        rules = st.rules
        max_notional = rules.max_notional_for_leverage(lev)
        if st.has_position():
            if st.margin_type is MarginType.ISOLATED and lev < st.leverage:
                raise _err(-4161, "Leverage reduction is not supported in Isolated Margin Mode with open positions")
            mark = self._mark_of(st)
            for pos in st.positions.values():
                if max_notional is not None and abs(pos.amt) * mark > max_notional:
                    raise _err(-2027, "Exceeded the maximum allowable position at current leverage.")
        old = st.leverage
        st.leverage = lev
        if lev < old and (st.has_position() or st.orders) and self._available_raw() < 0:
            st.leverage = old
            raise _err(-2028, "Leverage is smaller than permitted: insufficient margin balance.")
        self._ver += 1
        self.pending_events.append({"e": "ACCOUNT_CONFIG_UPDATE", "E": self.now_ms, "T": self.now_ms,
                             "ac": {"s": st.symbol, "l": lev}})
        return {"leverage": lev, "maxNotionalValue": fmt(max_notional) if max_notional is not None else "0",
                "symbol": st.symbol}

    def change_margin_type(self, params: Mapping[str, Any]) -> dict:
        """``POST /fapi/v1/marginType`` (-4046 when unchanged)."""
        st = self._symbol(params)
        v = _req(params, "marginType").upper()
        if v == "CROSS":
            v = "CROSSED"
        if v not in ("ISOLATED", "CROSSED"):
            raise _invalid("marginType")
        mt = MarginType(v)
        if mt is st.margin_type:
            raise _err(-4046, "No need to change margin type.")
        if st.orders or st.algos:
            raise _err(-4047, "Margin type cannot be changed if there exists open orders.")
        if st.has_position():
            raise _err(-4048, "Margin type cannot be changed if there exists position.")
        st.margin_type = mt
        self._ver += 1
        return {"code": 200, "msg": "success"}

    def change_position_mode(self, params: Mapping[str, Any]) -> dict:
        """``POST /fapi/v1/positionSide/dual`` (all symbols)."""
        dual = _flag(params, "dualSidePosition")
        if dual is None:
            raise _mandatory("dualSidePosition")
        if dual == self._hedge:
            raise _err(-4059, "No need to change position side.")
        if any(st.orders or st.algos for st in self._syms.values()):
            raise _err(-4067, "Position side cannot be changed if there exists open orders.")
        if any(st.has_position() for st in self._syms.values()):
            raise _err(-4068, "Position side cannot be changed if there exists position.")
        self._hedge = dual
        for st in self._syms.values():
            st.set_mode(dual)
        self._ver += 1
        return {"code": 200, "msg": "success"}

    def get_position_mode(self, params: Mapping[str, Any]) -> dict:
        """``GET /fapi/v1/positionSide/dual``."""
        return {"dualSidePosition": self._hedge}

    def commission_rate(self, params: Mapping[str, Any]) -> dict:
        """``GET /fapi/v1/commissionRate`` (the sim's configured maker/taker rates)."""
        st = self._symbol(params)
        return {"symbol": st.symbol, "makerCommissionRate": fmt(self._maker),
                "takerCommissionRate": fmt(self._taker), "rpiCommissionRate": "0"}

    def symbol_config(self, params: Mapping[str, Any]) -> list:
        """``GET /fapi/v1/symbolConfig``: margin type and leverage per symbol (all without ``symbol``)."""
        syms = [self._symbol(params)] if _get(params, "symbol") is not None else list(self._syms.values())
        out = []
        for st in syms:
            cap = st.rules.max_notional_for_leverage(st.leverage)
            out.append({"symbol": st.symbol, "marginType": st.margin_type.value, "isAutoAddMargin": False,
                        "leverage": st.leverage, "maxNotionalValue": fmt(cap) if cap is not None else "0"})
        return out

    def leverage_brackets(self, params: Mapping[str, Any]) -> list:
        """``GET /fapi/v1/leverageBracket`` (numbers are JSON numbers, like Binance)."""
        syms = [self._symbol(params)] if _get(params, "symbol") is not None else list(self._syms.values())
        out = []
        for st in syms:
            out.append({
                "symbol": st.symbol,
                "brackets": [
                    {
                        "bracket": b.bracket,
                        "initialLeverage": b.initial_leverage,
                        "notionalCap": _jnum(b.notional_cap),
                        "notionalFloor": _jnum(b.notional_floor),
                        "maintMarginRatio": float(b.maint_margin_ratio),
                        "cum": float(b.cum),
                    }
                    for b in st.rules.brackets
                ],
            })
        return out

    def premium_index(self, params: Mapping[str, Any]) -> dict | list:
        """``GET /fapi/v1/premiumIndex`` (object with ``symbol``, array without)."""
        if _get(params, "symbol") is not None:
            return self._premium(self._symbol(params))
        return [self._premium(st) for st in self._syms.values()]

    # =========================================================================================
    # internals: parameter helpers
    # =========================================================================================

    def _symbol(self, params: Mapping[str, Any]) -> _Sym:
        s = _req(params, "symbol")
        st = self._syms.get(s)
        if st is None:
            raise _err(-1121, "Invalid symbol.")
        return st

    @staticmethod
    def _side(params: Mapping[str, Any]) -> str:
        side = _req(params, "side")
        if side not in (BUY, SELL):
            raise _err(-1117, "Invalid side.")
        return side

    def _position_side(self, params: Mapping[str, Any]) -> str:
        ps = _get(params, "positionSide")
        if ps is not None and ps not in (BOTH, LONG, SHORT):
            raise _err(-4060, "Invalid position side.")
        if self._hedge:
            if ps not in (LONG, SHORT):
                raise _err(-4061, "Order's position side does not match user's setting.")
            return ps
        if ps is not None and ps != BOTH:
            raise _err(-4061, "Order's position side does not match user's setting.")
        return BOTH

    def _client_id(self, params: Mapping[str, Any], name: str, symbol: str) -> str | None:
        cid = _get(params, name)
        if cid is None:
            return None
        if len(cid) > 36:
            raise _err(-4015, "Client order id length should not be more than 36 chars")
        if not _CID_RE.match(cid):
            raise _err(-1100, f"Illegal characters found in parameter '{name}'; legal range is '{_CID_RANGE}'.")
        oid = self._order_cids.get((symbol, cid))
        if oid is not None and self._orders_all[oid].status in (NEW, PARTIALLY_FILLED):
            raise _err(-4116, "clientOrderId is duplicated.")
        aid = self._algo_cids.get(cid)
        if aid is not None and self._algos_all[aid].status in (NEW, TRIGGERING, TRIGGERED):
            raise _err(-4116, "clientOrderId is duplicated.")
        return cid

    def _is_hedge_close(self, side: str, ps: str) -> bool:
        return (ps == LONG and side == SELL) or (ps == SHORT and side == BUY)

    def _find_order(self, st: _Sym, params: Mapping[str, Any]) -> _Order | None:
        oid = _int(params, "orderId")
        if oid is None:
            cid = _get(params, "origClientOrderId")
            if cid is None:
                raise _err(-1102, "Either orderId or origClientOrderId must be sent.")
            oid = self._order_cids.get((st.symbol, cid))
            if oid is None:
                return None
        o = self._orders_all.get(oid)
        if o is None or o.symbol != st.symbol:
            return None
        return o

    def _find_algo(self, params: Mapping[str, Any]) -> _Algo | None:
        aid = _int(params, "algoId")
        if aid is None:
            cid = _get(params, "clientAlgoId")
            if cid is None:
                raise _err(-1102, "Either algoId or clientAlgoId must be sent.")
            aid = self._algo_cids.get(cid)
            if aid is None:
                return None
        return self._algos_all.get(aid)

    # =========================================================================================
    # internals: prices, margin, positions
    # =========================================================================================

    def _mark_of(self, st: _Sym) -> Decimal:
        if st.mark is not None:
            return st.mark
        return st.last if st.last is not None else ZERO

    def _taker_price(self, st: _Sym, side: str, base: Decimal) -> Decimal:
        """``base`` moved against the taker by the slippage, on the tick (BUY up, SELL down)."""
        rules = st.rules
        if side == BUY:
            p = base * (ONE + self._slip) if self._slip else base
            p = rules.round_price_up(p)
        else:
            p = base * (ONE - self._slip) if self._slip else base
            p = rules.round_price_down(p)
            if p <= 0:
                p = rules.price_filter.tick_size or base
        return p

    def _split(self, st: _Sym, side: str, ps: str, qty: Decimal) -> tuple[Decimal, Decimal]:
        """(closing qty, opening qty) of an order against the current position."""
        amt = st.positions[ps].amt
        if ps == BOTH:
            if side == BUY and amt < 0:
                c = min(qty, -amt)
            elif side == SELL and amt > 0:
                c = min(qty, amt)
            else:
                c = ZERO
            return c, qty - c
        if ps == LONG:
            return (min(qty, amt), ZERO) if side == SELL else (ZERO, qty)
        return (min(qty, -amt), ZERO) if side == BUY else (ZERO, qty)

    def _project(self, st: _Sym, pos: _Pos, side: str, qty: Decimal, price: Decimal):
        """Position after a fill: (amt, entry, realised pnl, close qty, open qty, isolated wallet)."""
        amt = pos.amt
        entry = pos.entry
        sgn = 1 if side == BUY else -1
        if amt == 0 or (amt > 0) == (sgn > 0):
            close = ZERO
        else:
            close = min(qty, abs(amt))
        open_ = qty - close
        rp = _q8((price - entry) * close) if amt > 0 else _q8((entry - price) * close)
        if not close:
            rp = ZERO
        new_amt = amt + qty if sgn > 0 else amt - qty
        if new_amt == 0:
            new_entry = ZERO
        elif open_ == 0:
            new_entry = entry
        elif close:
            new_entry = price
        else:
            new_entry = (abs(amt) * entry + qty * price) / abs(new_amt)
        iw = pos.iw
        if st.margin_type is MarginType.ISOLATED:
            if close:
                iw = ZERO if close == abs(amt) else _q8(iw * (abs(amt) - close) / abs(amt))
            if open_:
                iw += _q8(open_ * price / st.leverage)
        return new_amt, new_entry, rp, close, open_, iw

    def _contrib(self, st: _Sym, amt: Decimal, entry: Decimal, iw: Decimal, mark: Decimal) -> Decimal:
        """A position's contribution to the available balance (beyond the wallet)."""
        if st.margin_type is MarginType.ISOLATED:
            return -iw
        if not amt:
            return ZERO
        return (mark - entry) * amt - abs(amt) * mark / st.leverage

    def _oo_margin(self, st: _Sym, amt_override: Decimal | None = None) -> Decimal:
        """Initial margin of the resting orders that would open exposure."""
        if not st.orders:
            return ZERO
        if self._hedge:
            return self._oo_margin_side(st, LONG) + self._oo_margin_side(st, SHORT)
        amt = st.positions[BOTH].amt if amt_override is None else amt_override
        bq = bn = sq = sn = ZERO
        for o in st.orders.values():
            if o.reduce_only:
                continue
            rem = o.qty - o.executed
            if o.side == BUY:
                bq += rem
                bn += rem * o.price
            else:
                sq += rem
                sn += rem * o.price
        m = ZERO
        if bq:
            open_b = bq - min(bq, max(ZERO, -amt))
            if open_b:
                m += bn * open_b / bq
        if sq:
            open_s = sq - min(sq, max(ZERO, amt))
            if open_s:
                m += sn * open_s / sq
        return m / st.leverage

    def _oo_margin_side(self, st: _Sym, ps: str) -> Decimal:
        if not self._hedge:
            return self._oo_margin(st)
        opening = BUY if ps == LONG else SELL
        m = ZERO
        for o in st.orders.values():
            if o.ps == ps and o.side == opening:
                m += (o.qty - o.executed) * o.price
        return m / st.leverage

    def _book_notional(self, st: _Sym) -> tuple[Decimal, Decimal]:
        b = a = ZERO
        for o in st.orders.values():
            n = (o.qty - o.executed) * o.price
            if o.side == BUY:
                b += n
            else:
                a += n
        return b, a

    def _available_raw(self) -> Decimal:
        """Available balance before clamping at zero (may be negative after losses)."""
        avail = self._wallet
        for st in self._syms.values():
            if not st.busy and not st.orders:
                continue
            mark = self._mark_of(st)
            for pos in st.positions.values():
                if pos.amt or pos.iw:
                    avail += self._contrib(st, pos.amt, pos.entry, pos.iw, mark)
            avail -= self._oo_margin(st)
        return avail

    def _totals(self) -> dict[str, Decimal]:
        upnl = cupnl = pim = ooim = mm = ZERO
        for st in self._syms.values():
            if not (st.orders or st.has_position()):
                continue
            mark = self._mark_of(st)
            cross = st.margin_type is MarginType.CROSSED
            for pos in st.positions.values():
                if not pos.amt:
                    continue
                u = (mark - pos.entry) * pos.amt
                upnl += u
                if cross:
                    cupnl += u
                pim += abs(pos.amt) * mark / st.leverage
                mm += st.rules.maint_margin(pos.amt * mark)
            ooim += self._oo_margin(st)
        cw = self._wallet - self._iw_total
        avail = max(ZERO, self._available_raw())
        return {"upnl": upnl, "cupnl": cupnl, "pim": pim, "ooim": ooim, "mm": mm, "cw": cw, "avail": avail,
                "maxw": max(ZERO, min(avail, cw))}

    def _check_fill_margin(self, st: _Sym, side: str, ps: str, qty: Decimal, price: Decimal) -> None:
        """-2019 unless the available balance stays ≥ 0 after this taker fill (fee, slippage)."""
        pos = st.positions[ps]
        new_amt, new_entry, rp, close, open_, iw = self._project(st, pos, side, qty, price)
        if not open_:
            return
        mark = st.mark if st.mark is not None else price
        fee = _q8(price * qty * self._taker)
        after = self._available_raw()
        after -= self._contrib(st, pos.amt, pos.entry, pos.iw, mark)
        after += self._contrib(st, new_amt, new_entry, iw, mark)
        if not self._hedge:
            after += self._oo_margin(st) - self._oo_margin(st, new_amt)
        after += rp - fee
        max_notional = st.rules.max_notional_for_leverage(st.leverage)
        if max_notional is not None and abs(new_amt) * mark > max_notional:
            raise _err(-2027, "Exceeded the maximum allowable position at current leverage.")
        if after < 0:
            raise _err(-2019, "Margin is insufficient.")

    def _check_resting_margin(self, st: _Sym, side: str, ps: str, otype: str, tif: str, qty: Decimal,
                              price: Decimal) -> None:
        """-2019 when a resting order's open-order margin would make the available balance negative."""
        before = self._available_raw()
        st.orders[-1] = _Order(-1, "", st.symbol, side, ps, otype, tif, qty, price, False, self.now_ms)
        try:
            after = self._available_raw()
        finally:
            del st.orders[-1]
        if after < before and after < 0:
            raise _err(-2019, "Margin is insufficient.")

    def _bep(self, pos: _Pos) -> Decimal:
        if not pos.amt:
            return ZERO
        per_unit = pos.fees / abs(pos.amt)
        return pos.entry + per_unit if pos.amt > 0 else pos.entry - per_unit

    def _liq_price(self, st: _Sym, pos: _Pos) -> Decimal:
        """Liquidation price, one-position approximation (module doc); 0 when none."""
        if not pos.amt:
            return ZERO
        if pos.lp_ver == self._ver:
            return pos.lp
        q = abs(pos.amt)
        s = 1 if pos.amt > 0 else -1
        e = pos.entry
        wb = pos.iw if st.margin_type is MarginType.ISOLATED else self._wallet - self._iw_total
        rules = st.rules
        b = rules.bracket_for(q * e)
        lp = ZERO
        for _ in range(4):
            mmr, cum = (b.maint_margin_ratio, b.cum) if b is not None else (ZERO, ZERO)
            denom = q * mmr - s * q
            if denom == 0:
                lp = ZERO
                break
            lp = (wb + cum - s * q * e) / denom
            if lp <= 0:
                lp = ZERO
                break
            nb = rules.bracket_for(q * lp)
            if nb is b:
                break
            b = nb
        pos.lp = lp
        pos.lp_ver = self._ver
        return lp

    # =========================================================================================
    # internals: orders, fills, events
    # =========================================================================================

    def _make_order(self, st: _Sym, cid: str | None, side: str, ps: str, otype: str, tif: str, qty: Decimal,
                    price: Decimal, reduce_only: bool) -> _Order:
        self._next_order_id += 1
        oid = self._next_order_id
        return _Order(oid, cid if cid is not None else f"sim{oid}", st.symbol, side, ps, otype, tif, qty, price,
                      reduce_only, self.now_ms)

    def _register_order(self, o: _Order) -> None:
        self._orders_all[o.order_id] = o
        self._order_cids[(o.symbol, o.client_id)] = o.order_id

    def _order_json(self, o: _Order, *, new: bool = False, query: bool = False) -> dict:
        d: dict[str, Any] = {
            "orderId": o.order_id,
            "symbol": o.symbol,
            "status": o.status,
            "clientOrderId": o.client_id,
            "price": fmt(o.price),
            "avgPrice": fmt(o.avg),
            "origQty": fmt(o.qty),
            "executedQty": fmt(o.executed),
        }
        if new:
            d["cumQty"] = fmt(o.executed)
        d.update({
            "cumQuote": fmt(o.cum_quote),
            "timeInForce": o.tif,
            "type": o.type,
            "reduceOnly": o.reduce_only,
            "closePosition": o.close_position,
            "side": o.side,
            "positionSide": o.ps,
            "stopPrice": fmt(o.stop_price),
            "workingType": o.wt,
            "priceProtect": o.pp,
            "origType": o.orig_type,
            "priceMatch": o.pm,
            "selfTradePreventionMode": o.stp,
            "goodTillDate": o.gtd,
        })
        if o.orig_type == TRAILING:
            d["activatePrice"] = fmt(o.activate_price) if o.activate_price is not None else ""
            d["priceRate"] = fmt(o.price_rate) if o.price_rate is not None else ""
        if query:
            d["time"] = o.time
        d["updateTime"] = o.update_time
        return d

    def _emit_order(self, o: _Order, x: str, *, l: Decimal = ZERO, L: Decimal = ZERO, n: Decimal = ZERO,
                     t: int = 0, m: bool = False, rp: Decimal = ZERO, er: str = "0") -> None:
        now = self.now_ms
        b, a = self._book_notional(self._syms[o.symbol])
        d = {
            "s": o.symbol, "c": o.client_id, "S": o.side, "o": o.type, "f": o.tif, "q": fmt(o.qty),
            "p": fmt(o.price), "ap": fmt(o.avg), "sp": fmt(o.stop_price), "x": x, "X": o.status,
            "i": o.order_id, "l": fmt(l), "z": fmt(o.executed), "L": fmt(L), "N": "USDT", "n": fmt(n),
            "T": now, "t": t, "b": fmt(b), "a": fmt(a), "m": m, "R": o.reduce_only, "wt": o.wt,
            "ot": o.orig_type, "ps": o.ps, "cp": o.close_position, "rp": fmt(rp), "pP": o.pp, "si": 0, "ss": 0,
            "V": o.stp, "pm": o.pm, "gtd": o.gtd, "er": er,
        }
        if o.orig_type == TRAILING:
            d["AP"] = fmt(o.activate_price) if o.activate_price is not None else "0"
            d["cr"] = fmt(o.price_rate) if o.price_rate is not None else "0"
        self._ver += 1
        self.pending_events.append({"e": "ORDER_TRADE_UPDATE", "E": now, "T": now, "o": d})

    def _pos_entry(self, st: _Sym, pos: _Pos) -> dict:
        mark = self._mark_of(st)
        upnl = (mark - pos.entry) * pos.amt if pos.amt else ZERO
        iso = st.margin_type is MarginType.ISOLATED
        return {
            "s": st.symbol, "pa": fmt(pos.amt), "ep": _f8(pos.entry), "bep": _f8(self._bep(pos)),
            "cr": fmt(pos.cr), "up": _f8(upnl), "mt": "isolated" if iso else "cross",
            "iw": fmt(pos.iw) if iso else "0", "ps": pos.side,
        }

    def _emit_account(self, reason: str, positions: list[tuple[_Sym, _Pos]], bc: Decimal = ZERO) -> None:
        now = self.now_ms
        self.pending_events.append({
            "e": "ACCOUNT_UPDATE", "E": now, "T": now,
            "a": {
                "m": reason,
                "B": [{"a": "USDT", "wb": fmt(self._wallet), "cw": fmt(self._wallet - self._iw_total),
                       "bc": fmt(bc)}],
                "P": [self._pos_entry(st, p) for st, p in positions],
            },
        })

    def _set_iw(self, pos: _Pos, iw: Decimal) -> None:
        self._iw_total += iw - pos.iw
        pos.iw = iw

    def _fill(self, st: _Sym, o: _Order, qty: Decimal, price: Decimal, *, maker: bool,
              liquidation: bool = False) -> None:
        """Book one fill of ``o``: position, wallet, order state, trade row and events."""
        if self.split_fills and not liquidation and self._fill_in_two(st, o, qty, price, maker):
            return
        pos = st.positions[o.ps]
        old_abs = abs(pos.amt)
        old_iw = pos.iw
        new_amt, new_entry, rp, close, open_, iw = self._project(st, pos, o.side, qty, price)
        if liquidation:
            if st.margin_type is MarginType.ISOLATED:
                commission = max(ZERO, old_iw + rp)
            else:
                left = max(ZERO, self._wallet - self._iw_total + rp)
                commission = min(max(ZERO, _q8(st.rules.maint_margin(qty * price))), left)
        else:
            commission = _q8(price * qty * (self._maker if maker else self._taker))
        # break-even bookkeeping: fees carried by the open position
        fees = pos.fees
        if close:
            fees = ZERO if close == old_abs else fees * (old_abs - close) / old_abs
        if open_:
            fees += commission * open_ / qty
        pos.fees = fees if new_amt else ZERO
        pos.amt = new_amt
        pos.entry = new_entry
        pos.cr += rp
        pos.update = self.now_ms
        self._set_iw(pos, iw if new_amt else ZERO)
        self._wallet += rp - commission
        self._ver += 1
        # order
        o.executed += qty
        o.cum_quote += qty * price
        o.avg = o.cum_quote / o.executed if o.executed else ZERO
        o.status = FILLED if o.executed >= o.qty else PARTIALLY_FILLED
        o.update_time = self.now_ms
        if o.status == FILLED:
            st.orders.pop(o.order_id, None)
        self._next_trade_id += 1
        tid = self._next_trade_id
        self._trades.append({
            "buyer": o.side == BUY, "commission": fmt(commission), "commissionAsset": "USDT", "id": tid,
            "maker": maker, "orderId": o.order_id, "price": fmt(price), "qty": fmt(qty),
            "quoteQty": fmt(price * qty), "realizedPnl": fmt(rp), "side": o.side, "positionSide": o.ps,
            "symbol": st.symbol, "time": self.now_ms,
        })
        self._emit_order(o, "TRADE", l=qty, L=price, n=commission, t=tid, m=maker, rp=rp)
        self._emit_account("ORDER", [(st, pos)])
        # reduce-only / closing orders can no longer reduce a flat or flipped position
        if st.orders and (new_amt == 0 or close):
            self._expire_stale_reducers(st, pos)
        if o.status == FILLED and o.algo is not None:
            self._finish_algo(o.algo, o)
        st.touch()

    def _fill_in_two(self, st: _Sym, o: _Order, qty: Decimal, price: Decimal, maker: bool) -> bool:
        """Fault hook: book ``qty`` as two fills (PARTIALLY_FILLED, then the rest); False when
        ``qty`` is too small to split on the lot step."""
        part = st.rules.round_qty(qty / 2, market=False)
        if part <= 0 or part >= qty:
            return False
        left, self.split_fills = self.split_fills - 1, 0  # the two halves are not split again
        try:
            self._fill(st, o, part, price, maker=maker)
            self._fill(st, o, qty - part, price, maker=maker)
        finally:
            self.split_fills = left
        return True

    def _expire_stale_reducers(self, st: _Sym, pos: _Pos) -> None:
        for oid in sorted(st.orders):
            r = st.orders.get(oid)
            if r is None or r.ps != pos.side:
                continue
            if not (r.reduce_only or self._is_hedge_close(r.side, r.ps)):
                continue
            c, _ = self._split(st, r.side, r.ps, r.qty - r.executed)
            if c == 0:
                self._end_order(st, r, EXPIRED, EXPIRED, er="4")

    def _end_order(self, st: _Sym, o: _Order, x: str, status: str, er: str = "0") -> None:
        """Close an open order without a fill (cancel / expire)."""
        st.orders.pop(o.order_id, None)
        o.status = status
        o.update_time = self.now_ms
        self._emit_order(o, x, er=er)
        if o.algo is not None:
            self._finish_algo(o.algo, o)

    def _fill_resting(self, st: _Sym, o: _Order) -> None:
        """A resting LIMIT order reached by the price path: maker fill at its limit price."""
        qty = o.qty - o.executed
        partial = False
        if o.reduce_only or self._is_hedge_close(o.side, o.ps):
            c, _ = self._split(st, o.side, o.ps, qty)
            if c == 0:
                self._end_order(st, o, EXPIRED, EXPIRED, er="4")
                st.touch()
                return
            if c < qty:
                qty = c
                partial = True
        self._fill(st, o, qty, o.price, maker=True)
        if partial and o.order_id in st.orders:
            self._end_order(st, o, EXPIRED, EXPIRED, er="4")
            st.touch()

    # -- algo internals ---------------------------------------------------------------------

    @staticmethod
    def _algo_condition(otype: str, side: str, trigger: Decimal, price: Decimal) -> bool:
        if otype in (STOP, STOP_MARKET):
            return price >= trigger if side == BUY else price <= trigger
        return price <= trigger if side == BUY else price >= trigger

    def _algo_json(self, a: _Algo, *, full: bool) -> dict:
        d: dict[str, Any] = {
            "algoId": a.algo_id,
            "clientAlgoId": a.client_id,
            "algoType": "CONDITIONAL",
            "orderType": a.type,
            "symbol": a.symbol,
            "side": a.side,
            "positionSide": a.ps,
            "timeInForce": a.tif,
            "quantity": fmt(a.qty) if a.qty is not None else "0",
            "algoStatus": a.status,
        }
        if full:
            d["actualOrderId"] = str(a.actual_order_id) if a.actual_order_id is not None else ""
            d["actualPrice"] = fmt(a.actual_price)
        d.update({
            "triggerPrice": fmt(a.trigger),
            "price": fmt(a.price),
            "icebergQuantity": None,
        })
        if full:
            d.update({"tpTriggerPrice": "0", "tpPrice": "0", "slTriggerPrice": "0", "slPrice": "0",
                      "tpOrderType": ""})
        d.update({
            "selfTradePreventionMode": a.stp,
            "workingType": a.wt,
            "priceMatch": a.pm,
            "closePosition": a.close_position,
            "priceProtect": a.pp,
            "reduceOnly": a.reduce_only,
            "activatePrice": fmt(a.activate) if a.activate is not None else "",
            "callbackRate": fmt(a.callback) if a.callback is not None else "",
            "createTime": a.create_time,
            "updateTime": a.update_time,
            "triggerTime": a.trigger_time,
            "goodTillDate": a.gtd,
        })
        return d

    def _emit_algo(self, a: _Algo) -> None:
        now = self.now_ms
        d: dict[str, Any] = {
            "caid": a.client_id, "aid": a.algo_id, "at": "CONDITIONAL", "o": a.type, "s": a.symbol, "S": a.side,
            "ps": a.ps, "f": a.tif, "q": fmt(a.qty) if a.qty is not None else "0", "X": a.status,
            "ai": str(a.actual_order_id) if a.actual_order_id is not None else "",
            "ap": fmt(a.actual_price), "aq": fmt(a.actual_qty), "act": a.act, "tp": fmt(a.trigger),
            "p": fmt(a.price), "V": a.stp, "wt": a.wt, "pm": a.pm, "cp": a.close_position, "pP": a.pp,
            "R": a.reduce_only, "tt": a.trigger_time, "gtd": a.gtd,
        }
        if a.type == TRAILING:
            d["ia"] = a.activated
        if a.rm:
            d["rm"] = a.rm
        self._ver += 1
        self.pending_events.append({"e": "ALGO_UPDATE", "T": now, "E": now, "o": d})

    def _cancel_algo(self, st: _Sym, a: _Algo) -> None:
        st.algos.pop(a.algo_id, None)
        a.status = CANCELED
        a.update_time = self.now_ms
        self._emit_algo(a)

    def _finish_algo(self, a: _Algo, child: _Order) -> None:
        if a.status != TRIGGERED:
            return
        a.status = FINISHED
        a.actual_price = child.avg
        a.actual_qty = child.executed
        a.update_time = self.now_ms
        self._emit_algo(a)

    def _end_algo(self, a: _Algo, status: str, rm: str) -> None:
        a.status = status
        a.rm = rm
        a.update_time = self.now_ms
        self._emit_algo(a)

    def _trigger(self, st: _Sym, a: _Algo, base: Decimal) -> None:
        """Trigger ``a``: TRIGGERING → child order → TRIGGERED → child fill → FINISHED."""
        st.algos.pop(a.algo_id, None)
        now = self.now_ms
        a.status = TRIGGERING
        a.trigger_time = now
        a.update_time = now
        if a.type == TRAILING:
            a.trigger = st.rules.round_price(base)
        self._emit_algo(a)
        side, ps = a.side, a.ps
        closing = a.close_position or a.reduce_only or self._is_hedge_close(side, ps)
        if a.close_position:
            qty, _ = self._split(st, side, ps, Decimal("1e30"))
            if qty == 0:
                self._end_algo(a, EXPIRED, "No position to close (closePosition).")
                st.touch()
                return
        else:
            assert a.qty is not None
            qty = a.qty
            if closing:
                c, _ = self._split(st, side, ps, qty)
                if c == 0:
                    self._end_algo(a, REJECTED, "Reduce Only reject")
                    st.touch()
                    return
                qty = c
        market = a.type in (STOP_MARKET, TAKE_PROFIT_MARKET, TRAILING)
        fill_price = self._taker_price(st, side, base)
        marketable = market
        if not market:
            marketable = (side == BUY and a.price >= base) or (side == SELL and a.price <= base)
            if marketable:
                fill_price = min(a.price, fill_price) if side == BUY else max(a.price, fill_price)
        if not closing:
            try:
                if marketable:
                    self._check_fill_margin(st, side, ps, qty, fill_price)
                else:
                    self._check_resting_margin(st, side, ps, a.type, a.tif, qty, a.price)
            except SimApiError as exc:
                self._end_algo(a, REJECTED, exc.msg)
                st.touch()
                return
        o = self._make_order(st, a.client_id, side, ps, a.type, a.tif, qty, a.price if not market else ZERO,
                             a.reduce_only or a.close_position)
        o.close_position = a.close_position
        o.stop_price = a.trigger
        o.wt = a.wt
        o.pp = a.pp
        o.stp = a.stp
        o.algo = a
        if a.type == TRAILING:
            o.activate_price = a.activate
            o.price_rate = a.callback
        self._register_order(o)
        a.actual_order_id = o.order_id
        a.act = MARKET if market else LIMIT
        a.status = TRIGGERED
        self._emit_algo(a)
        self._emit_order(o, NEW)
        if marketable:
            self._fill(st, o, qty, fill_price, maker=False)
        else:
            st.orders[o.order_id] = o
        st.touch()

    def _trail_see(self, a: _Algo, p: Decimal) -> None:
        if a.side == SELL:
            if not a.activated:
                if a.activate is not None and p >= a.activate:
                    self._trail_activate(a, p)
            elif a.extreme is None or p > a.extreme:
                a.extreme = p
        else:
            if not a.activated:
                if a.activate is not None and p <= a.activate:
                    self._trail_activate(a, p)
            elif a.extreme is None or p < a.extreme:
                a.extreme = p

    def _trail_activate(self, a: _Algo, p: Decimal) -> None:
        """The activation price was reached: the order now follows price. Binance reports it as a
        second ``NEW`` ALGO_UPDATE with ``ia: true`` (the first one, on placement, had ``ia: false``)."""
        a.activated = True
        a.extreme = p
        a.update_time = self.now_ms
        self._emit_algo(a)

    def _trail_threshold(self, a: _Algo) -> Decimal | None:
        if not a.activated or a.extreme is None:
            return None
        assert a.callback is not None
        r = a.callback / _HUNDRED
        return a.extreme * (ONE - r) if a.side == SELL else a.extreme * (ONE + r)

    def _liquidate(self, st: _Sym, pos: _Pos, level: Decimal) -> None:
        """Close ``pos`` by a LIQUIDATION order (module doc). ``level``: where the mark met it."""
        lp = self._liq_price(st, pos)
        if st.margin_type is MarginType.CROSSED:
            # cross: never better than the market (the wallet may have shrunk elsewhere, or gapped)
            lp = min(lp, level) if pos.amt > 0 else max(lp, level)
        for oid in sorted(st.orders):
            o = st.orders.get(oid)
            if o is not None:
                self._end_order(st, o, CANCELED, CANCELED, er="5")
        rules = st.rules
        if pos.amt > 0:
            side = SELL
            price = rules.round_price_down(lp)
        else:
            side = BUY
            price = rules.round_price_up(lp)
        if price <= 0:
            price = rules.price_filter.min_price or rules.price_filter.tick_size
        self._liq_seq += 1
        qty = abs(pos.amt)
        o = self._make_order(st, f"autoclose-{self._liq_seq}", side, pos.side, LIQUIDATION, "IOC", qty, price, True)
        self._register_order(o)
        self._emit_order(o, NEW)
        self._fill(st, o, qty, price, maker=False, liquidation=True)

    # -- the price path ---------------------------------------------------------------------

    def _walk(self, st: _Sym, c: Candle) -> None:
        o, h, l, cl = c.open, c.high, c.low, c.close
        # klines satisfy low <= open, close <= high (the loader and the parser validate it)
        if self._quiet(st, l, h):
            return
        net = st.net_amt()
        if net > 0 or (net == 0 and cl >= o):
            a, b = l, h
        else:
            a, b = h, l
        self._jump(st, o)
        self._segment(st, a)
        self._segment(st, b)
        self._segment(st, cl)

    def _quiet(self, st: _Sym, lo: Decimal, hi: Decimal) -> bool:
        """True when nothing can happen inside [lo, hi] (the walk can be skipped).

        The band (highest level that fires when the price falls to it, lowest level that fires
        when it rises to it) is cached per symbol and recomputed only after an order, algo order,
        position or wallet change, so a candle that moves inside the band costs two comparisons.
        """
        if st.band_ver != self._ver:
            band = self._band(st)
            if band is None:  # a trailing stop tracks every price: always walk
                st.band_lo, st.band_hi = _POS_INF, _NEG_INF
            else:
                st.band_lo = _NEG_INF if band[0] is None else band[0]
                st.band_hi = _POS_INF if band[1] is None else band[1]
            st.band_ver = self._ver
        return lo > st.band_lo and hi < st.band_hi

    def _band(self, st: _Sym) -> tuple[Decimal | None, Decimal | None] | None:
        down: Decimal | None = None
        up: Decimal | None = None
        for o in st.orders.values():
            if o.side == SELL:
                up = o.price if up is None or o.price < up else up
            else:
                down = o.price if down is None or o.price > down else down
        for a in st.algos.values():
            if a.type == TRAILING:
                return None
            rises = (a.side == BUY) if a.type in (STOP, STOP_MARKET) else (a.side == SELL)
            if rises:
                up = a.trigger if up is None or a.trigger < up else up
            else:
                down = a.trigger if down is None or a.trigger > down else down
        for pos in st.positions.values():
            if pos.amt:
                lp = self._liq_price(st, pos)
                if lp > 0:
                    if pos.amt > 0:
                        down = lp if down is None or lp > down else down
                    else:
                        up = lp if up is None or lp < up else up
        return (down, up)

    def _jump(self, st: _Sym, p: Decimal) -> None:
        st.cur = st.last = st.mark = p
        for a in st.algos.values():
            if a.type == TRAILING:
                self._trail_see(a, p)
        self._segment(st, p)

    def _segment(self, st: _Sym, p1: Decimal) -> None:
        """Move the price monotonically from ``st.cur`` to ``p1``, firing events in price order."""
        guard = 0
        while st.busy:
            hit = self._scan(st, st.cur, p1, mark_only=False)
            if hit is None:
                break
            kind, obj, level = hit
            st.cur = st.last = st.mark = level
            if kind == 0:
                self._fill_resting(st, obj)
            elif kind == 1:
                self._trigger(st, obj, level)
            else:
                self._liquidate(st, obj, level)
            guard += 1
            if guard > 100_000:  # pragma: no cover - defensive
                raise RuntimeError("sim matching: event loop does not converge")
        st.cur = st.last = st.mark = p1
        for a in st.algos.values():
            if a.type == TRAILING:
                self._trail_see(a, p1)

    def _mark_events(self, st: _Sym) -> None:
        """Evaluate MARK_PRICE triggers and liquidations at the current (overridden) mark."""
        m = st.mark
        assert m is not None
        guard = 0
        while st.busy:
            for a in st.algos.values():
                if a.type == TRAILING and a.wt == _MARK:
                    self._trail_see(a, m)
            hit = self._scan(st, m, m, mark_only=True)
            if hit is None:
                break
            kind, obj, _level = hit
            if kind == 1:
                base = st.last if st.last is not None else m
                self._trigger(st, obj, base)
            else:
                self._liquidate(st, obj, m)
            guard += 1
            if guard > 100_000:  # pragma: no cover - defensive
                raise RuntimeError("sim matching: event loop does not converge")

    def _scan(self, st: _Sym, cur: Decimal, p1: Decimal, mark_only: bool):
        """The first event met moving from ``cur`` to ``p1``: (kind, object, price level) or None.

        kind 0 = resting LIMIT fill, 1 = algo trigger, 2 = liquidation.
        """
        best = None
        best_key = None
        if not mark_only:
            for o in st.orders.values():
                thr = o.price
                dist = _reach(cur, p1, thr, up=o.side == SELL)  # a SELL limit fills at or above its price
                if dist is None:
                    continue
                key = (dist, _PRIO_LIMIT, o.order_id)
                if best_key is None or key < best_key:
                    best_key = key
                    best = (0, o, cur if dist == 0 else thr)
        for a in st.algos.values():
            if mark_only:
                if a.wt != _MARK:
                    continue
                if a.pp and st.last is not None and cur:
                    if abs(cur - st.last) / cur > st.rules.trigger_protect:
                        continue
            if a.type == TRAILING:
                thr = self._trail_threshold(a)
                if thr is None:
                    continue
                up = a.side == BUY
                prio = _PRIO_STOP
            else:
                thr = a.trigger
                if a.type in (STOP, STOP_MARKET):
                    up = a.side == BUY
                    prio = _PRIO_STOP
                else:
                    up = a.side == SELL
                    prio = _PRIO_TP
            dist = _reach(cur, p1, thr, up)
            if dist is None:
                continue
            key = (dist, prio, a.algo_id)
            if best_key is None or key < best_key:
                best_key = key
                best = (1, a, cur if dist == 0 else thr)
        for pos in st.positions.values():
            if not pos.amt:
                continue
            thr = self._liq_price(st, pos)
            if thr <= 0:
                continue
            dist = _reach(cur, p1, thr, up=pos.amt < 0)  # a short is liquidated at or above its price
            if dist is None:
                continue
            key = (dist, _PRIO_LIQ, 0)
            if best_key is None or key < best_key:
                best_key = key
                best = (2, pos, cur if dist == 0 else thr)
        return best

    # -- funding ----------------------------------------------------------------------------

    def _cross_funding(self, t: int) -> None:
        interval = self._interval
        nf = self._next_funding
        while nf <= t:
            if not any(st.busy and st.has_position() for st in self._syms.values()):
                nf = (t // interval + 1) * interval
                break
            if nf > self.now_ms:
                self.now_ms = nf
            self._apply_funding(nf)
            nf += interval
        self._next_funding = nf

    def _rate_at(self, symbol: str, t: int) -> Decimal:
        keys = self._fr_keys.get(symbol)
        if keys:
            i = bisect_left(keys, t)
            best = None
            for j in (i - 1, i):
                if 0 <= j < len(keys):
                    d = abs(keys[j] - t)
                    if d <= _FUNDING_MATCH_MS and (best is None or d < best[0]):
                        best = (d, keys[j])
            if best is not None:
                return self._fr[symbol][best[1]]
        return self._default_rate

    def _apply_funding(self, t: int) -> None:
        for st in self._syms.values():
            if not st.busy:
                continue
            for pos in st.positions.values():
                if not pos.amt:
                    continue
                rate = self._rate_at(st.symbol, t)
                mark = self._mark_of(st)
                amount = _q8(-pos.amt * mark * rate)
                self._funding.append({"symbol": st.symbol, "positionSide": pos.side, "time": t, "rate": rate,
                                      "mark": mark, "amount": amount})
                if not amount:
                    continue
                self._wallet += amount
                iso = st.margin_type is MarginType.ISOLATED
                if iso:
                    self._set_iw(pos, pos.iw + amount)
                pos.update = t
                self._ver += 1
                self._emit_account("FUNDING_FEE", [(st, pos)] if iso else [], bc=amount)

    def _premium(self, st: _Sym) -> dict:
        mark = self._mark_of(st)
        return {
            "symbol": st.symbol,
            "markPrice": _f8(mark),
            "indexPrice": _f8(mark),
            "estimatedSettlePrice": _f8(mark),
            "lastFundingRate": _f8(self._rate_at(st.symbol, self._next_funding)),
            "interestRate": "0.0001",
            "nextFundingTime": self._next_funding,
            "time": self.now_ms,
        }
