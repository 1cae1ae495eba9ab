"""In-process pub/sub. Synchronous handlers for the pipeline; bounded queues for async consumers.

Publishing costs one dict lookup when nobody listens to a fact type, so the hot path can publish
freely. Async subscribers get a bounded ``asyncio.Queue``; when a slow consumer (the console)
falls behind, the oldest item is dropped and counted, so the engine never blocks on a reader.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any, Callable, Iterable

log = logging.getLogger(__name__)

Handler = Callable[[Any], None]


class Bus:
    def __init__(self) -> None:
        self._handlers: dict[type, list[Handler]] = defaultdict(list)
        self._queues: dict[type, list[asyncio.Queue[Any]]] = defaultdict(list)
        self.dropped = 0

    def subscribe(self, fact_type: type, handler: Handler) -> None:
        self._handlers[fact_type].append(handler)

    def unsubscribe(self, fact_type: type, handler: Handler) -> None:
        handlers = self._handlers.get(fact_type)
        if handlers and handler in handlers:
            handlers.remove(handler)

    def queue(self, fact_types: Iterable[type], maxsize: int = 10_000) -> asyncio.Queue[Any]:
        q: asyncio.Queue[Any] = asyncio.Queue(maxsize=maxsize)
        for t in fact_types:
            self._queues[t].append(q)
        return q

    def wants(self, fact_type: type) -> bool:
        return bool(self._handlers.get(fact_type) or self._queues.get(fact_type))

    def publish(self, fact: Any) -> None:
        t = type(fact)
        handlers = self._handlers.get(t)
        if handlers:
            for h in tuple(handlers):
                try:
                    h(fact)
                except Exception:  # a subscriber's bug must not stop the engine
                    log.exception("bus handler %r failed on %s", h, t.__name__)
        queues = self._queues.get(t)
        if queues:
            for q in queues:
                if q.full():
                    try:
                        q.get_nowait()
                        self.dropped += 1
                    except asyncio.QueueEmpty:
                        pass
                q.put_nowait(fact)
