"""Crafted price paths on the sim exchange, with a scripted strategy: one signal where we say.

A scenario is a list of candles for BTCUSDT (open, high, low, close as multiples of a base price),
run through the same backtest loop as ``perpdeck --no-ui --in-process`` (sim matching engine,
SimPort, the engine's pipeline step), so every exit rule is exercised against the exchange's own
fills, not against the order manager's beliefs.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from engine.backtest import build_sim_run, run_sync
from engine.config import Settings
from engine.data import KlineFile
from engine.events import SwitchStrategy
from engine.model import Candle, Direction, Signal
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
                 **settings_kw):
    """Run ``candles`` with a scripted strategy signalling at the given candle indices."""
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
    run_sync(run, candles, close_at_end=close_at_end)
    run.journal_batch = journal.take()
    return run


def exchange_position(run) -> Decimal:
    rows = [p for p in run.sim.position_risk({}) if p["symbol"] == "BTCUSDT"]
    return sum((Decimal(p["positionAmt"]) for p in rows), Decimal(0))


def algo_requests(run) -> list:
    """Every conditional order the engine created, in order."""
    return [st.req for st in run.engine.orders.algos.values()]
