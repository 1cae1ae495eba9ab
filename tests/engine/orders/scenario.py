"""Crafted price paths on the sim exchange, with a scripted strategy: one signal where we say.

A scenario is a list of candles for BTCUSDT (open, high, low, close as multiples of a base price),
run through the same backtest loop as ``perpdeck --no-ui --in-process`` (sim matching engine,
SimPort, the engine's pipeline step), so every exit rule is exercised against the exchange's own
fills, not against the order manager's beliefs.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path

from engine.backtest import build_sim_run, run_sync, step
from engine.config import Settings
from engine.core import pump
from engine.data import KlineFile
from engine.events import ExAccountUpdate, ExOrderUpdate, SwitchStrategy
from engine.exchange.errors import TransientError
from engine.model import Candle, Direction, Signal
from engine.orders.ids import role_of
from engine.state.journal import Journal

BASE = Decimal(100_000)
MIN = 60_000
T0 = 1_746_403_200_000  # 2025-05-05 00:00 UTC


class Scripted:
    """Emits one signal per entry in ``at`` (candle index → direction)."""

    name = "scripted"

    def __init__(self, at: dict[int, Direction]):
        self.at = at

    def on_candle(self, c: Candle):
        i = (c.open_time_ms - T0) // MIN
        d = self.at.get(i)
        if d is None:
            return None
        return Signal(self.name, c.symbol, d, 1.0, f"scripted {d.value} at candle {i}", c.open_time_ms, c.close,
                      c.close_time_ms)


def bar(i: int, o, h, low, c, volume=1, symbol: str = "BTCUSDT") -> Candle:
    """Candle ``i`` with prices given as multiples of BASE (floats or strings)."""
    q = lambda x: (BASE * Decimal(str(x))).quantize(Decimal("0.1"))  # noqa: E731
    return Candle(symbol, T0 + i * MIN, T0 + i * MIN + MIN - 1, q(o), q(h), q(low), q(c), Decimal(volume))


def path(*points: float, start: int = 0, volume=1) -> list[Candle]:
    """Candles moving linearly from one close to the next (one candle per point)."""
    out = []
    prev = points[0]
    for k, p in enumerate(points):
        hi, lo = max(prev, p), min(prev, p)
        out.append(bar(start + k, prev, hi, lo, p, volume))
        prev = p
    return out


def flat(n: int, level: float = 1.0, start: int = 0, wiggle: float = 0.0005, volume=1) -> list[Candle]:
    return [bar(start + k, level, level * (1 + wiggle), level * (1 - wiggle), level, volume) for k in range(n)]


def run_scenario(candles: list[Candle], at: dict[int, Direction], *, port_wrapper=None, close_at_end=False,
                 between=None, swappable=False, **settings_kw):
    """Run ``candles`` with a scripted strategy signalling at the given candle indices.

    ``between(run, candle)`` is called after each candle has gone through the exchange and the
    engine (and before the next one): a place to look at the state mid-run, or to deliver what a
    live runtime would between candles (held-back events, timer ticks)."""
    defaults = dict(symbols=["BTCUSDT"])
    defaults.update(settings_kw)
    settings = Settings(**defaults)
    journal = Journal("scn")
    run = build_sim_run(settings, run_id="scn", files=[KlineFile("BTCUSDT", Path("crafted"), tuple(candles))],
                        funding={}, journal=journal, strict=True)
    eng = run.engine
    eng.strategies["scripted"] = type(eng.strategies["ema_trend"])(Scripted(at))
    eng.handle(SwitchStrategy("scripted"))
    eng._apply_switch()
    if port_wrapper is not None:
        run.port = port_wrapper(run.port)
    if swappable:  # the hook may replace run.engine (a restart): every step reads it afresh
        for c in candles:
            step(run, c)
            if between is not None:
                between(run, c)
    else:
        run_sync(run, candles if between is None else _hooked(run, candles, between), close_at_end=close_at_end)
    run.journal_batch = journal.take()
    return run


def _hooked(run, candles, hook):
    for c in candles:
        yield c
        hook(run, c)  # the loop asks for the next candle only once this one is fully processed


def index(ms: int) -> int:
    """The candle index an exchange time falls in."""
    return (ms - T0) // MIN


def open_ms(i: int) -> int:
    return T0 + i * MIN


def close_ms(i: int) -> int:
    return T0 + i * MIN + MIN - 1


def exchange_position(run) -> Decimal:
    rows = [p for p in run.sim.position_risk({}) if p["symbol"] == "BTCUSDT"]
    return sum((Decimal(p["positionAmt"]) for p in rows), Decimal(0))


def algo_requests(run) -> list:
    """Every conditional order the engine created, in order."""
    return [st.req for st in run.engine.orders.algos.values()]


def resting_stops(run) -> list[dict]:
    """The closePosition STOP_MARKET orders resting on the sim."""
    return [a for a in run.sim.open_algo_orders({}) if a["orderType"] == "STOP_MARKET" and a["closePosition"]]


def fills(run) -> list[dict]:
    """The sim's fills (quantity and price as Decimal), each with ``coid`` (the client id of our order,
    or of the algo order whose trigger made it) and ``purpose`` added."""
    om = run.engine.orders
    by_id = {st.exchange_order_id: st.req.client_order_id for st in om.orders.values()}
    by_id.update({st.actual_order_id: caid for caid, st in om.algos.items() if st.actual_order_id is not None})
    out = []
    for f in run.sim.all_fills():
        f["coid"] = by_id.get(f["orderId"])  # our order's client id, or the algo order's that triggered
        f["purpose"] = om.purpose_of(f["coid"] or "", f["orderId"], None)
        f["qty"], f["price"] = Decimal(f["qty"]), Decimal(f["price"])
        out.append(f)
    return out


class StopWatch:
    """Port wrapper: after every cancel of a conditional order, whether an open position still had
    a resting closePosition stop on the exchange (the stop is replaced new-first, never removed first)."""

    def __init__(self, port):
        self.port = port
        self.sim = port.sim
        self.after_cancel: list[tuple[int, Decimal, int]] = []  # (exchange ms, position, resting stops)

    def cancel_algo_order(self, symbol, client_algo_id):
        try:
            return self.port.cancel_algo_order(symbol, client_algo_id)
        finally:
            pos = sum((Decimal(p["positionAmt"]) for p in self.sim.position_risk({}) if p["symbol"] == symbol),
                      Decimal(0))
            n = sum(1 for a in self.sim.open_algo_orders({})
                    if a["orderType"] == "STOP_MARKET" and a["closePosition"] and a["symbol"] == symbol)
            self.after_cancel.append((self.sim.now_ms, pos, n))

    def unprotected(self) -> list[tuple[int, Decimal, int]]:
        return [x for x in self.after_cancel if x[1] != 0 and x[2] == 0]

    def __getattr__(self, name):
        return getattr(self.port, name)


def tick(run, now_ms: int) -> None:
    """Exchange time moves on between candles with no market event (the live runtime's timer):
    the sim's clock, then the engine's; then whatever that makes the engine send is run."""
    run.sim.advance_time(now_ms)
    run.engine.on_tick(now_ms)
    pump(run.engine, run.port)


class HoldEvents:
    """Port wrapper: the events :meth:`holds` picks are held back; :meth:`release` delivers them
    later, stamped with the time they finally arrive, on the next drain."""

    def __init__(self, port):
        self.port = port
        self.held: list[object] = []
        self._ready: list[object] = []

    def holds(self, ev) -> bool:
        raise NotImplementedError

    def has_events(self) -> bool:
        return bool(self._ready) or self.port.has_events()

    def drain_events(self) -> list[object]:
        out = []
        for ev in self.port.drain_events():
            (self.held if self.holds(ev) else out).append(ev)
        out, self._ready = self._ready + out, []
        return out

    def release(self, time_ms: int) -> None:
        self._ready += [replace(ev, time_ms=time_ms) for ev in self.held]
        self.held = []

    def __getattr__(self, name):
        return getattr(self.port, name)


class HoldAccountUpdates(HoldEvents):
    """The first ``count`` ACCOUNT_UPDATE events that report a position are held back (the fill
    arrived, the position report did not)."""

    def __init__(self, port, count: int = 1):
        super().__init__(port)
        self.to_hold = count

    def holds(self, ev) -> bool:
        if isinstance(ev, ExAccountUpdate) and ev.positions and self.to_hold > 0:
            self.to_hold -= 1
            return True
        return False


class HoldEntryUpdates(HoldEvents):
    """Every ORDER_TRADE_UPDATE of an entry order is held back until :meth:`release` (its answer
    stalled and its stream events delayed; the position report still arrives)."""

    holding = True

    def holds(self, ev) -> bool:
        return self.holding and isinstance(ev, ExOrderUpdate) and role_of(ev.client_order_id) == "entry"

    def release(self, time_ms: int) -> None:
        self.holding = False
        super().release(time_ms)


class FailingPlacements:
    """Port wrapper: the first ``times`` placements (orders or algo orders) with one of the given
    purposes fail with a transient error (-1001: certainly not applied, retry as-is). Every
    placement is logged as (exchange ms, client id, request)."""

    def __init__(self, port, purposes, times: int = 1, code: int = -1001, error=None):
        self.port = port
        self.purposes = set(purposes)
        self.times = times
        self.code = code
        self.error = error  # a callable returning the exception to raise (default: TransientError(code))
        self.failed = 0
        self.calls: list[tuple[int, str, object]] = []

    def _gate(self, cid: str, req) -> None:
        self.calls.append((self.port.sim.now_ms, cid, req))
        if req.purpose in self.purposes and self.failed < self.times:
            self.failed += 1
            if self.error is not None:
                raise self.error()
            raise TransientError(self.code, "Internal error; unable to process your request. Please try again.")

    def place_order(self, req):
        self._gate(req.client_order_id, req)
        return self.port.place_order(req)

    def place_algo_order(self, req):
        self._gate(req.client_algo_id, req)
        return self.port.place_algo_order(req)

    def __getattr__(self, name):
        return getattr(self.port, name)
