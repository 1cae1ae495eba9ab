"""Binance exchangeInfo filters and leverage brackets, parsed exactly as Binance sends them.

Prices round to ``tickSize`` (nearest, or toward a safe side when asked) and quantities round
*down* to ``stepSize``. Nothing here ever produces a float: :func:`fmt` renders a Decimal the way
Binance wants it on the wire (no exponent, no trailing noise).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any, Iterable, Mapping

from engine.model import ZERO


class FilterError(ValueError):
    """An order that breaks a symbol filter. ``code`` is the Binance error code it would get."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg


def D(value: Any) -> Decimal:
    """Decimal from a Binance string/int field; floats are refused (they carry binary noise)."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        raise TypeError("refusing float: pass Binance's string value")
    return Decimal(str(value))


def fmt(value: Decimal) -> str:
    """Render a Decimal for the wire: plain notation, no exponent, no trailing zeros."""
    if value == 0:
        return "0"
    s = format(value.normalize(), "f")
    return s


@dataclass(frozen=True, slots=True)
class PriceFilter:
    min_price: Decimal
    max_price: Decimal
    tick_size: Decimal


@dataclass(frozen=True, slots=True)
class LotSize:
    min_qty: Decimal
    max_qty: Decimal
    step_size: Decimal


@dataclass(frozen=True, slots=True)
class PercentPrice:
    multiplier_up: Decimal
    multiplier_down: Decimal
    multiplier_decimal: int


@dataclass(frozen=True, slots=True)
class Bracket:
    """One leverage bracket: notional in [floor, cap) allows up to ``initial_leverage``."""

    bracket: int
    initial_leverage: int
    notional_cap: Decimal
    notional_floor: Decimal
    maint_margin_ratio: Decimal
    cum: Decimal


@dataclass(frozen=True, slots=True)
class SymbolRules:
    symbol: str
    status: str
    base_asset: str
    quote_asset: str
    price_filter: PriceFilter
    lot_size: LotSize
    market_lot_size: LotSize
    min_notional: Decimal
    percent_price: PercentPrice | None
    max_num_orders: int
    trigger_protect: Decimal
    brackets: tuple[Bracket, ...] = field(default_factory=tuple)

    # -- rounding ---------------------------------------------------------------------------

    def round_price(self, price: Decimal, rounding: str = ROUND_HALF_UP) -> Decimal:
        """Round to the tick grid anchored at ``minPrice`` (Binance's rule)."""
        tick = self.price_filter.tick_size
        if tick == 0:
            return price
        base = self.price_filter.min_price
        steps = ((price - base) / tick).quantize(Decimal(1), rounding=rounding)
        return (base + steps * tick).quantize(tick)

    def round_price_down(self, price: Decimal) -> Decimal:
        return self.round_price(price, ROUND_FLOOR)

    def round_price_up(self, price: Decimal) -> Decimal:
        return self.round_price(price, ROUND_CEILING)

    def round_qty(self, qty: Decimal, market: bool = True) -> Decimal:
        """Round a quantity *down* to the step (never buys more than asked)."""
        lot = self.market_lot_size if market else self.lot_size
        step = lot.step_size
        if step == 0:
            return qty
        base = lot.min_qty if lot.min_qty > 0 else ZERO
        if qty < base:
            return ZERO
        steps = ((qty - base) / step).quantize(Decimal(1), rounding=ROUND_DOWN)
        return (base + steps * step).quantize(step)

    # -- checks -----------------------------------------------------------------------------

    def check_price(self, price: Decimal) -> None:
        pf = self.price_filter
        if pf.min_price != 0 and price < pf.min_price:
            raise FilterError(-4013, f"Price less than min price {fmt(pf.min_price)}.")
        if pf.max_price != 0 and price > pf.max_price:
            raise FilterError(-4002, f"Price greater than max price {fmt(pf.max_price)}.")
        if pf.tick_size != 0 and (price - pf.min_price) % pf.tick_size != 0:
            raise FilterError(-4014, f"Price not increased by tick size {fmt(pf.tick_size)}.")

    def check_qty(self, qty: Decimal, market: bool) -> None:
        lot = self.market_lot_size if market else self.lot_size
        if qty <= 0:
            raise FilterError(-4003, "Quantity less than or equal to zero.")
        if lot.min_qty != 0 and qty < lot.min_qty:
            raise FilterError(-4004, f"Quantity less than min quantity {fmt(lot.min_qty)}.")
        if lot.max_qty != 0 and qty > lot.max_qty:
            raise FilterError(-4005, f"Quantity greater than max quantity {fmt(lot.max_qty)}.")
        if lot.step_size != 0 and (qty - lot.min_qty) % lot.step_size != 0:
            raise FilterError(-4023, f"Quantity not increased by step size {fmt(lot.step_size)}.")

    def check_notional(self, qty: Decimal, price: Decimal, reduce_only: bool = False) -> None:
        if reduce_only or self.min_notional == 0:
            return
        if qty * price < self.min_notional:
            raise FilterError(
                -4164,
                f"Order's notional must be no smaller than {fmt(self.min_notional)} "
                "(unless you choose reduce only).",
            )

    def check_percent_price(self, side: str, price: Decimal, mark: Decimal) -> None:
        pp = self.percent_price
        if pp is None or mark == 0:
            return
        if side == "BUY" and price > mark * pp.multiplier_up:
            raise FilterError(-4016, "Price is higher than mark price multiplier cap.")
        if side == "SELL" and price < mark * pp.multiplier_down:
            raise FilterError(-4024, "Price is lower than mark price multiplier floor.")

    def min_qty_ok(self, qty: Decimal, market: bool = True) -> bool:
        lot = self.market_lot_size if market else self.lot_size
        return qty >= lot.min_qty

    # -- leverage brackets ------------------------------------------------------------------

    def bracket_for(self, notional: Decimal) -> Bracket | None:
        for b in self.brackets:
            if b.notional_floor <= notional < b.notional_cap:
                return b
        return self.brackets[-1] if self.brackets else None

    def max_notional_for_leverage(self, leverage: int) -> Decimal | None:
        """Largest position notional the brackets allow at ``leverage`` (None: no brackets)."""
        if not self.brackets:
            return None
        best = ZERO
        for b in self.brackets:
            if b.initial_leverage >= leverage:
                best = max(best, b.notional_cap)
        return best

    def maint_margin(self, notional: Decimal) -> Decimal:
        b = self.bracket_for(abs(notional))
        if b is None:
            return ZERO
        return abs(notional) * b.maint_margin_ratio - b.cum


def parse_symbol(entry: Mapping[str, Any]) -> SymbolRules:
    """Parse one ``symbols[]`` entry of ``GET /fapi/v1/exchangeInfo``; key order is not relied on."""
    filters = {f["filterType"]: f for f in entry.get("filters", [])}
    try:
        pf = filters["PRICE_FILTER"]
        ls = filters["LOT_SIZE"]
    except KeyError as exc:
        raise ValueError(f"exchangeInfo symbol {entry.get('symbol')!r} lacks filter {exc.args[0]}") from None
    mls = filters.get("MARKET_LOT_SIZE", ls)
    mn = filters.get("MIN_NOTIONAL")
    pp = filters.get("PERCENT_PRICE")
    mno = filters.get("MAX_NUM_ORDERS")
    return SymbolRules(
        symbol=entry["symbol"],
        status=entry.get("status", "TRADING"),
        base_asset=entry.get("baseAsset", ""),
        quote_asset=entry.get("quoteAsset", "USDT"),
        price_filter=PriceFilter(D(pf["minPrice"]), D(pf["maxPrice"]), D(pf["tickSize"])),
        lot_size=LotSize(D(ls["minQty"]), D(ls["maxQty"]), D(ls["stepSize"])),
        market_lot_size=LotSize(D(mls["minQty"]), D(mls["maxQty"]), D(mls["stepSize"])),
        # USDⓈ-M uses "notional"; spot's "minNotional" is accepted only as a fallback.
        min_notional=D(mn.get("notional", mn.get("minNotional", "0"))) if mn else ZERO,
        percent_price=(
            PercentPrice(D(pp["multiplierUp"]), D(pp["multiplierDown"]), int(pp.get("multiplierDecimal", 4)))
            if pp
            else None
        ),
        max_num_orders=int(mno["limit"]) if mno else 200,
        trigger_protect=D(entry.get("triggerProtect", "0.05")),
    )


def parse_exchange_info(payload: Mapping[str, Any]) -> dict[str, SymbolRules]:
    return {s["symbol"]: parse_symbol(s) for s in payload.get("symbols", [])}


def parse_brackets(entry: Mapping[str, Any]) -> tuple[Bracket, ...]:
    """Parse one element of ``GET /fapi/v1/leverageBracket`` (numbers are JSON numbers there)."""
    out = []
    for b in entry.get("brackets", []):
        out.append(
            Bracket(
                bracket=int(b["bracket"]),
                initial_leverage=int(b["initialLeverage"]),
                notional_cap=Decimal(str(b["notionalCap"])),
                notional_floor=Decimal(str(b["notionalFloor"])),
                maint_margin_ratio=Decimal(str(b["maintMarginRatio"])),
                cum=Decimal(str(b["cum"])),
            )
        )
    return tuple(sorted(out, key=lambda x: x.notional_floor))


def parse_leverage_brackets(payload: Any) -> dict[str, tuple[Bracket, ...]]:
    """Accepts both the array form and the single-object form Binance returns with ``symbol=``."""
    items: Iterable[Mapping[str, Any]] = payload if isinstance(payload, list) else [payload]
    return {e["symbol"]: parse_brackets(e) for e in items}


def with_brackets(rules: SymbolRules, brackets: tuple[Bracket, ...]) -> SymbolRules:
    return SymbolRules(
        symbol=rules.symbol,
        status=rules.status,
        base_asset=rules.base_asset,
        quote_asset=rules.quote_asset,
        price_filter=rules.price_filter,
        lot_size=rules.lot_size,
        market_lot_size=rules.market_lot_size,
        min_notional=rules.min_notional,
        percent_price=rules.percent_price,
        max_num_orders=rules.max_num_orders,
        trigger_protect=rules.trigger_protect,
        brackets=brackets,
    )
