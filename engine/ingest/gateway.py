"""Submit an external signal to the running engine and wait (bounded) for what became of it.

The runtime takes commands from one FIFO queue and the engine answers every ``IngestSignal`` with
exactly one ``ExternalSignalIngested`` fact on its bus, echoing the command's type, id, symbol and
source. So the n-th fact with a given (source, type, id, symbol) answers the n-th command sent
with them: each command gets a slot (a future) in a per-key queue, and a fact fills the oldest
slot of its key. A caller that gave up waiting leaves its slot in place (cancelled) so a late fact
still lands on the right one.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Callable

from engine.events import ExternalSignalIngested, IngestSignal


class EngineNotAnswering(Exception):
    """The engine did not take the signal in time (replay finished, session stopping, stuck)."""


class GatewayClosed(Exception):
    """The session ended before the engine took the signal."""


def _key(source: Any, message_type: Any, message_id: Any, symbol: Any) -> tuple[str, str, str, str]:
    return (repr(source), repr(message_type), repr(message_id), repr(symbol))


class SignalGateway:
    """``await send(cmd)`` → the engine's ``ExternalSignalIngested`` for that command."""

    def __init__(self, submit: Callable[[object], None], bus, *, timeout_s: float = 10.0) -> None:
        self._submit = submit
        self._bus = bus
        self.timeout_s = timeout_s
        self._slots: dict[tuple, deque[asyncio.Future]] = {}
        self._closed = False
        self.sent = 0
        self.answered = 0
        bus.subscribe(ExternalSignalIngested, self._on_fact)

    @classmethod
    def for_runtime(cls, rt, *, timeout_s: float = 10.0) -> "SignalGateway":
        """A gateway onto a running session's runtime (``rt.submit`` and the engine's bus)."""
        return cls(rt.submit, rt.run_.engine.bus, timeout_s=timeout_s)

    def pending(self) -> int:
        return sum(1 for q in self._slots.values() for f in q if not f.done())

    def send_nowait(self, cmd: IngestSignal) -> asyncio.Future:
        """Submit ``cmd``; the returned future resolves to its ``ExternalSignalIngested``."""
        if self._closed:
            raise GatewayClosed("the session has ended")
        fut = asyncio.get_running_loop().create_future()
        self._slots.setdefault(_key(cmd.source, cmd.message_type, cmd.message_id, cmd.symbol), deque()).append(fut)
        self.sent += 1
        self._submit(cmd)
        return fut

    async def send(self, cmd: IngestSignal, timeout_s: float | None = None) -> ExternalSignalIngested:
        fut = self.send_nowait(cmd)
        try:
            return await asyncio.wait_for(asyncio.shield(fut), self.timeout_s if timeout_s is None else timeout_s)
        except asyncio.TimeoutError:
            fut.cancel()  # the slot stays: a late answer must not go to the next signal with this key
            raise EngineNotAnswering(
                f"the engine did not take the signal within {self.timeout_s:g} s "
                "(has the replay finished, or is the session stopping?)") from None

    def _on_fact(self, fact: ExternalSignalIngested) -> None:
        key = _key(fact.source, fact.message_type, fact.message_id, fact.symbol)
        q = self._slots.get(key)
        if not q:
            return  # someone else's signal (the console, the Python call, another gateway)
        fut = q.popleft()
        if not q:
            del self._slots[key]
        self.answered += 1
        if not fut.done():
            fut.set_result(fact)

    def close(self) -> None:
        """Stop listening; whoever still waits gets :class:`GatewayClosed`."""
        if self._closed:
            return
        self._closed = True
        self._bus.unsubscribe(ExternalSignalIngested, self._on_fact)
        for q in self._slots.values():
            for fut in q:
                if not fut.done():
                    fut.set_exception(GatewayClosed("the session ended before the engine took the signal"))
                    fut.exception()  # retrieved: no "exception never retrieved" noise for abandoned slots
        self._slots.clear()
