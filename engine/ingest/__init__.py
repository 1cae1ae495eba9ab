"""External signals in (note 002): the ways a FOMO/Alpha message reaches a running session.

Every path ends in the same place: an :class:`engine.events.IngestSignal` command submitted to the
runtime, which the engine hands (stamped with its event clock) to every strategy that takes
external signals, publishing :class:`engine.events.ExternalSignalIngested` with the outcome.

* ``envelope.py`` — the JSON shape ``{"type": 113, "id": "...", "symbol": "BTC", "data": {...}}``
  (also ``message_type`` / ``message_id``) checked field by field before it reaches the engine;
* ``gateway.py`` — :class:`SignalGateway`: submit a command and await its outcome (FIFO-matched
  against the ``ExternalSignalIngested`` facts on the bus, bounded wait);
* ``http.py`` — :class:`SignalHttpServer`: ``POST /signal`` on 127.0.0.1, bearer token required;
* ``follow.py`` — :class:`SignalFileFollower`: a JSON-lines file followed as it grows;
* ``services.py`` — :class:`IngestServices`: both of the above for the length of a session, from
  the ``[signals]`` settings (the CLI wraps its ``on_runtime`` callback with it).

``perpdeck signal`` goes through the ctl socket (``engine.control``), and Python code holding the
runtime calls ``rt.process_signal(message_type, message_id, symbol, data)``.

Runtime layer: may import ``engine.events``, ``engine.bus``, ``engine.strategies.external`` (to
check fields) and the sim server's minimal HTTP layer; never ``core`` internals or any UI.
"""

from engine.ingest.envelope import EnvelopeError, parse_envelope, result_doc
from engine.ingest.follow import SignalFileFollower
from engine.ingest.gateway import EngineNotAnswering, GatewayClosed, SignalGateway
from engine.ingest.http import SignalHttpServer
from engine.ingest.services import IngestServices

__all__ = [
    "EngineNotAnswering",
    "EnvelopeError",
    "GatewayClosed",
    "IngestServices",
    "SignalFileFollower",
    "SignalGateway",
    "SignalHttpServer",
    "parse_envelope",
    "result_doc",
]
