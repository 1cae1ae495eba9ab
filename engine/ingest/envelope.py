"""The JSON shape of one external signal, and the shape of the answer about it.

In: ``{"type": 113, "id": "m-1", "symbol": "BTC", "data": {...}}`` — ``message_type`` and
``message_id`` are accepted for ``type`` and ``id``; ``data`` is optional. Unknown keys are refused
(a typo such as ``"simbol"`` must not pass silently). Field values are checked with the confluence
strategy's own parser, so a bad one is refused here, naming the field, before it reaches the
engine. The signal time is never taken from the message: the engine stamps it with its event clock.

Out (:func:`result_doc`): ``{"ok", "status", "id", "type", "symbol", "time_ms", "reason", "score",
"outcome", "error"}`` — ``status`` is the active strategy's verdict (``pending``,
``below_threshold``, ``confluence``, ``duplicate``, ``ignored``), ``rejected`` for a bad field,
``no_strategy`` when no strategy takes external signals.
"""

from __future__ import annotations

from typing import Any, Mapping

from engine.events import ExternalSignalIngested, IngestSignal
from engine.strategies.external import ExternalSignalError, parse_external_signal

ALIASES = {"type": "type", "message_type": "type", "id": "id", "message_id": "id", "symbol": "symbol",
           "data": "data"}
EXAMPLE = '{"type": 113, "id": "m-1", "symbol": "BTC", "data": {}}'


class EnvelopeError(ValueError):
    """A signal that cannot be accepted; the message starts with the field it names."""


def parse_envelope(obj: Any, source: str) -> IngestSignal:
    """One JSON object → the command that carries it to the engine (``source`` tags it for the log)."""
    if not isinstance(obj, Mapping):
        raise EnvelopeError(f"signal: expected a JSON object such as {EXAMPLE}, got {_kind(obj)}")
    fields: dict[str, Any] = {}
    for key, value in obj.items():
        name = ALIASES.get(key) if isinstance(key, str) else None
        if name is None:
            raise EnvelopeError(f"{key}: unknown field; expected type, id, symbol and optionally data")
        if name in fields:
            raise EnvelopeError(f"{key}: given twice (type/message_type and id/message_id are the same field)")
        fields[name] = value
    for name, what in (("type", "110 (Alpha), 112 (FOMO intensified) or 113 (FOMO)"),
                       ("id", "a message id (text or integer)"), ("symbol", "a symbol such as BTC or BTCUSDT")):
        if name not in fields:
            raise EnvelopeError(f"{name}: missing; expected {what}")
    try:  # the same checks the strategy makes; the time is the engine's, so any valid one will do here
        parse_external_signal(fields["type"], fields["id"], fields["symbol"], fields.get("data"), 0)
    except ExternalSignalError as exc:
        raise EnvelopeError(str(exc)) from None
    return IngestSignal(fields["type"], fields["id"], fields["symbol"], fields.get("data"), source)


def result_doc(fact: ExternalSignalIngested) -> dict[str, Any]:
    """What became of one signal, JSON-ready (see the module docstring)."""
    outcome = fact.outcome
    if fact.error:
        status = "rejected"
    elif outcome is None:
        status = "no_strategy"
    else:
        status = str(outcome.get("status", "unknown"))
    conf = (outcome or {}).get("confluence") or {}
    reason = fact.error or (outcome or {}).get("reason") or (
        "no strategy takes external signals" if outcome is None else "")
    return {
        "ok": not fact.error,
        "status": status,
        "id": _plain(fact.message_id),
        "type": _plain(fact.message_type),
        "symbol": _plain(fact.symbol),
        "time_ms": fact.time_ms,
        "reason": reason,
        "score": conf.get("score"),
        "outcome": outcome,
        "error": fact.error or None,
    }


def error_doc(message: str, status: str = "rejected", obj: Any = None) -> dict[str, Any]:
    """The answer for a signal refused before it reached the engine."""
    get = obj.get if isinstance(obj, Mapping) else (lambda *_: None)
    return {"ok": False, "status": status, "id": _plain(get("id", get("message_id"))),
            "type": _plain(get("type", get("message_type"))), "symbol": _plain(get("symbol")), "time_ms": None,
            "reason": message, "score": None, "outcome": None, "error": message}


def describe(doc: Mapping[str, Any]) -> str:
    """One line for a person: ``113 BTC id=m-1: pending — waiting for an Alpha``."""
    head = f"{doc.get('type')} {doc.get('symbol')} id={doc.get('id')}: {doc.get('status')}"
    if doc.get("score") is not None and doc.get("status") in ("confluence", "below_threshold"):
        head += f" (score {float(doc['score']):.3f})"
    reason = doc.get("reason")
    return f"{head} — {reason}" if reason else head


def _plain(v: Any) -> Any:
    return v if v is None or isinstance(v, (str, int, float, bool)) else str(v)


def _kind(obj: Any) -> str:
    return {list: "a list", str: "text", int: "a number", float: "a number", bool: "true/false",
            type(None): "null"}.get(type(obj), type(obj).__name__)
