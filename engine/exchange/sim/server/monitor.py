"""``ProtectionMonitor``: how long each position of the account existed without a resting stop.

Attached to a :class:`LocalExchange` through its user-event tap, it re-evaluates the account after
every batch of user-data events the sim produces (each REST request and each replayed candle that
changed something), so every moment a position appears, a stop rests or goes, or the position goes
flat is seen exactly when it happens. Positions are tracked from ``ACCOUNT_UPDATE`` (seeded from
``positionRisk`` when attached); stops are the sim's open algo orders.

A position (symbol, positionSide) is *protected* while a resting algo order of type
``STOP_MARKET``, ``STOP`` or ``TRAILING_STOP_MARKET`` on the same symbol and positionSide, on the
closing side (SELL for a long, BUY for a short), is ``closePosition`` or ``reduceOnly`` (in hedge
mode a LONG/SHORT closing order is closing by construction). Take-profits do not count.

Durations are measured on ``clock`` (default ``time.monotonic``: the request clock's pace, i.e. wall
time), with the replay clock (``sim.now_ms``) recorded beside each interval for reference.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # pragma: no cover
    from engine.exchange.sim.server.local import LocalExchange

_STOP_TYPES = frozenset({"STOP_MARKET", "STOP", "TRAILING_STOP_MARKET"})
_ZERO = Decimal(0)


@dataclass
class Unprotected:
    """One stretch during which a position had no resting stop. ``end_s`` None: still open."""

    symbol: str
    position_side: str
    amount: str  # the position amount when the stretch began
    start_s: float
    replay_start_ms: int
    end_s: float | None = None
    replay_end_ms: int | None = None
    ended_by: str = ""  # "stop" | "flat" | "end" (monitor stopped while still bare)

    def duration_s(self, now_s: float | None = None) -> float:
        end = self.end_s if self.end_s is not None else now_s
        return 0.0 if end is None else end - self.start_s


class ProtectionMonitor:
    """``ProtectionMonitor(ex)`` starts watching at once; ``stop()`` closes what is still open."""

    def __init__(self, ex: "LocalExchange", *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ex = ex
        self.clock = clock
        self.positions: dict[tuple[str, str], Decimal] = {}
        self.open: dict[tuple[str, str], Unprotected] = {}
        self.closed: list[Unprotected] = []
        self.checks = 0
        for r in ex.sim.position_risk({}):
            amt = Decimal(r["positionAmt"])
            if amt != 0:
                self.positions[(r["symbol"], r["positionSide"])] = amt
        self._attached = True
        ex.add_user_event_tap(self._on_events)
        self.check()

    # -- evaluation ------------------------------------------------------------------------------

    def _on_events(self, events: list[dict]) -> None:
        for ev in events:
            if ev.get("e") == "ACCOUNT_UPDATE":
                for p in (ev.get("a") or {}).get("P") or ():
                    key = (p["s"], p["ps"])
                    amt = Decimal(p["pa"])
                    if amt != 0:
                        self.positions[key] = amt
                    else:
                        self.positions.pop(key, None)
        self.check()

    def _protected(self) -> set[tuple[str, str, str]]:
        """(symbol, positionSide, closing side) of every resting stop that closes or reduces."""
        out: set[tuple[str, str, str]] = set()
        for a in self.ex.sim.open_algo_orders({}):
            if a.get("orderType") not in _STOP_TYPES or a.get("algoStatus") != "NEW":
                continue
            ps = a.get("positionSide", "BOTH")
            side = a.get("side")
            closing = bool(a.get("closePosition")) or bool(a.get("reduceOnly")) or \
                (ps == "LONG" and side == "SELL") or (ps == "SHORT" and side == "BUY")
            if closing:
                out.add((a["symbol"], ps, side))
        return out

    def check(self) -> None:
        """Re-evaluate now (called on every batch of user-data events; callable any time)."""
        if not self._attached:
            return
        self.checks += 1
        now = self.clock()
        replay = self.ex.sim.now_ms
        stops = self._protected() if self.positions or self.open else set()
        bare: dict[tuple[str, str], Decimal] = {}
        for (sym, ps), amt in self.positions.items():
            closing_side = "SELL" if amt > _ZERO else "BUY"
            if (sym, ps, closing_side) not in stops:
                bare[(sym, ps)] = amt
        for key in list(self.open):
            if key not in bare:
                u = self.open.pop(key)
                u.end_s, u.replay_end_ms = now, replay
                u.ended_by = "flat" if key not in self.positions else "stop"
                self.closed.append(u)
        for key, amt in bare.items():
            if key not in self.open:
                self.open[key] = Unprotected(key[0], key[1], str(amt), now, replay)

    def stop(self) -> None:
        """Stop watching; stretches still open are closed now (``ended_by="end"``)."""
        if not self._attached:
            return
        self.check()
        self._attached = False
        self.ex.remove_user_event_tap(self._on_events)
        now = self.clock()
        for u in self.open.values():
            u.end_s, u.replay_end_ms, u.ended_by = now, self.ex.sim.now_ms, "end"
            self.closed.append(u)
        self.open.clear()

    # -- results ---------------------------------------------------------------------------------

    def intervals(self) -> list[Unprotected]:
        """Every stretch so far, closed ones first, then the open ones (``end_s`` None)."""
        return list(self.closed) + list(self.open.values())

    def longer_than(self, limit_s: float) -> list[Unprotected]:
        """Stretches that lasted (or, still open, have lasted) more than ``limit_s``."""
        now = self.clock()
        return [u for u in self.intervals() if u.duration_s(now) > limit_s]
