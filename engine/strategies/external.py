"""External signals (note 002): parsing, de-duplication and FOMO + Alpha confluence scoring.

Sans-I/O and clock-free: every time is an epoch-millisecond value the caller supplies from the
event/exchange clock; nothing here reads ``time.time()``.

Signal types (the ValueScan message types of note 002):

======  ====================  =========================================================
type    kind                  meaning
======  ====================  =========================================================
110     Alpha                 an excess-return opportunity on the symbol
113     FOMO                  crowd sentiment heating up (FOMO strength 0.8)
112     FOMO intensified      sentiment heating up hard (FOMO strength 1.0); ignored
                              when ``enable_fomo_intensify`` is off
======  ====================  =========================================================

A **confluence** is a FOMO (113, or 112 when enabled) and an Alpha on the same symbol less than
``signal_time_window_s`` apart (default 300 s). Its score, in [0, 1]::

    score = 0.4 × proximity(gap) + 0.3 × fomo_strength + 0.3 × freshness(age)

* ``proximity`` — piecewise linear in x = gap / window through the points note 002's worked
  examples give: (0, 1.00), (0.2, 0.99), (0.8, 0.20), (1, 0.00). With the default 300 s window:
  60 s → 0.99, 240 s → 0.20; a gap of a whole window or more is no confluence at all.
* ``fomo_strength`` — 1.0 for type 112, 0.8 for type 113.
* ``freshness`` — 1.0 while the confluence (the later of its two signals) is at most
  ``freshness_full_s`` old (default one hour), then falling linearly to 0 over ``freshness_decay_s``
  (default another hour).

Only confluences scoring at least ``min_signal_score`` (default 0.6) are traded.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from enum import Enum, IntEnum
from types import MappingProxyType
from typing import Any, Mapping

ALPHA = 110
FOMO_INTENSIFIED = 112
FOMO = 113

#: Score weights (note 002).
W_PROXIMITY = 0.4
W_FOMO = 0.3
W_FRESHNESS = 0.3

#: Proximity curve anchors, (gap / window, proximity); linear in between (note 002's examples).
PROXIMITY_ANCHORS: tuple[tuple[float, float], ...] = ((0.0, 1.0), (0.2, 0.99), (0.8, 0.20), (1.0, 0.0))

#: Quote assets a symbol may already end with; anything else gets the default quote appended.
KNOWN_QUOTES = ("USDT", "USDC")


class ExternalSignalError(ValueError):
    """An external signal that cannot be used; the message starts with the offending field."""


class SignalKind(IntEnum):
    """The external message types this module understands."""

    ALPHA = ALPHA
    FOMO_INTENSIFIED = FOMO_INTENSIFIED
    FOMO = FOMO

    @property
    def is_fomo(self) -> bool:
        return self is not SignalKind.ALPHA

    @property
    def label(self) -> str:
        return {110: "Alpha", 112: "FOMO-intensified", 113: "FOMO"}[int(self)]


@dataclass(frozen=True, slots=True)
class ExternalSignal:
    """One validated, normalised external signal. ``data`` is a read-only copy of the payload."""

    kind: SignalKind
    message_id: str
    symbol: str  # normalised exchange symbol, e.g. BTCUSDT
    time_ms: int  # when it happened, on the event clock
    data: Mapping[str, Any]

    @property
    def message_type(self) -> int:
        return int(self.kind)

    def as_dict(self) -> dict[str, Any]:
        return {"message_type": int(self.kind), "message_id": self.message_id, "symbol": self.symbol,
                "time_ms": self.time_ms, "data": dict(self.data)}


# -- parsing ----------------------------------------------------------------------------------------


def normalize_symbol(raw: Any, quote: str = "USDT") -> str:
    """``"btc"`` / ``"BTC"`` / ``"BTCUSDT"`` / ``"BTC/USDT"`` / ``"btc-usdt"`` → ``"BTCUSDT"``.

    Whitespace, ``/``, ``-`` and ``_`` are dropped and letters upper-cased; a symbol that does not
    already end with a known quote (USDT, USDC, or ``quote``) gets ``quote`` appended.
    """
    if not isinstance(raw, str):
        raise ExternalSignalError(f"symbol: expected text such as 'BTC' or 'BTCUSDT', got {raw!r}")
    s = "".join(ch for ch in raw.strip().upper() if ch not in "/-_ ")
    if not s or not s.isalnum() or not s.isascii():
        raise ExternalSignalError(f"symbol: expected letters and digits such as 'BTC' or 'BTCUSDT', got {raw!r}")
    quote = quote.upper()
    for q in (quote, *KNOWN_QUOTES):
        if s.endswith(q):
            if len(s) == len(q):
                raise ExternalSignalError(f"symbol: {raw!r} is only a quote asset; expected e.g. 'BTC' or 'BTC{q}'")
            return s
    if len(s) > 20:
        raise ExternalSignalError(f"symbol: {raw!r} is too long for a futures symbol")
    return s + quote


def _parse_type(raw: Any) -> SignalKind:
    value: Any = raw
    if isinstance(raw, str) and raw.strip().isdigit():
        value = int(raw.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value not in (ALPHA, FOMO_INTENSIFIED, FOMO):
        raise ExternalSignalError(
            f"message_type: expected 110 (Alpha), 112 (FOMO intensified) or 113 (FOMO), got {raw!r}")
    return SignalKind(value)


def _parse_id(raw: Any) -> str:
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise ExternalSignalError(f"message_id: expected non-empty text or an integer, got {raw!r}")
    s = str(raw).strip()
    if not s:
        raise ExternalSignalError("message_id: must not be empty")
    if len(s) > 128:
        raise ExternalSignalError(f"message_id: longer than 128 characters ({len(s)})")
    return s


def _parse_time(raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise ExternalSignalError(f"time_ms: expected epoch milliseconds (an integer), got {raw!r}")
    if isinstance(raw, float) and (not math.isfinite(raw) or not raw.is_integer()):
        raise ExternalSignalError(f"time_ms: expected whole epoch milliseconds, got {raw!r}")
    t = int(raw)
    if t < 0:
        raise ExternalSignalError(f"time_ms: must be >= 0, got {raw!r}")
    return t


def _parse_data(raw: Any) -> Mapping[str, Any]:
    if raw is None:
        return MappingProxyType({})
    if not isinstance(raw, Mapping):
        raise ExternalSignalError(f"data: expected a mapping (JSON object) or nothing, got {type(raw).__name__}")
    return MappingProxyType(dict(raw))


def parse_external_signal(message_type: Any, message_id: Any, symbol: Any, data: Any, time_ms: Any, *,
                          quote: str = "USDT") -> ExternalSignal:
    """Validate and normalise one signal; :class:`ExternalSignalError` names the bad field."""
    return ExternalSignal(
        kind=_parse_type(message_type),
        message_id=_parse_id(message_id),
        symbol=normalize_symbol(symbol, quote),
        time_ms=_parse_time(time_ms),
        data=_parse_data(data),
    )


def parse_external_payload(payload: Any, *, time_ms: int | None = None, quote: str = "USDT") -> ExternalSignal:
    """One signal from a JSON-like object.

    Keys: ``message_type`` (or ``type``), ``message_id`` (or ``id``), ``symbol``, optional ``data``
    and ``time_ms``. ``time_ms`` given here (the caller's event clock) wins over the payload's.
    """
    if not isinstance(payload, Mapping):
        raise ExternalSignalError(f"signal: expected a JSON object, got {type(payload).__name__}")

    def pick(*keys: str) -> Any:
        for k in keys:
            if k in payload:
                return payload[k]
        raise ExternalSignalError(f"{keys[0]}: missing")

    t = time_ms if time_ms is not None else pick("time_ms")
    return parse_external_signal(pick("message_type", "type"), pick("message_id", "id"), pick("symbol"),
                                 payload.get("data"), t, quote=quote)


class SeenIds:
    """Remembers the last ``capacity`` message ids (oldest forgotten first) for de-duplication."""

    __slots__ = ("capacity", "_ids")

    def __init__(self, capacity: int = 100_000) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def add(self, message_id: str) -> bool:
        """Remember ``message_id``; ``False`` if it was already known (a duplicate)."""
        if message_id in self._ids:
            return False
        self._ids[message_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)


# -- scoring ----------------------------------------------------------------------------------------


def proximity_score(gap_ms: float, window_ms: float) -> float:
    """Time proximity of the two signals, 1 (together) … 0 (a whole window apart or more)."""
    if window_ms <= 0:
        return 0.0
    x = abs(gap_ms) / window_ms
    if x >= 1.0:
        return 0.0
    anchors = PROXIMITY_ANCHORS
    for (x0, y0), (x1, y1) in zip(anchors, anchors[1:]):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return 0.0  # pragma: no cover - x < 1 always hits a segment


def freshness_score(age_ms: float, full_ms: float = 3_600_000, decay_ms: float = 3_600_000) -> float:
    """1 up to ``full_ms`` old, then linearly down to 0 at ``full_ms + decay_ms`` (0 decay = a cliff)."""
    if age_ms <= full_ms:
        return 1.0
    if decay_ms <= 0:
        return 0.0
    return max(0.0, 1.0 - (age_ms - full_ms) / decay_ms)


def fomo_strength(kind: SignalKind | int) -> float:
    """1.0 for FOMO intensified (112), 0.8 for FOMO (113); 0 for anything else."""
    k = int(kind)
    return 1.0 if k == FOMO_INTENSIFIED else 0.8 if k == FOMO else 0.0


@dataclass(frozen=True, slots=True)
class ConfluenceScore:
    """The three factors and the weighted total."""

    proximity: float
    fomo_strength: float
    freshness: float

    @property
    def score(self) -> float:
        """The weighted total, rounded to 9 decimals (so 0.68 is 0.68, not 0.6799999999999999)."""
        return round(W_PROXIMITY * self.proximity + W_FOMO * self.fomo_strength + W_FRESHNESS * self.freshness, 9)

    def describe(self) -> str:
        return (f"score {self.score:.3f} = 0.4×proximity {self.proximity:.3f} + 0.3×FOMO {self.fomo_strength:.1f} "
                f"+ 0.3×freshness {self.freshness:.3f}")


def score_confluence(gap_ms: float, fomo_kind: SignalKind | int, age_ms: float, *, window_ms: float = 300_000,
                     freshness_full_ms: float = 3_600_000,
                     freshness_decay_ms: float = 3_600_000) -> ConfluenceScore | None:
    """Score a FOMO/Alpha pair ``gap_ms`` apart whose later signal is ``age_ms`` old.

    ``None`` when the pair is no confluence: the gap is a whole window or more.
    """
    if abs(gap_ms) >= window_ms:
        return None
    return ConfluenceScore(proximity_score(gap_ms, window_ms), fomo_strength(fomo_kind),
                           freshness_score(age_ms, freshness_full_ms, freshness_decay_ms))


@dataclass(frozen=True)
class ConfluenceParams:
    signal_time_window_s: int = 300
    """A FOMO and an Alpha on one symbol less than this many seconds apart form a confluence."""
    min_signal_score: float = 0.6
    """Trade only confluences scoring at least this (0–1)."""
    enable_fomo_intensify: bool = True
    """Count type 112 (FOMO intensified, strength 1.0) as FOMO; off = only type 113."""
    freshness_full_s: int = 3600
    """A confluence is fully fresh (1.0) for this many seconds after its later signal."""
    freshness_decay_s: int = 3600
    """…then its freshness falls linearly to 0 over this many seconds."""
    quote: str = "USDT"
    """Quote asset appended to bare symbols ('BTC' → 'BTCUSDT')."""
    max_seen_ids: int = 100_000
    """How many message ids are remembered for de-duplication."""

    def __post_init__(self) -> None:
        if self.signal_time_window_s < 1:
            raise ValueError(f"signal_time_window_s must be >= 1, got {self.signal_time_window_s}")
        if not (0.0 <= self.min_signal_score <= 1.0):
            raise ValueError(f"min_signal_score must be between 0 and 1, got {self.min_signal_score}")
        if self.freshness_full_s < 0:
            raise ValueError(f"freshness_full_s must be >= 0, got {self.freshness_full_s}")
        if self.freshness_decay_s < 0:
            raise ValueError(f"freshness_decay_s must be >= 0, got {self.freshness_decay_s}")
        if not (self.quote.isalpha() and self.quote.isascii() and 2 <= len(self.quote) <= 6):
            raise ValueError(f"quote must be 2-6 letters, got {self.quote!r}")
        if self.max_seen_ids < 1:
            raise ValueError(f"max_seen_ids must be >= 1, got {self.max_seen_ids}")

    @property
    def window_ms(self) -> int:
        return self.signal_time_window_s * 1000

    def score(self, gap_ms: float, fomo_kind: SignalKind | int, age_ms: float) -> ConfluenceScore | None:
        return score_confluence(gap_ms, fomo_kind, age_ms, window_ms=self.window_ms,
                                freshness_full_ms=self.freshness_full_s * 1000,
                                freshness_decay_ms=self.freshness_decay_s * 1000)


@dataclass(frozen=True, slots=True)
class Confluence:
    """A matched FOMO + Alpha pair on one symbol and its score when it was matched."""

    symbol: str
    fomo: ExternalSignal
    alpha: ExternalSignal
    scored: ConfluenceScore

    @property
    def gap_ms(self) -> int:
        return abs(self.fomo.time_ms - self.alpha.time_ms)

    @property
    def time_ms(self) -> int:
        """When the confluence became true: the later of the two signals."""
        return max(self.fomo.time_ms, self.alpha.time_ms)

    @property
    def score(self) -> float:
        return self.scored.score

    def rescore(self, now_ms: int, params: ConfluenceParams) -> ConfluenceScore:
        """The same pair scored at ``now_ms`` (only freshness changes with time)."""
        s = params.score(self.gap_ms, self.fomo.kind, max(0, now_ms - self.time_ms))
        assert s is not None  # the gap was inside the window when matched
        return s

    def describe(self) -> str:
        return (f"{self.fomo.kind.label}({self.fomo.message_type}) {self.fomo.message_id} + "
                f"Alpha(110) {self.alpha.message_id} {self.gap_ms / 1000:.0f}s apart")

    def as_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol, "fomo": self.fomo.as_dict(), "alpha": self.alpha.as_dict(),
            "gap_ms": self.gap_ms, "time_ms": self.time_ms, "score": round(self.score, 6),
            "proximity": self.scored.proximity, "fomo_strength": self.scored.fomo_strength,
            "freshness": self.scored.freshness,
        }


class IngestStatus(str, Enum):
    """What happened to one ingested external signal."""

    DUPLICATE = "duplicate"  # its message id was seen before: ignored
    IGNORED = "ignored"  # type 112 while enable_fomo_intensify is off
    PENDING = "pending"  # stored, waiting for its counterpart
    BELOW_THRESHOLD = "below_threshold"  # it pairs, but the best pair scores under min_signal_score
    CONFLUENCE = "confluence"  # it completed a confluence at or above min_signal_score


@dataclass(frozen=True, slots=True)
class IngestResult:
    """The outcome of ingesting one signal (log it as is: ``as_dict`` is JSON-ready)."""

    status: IngestStatus
    signal: ExternalSignal
    confluence: Confluence | None = None  # the (best) pair for CONFLUENCE and BELOW_THRESHOLD
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status.value, "signal": self.signal.as_dict(), "reason": self.reason,
                "confluence": self.confluence.as_dict() if self.confluence else None}


@dataclass(frozen=True, slots=True)
class AggregatorCounts:
    received: int
    duplicates: int
    ignored: int
    below_threshold: int
    confluences: int
    pending_fomo: int
    pending_alpha: int


class ConfluenceAggregator:
    """Matches FOMO and Alpha signals per symbol (note 002's signal aggregator), sans-I/O.

    Each new signal is paired with the opposite kind's pending signals on its symbol that lie
    less than a window apart; the best-scoring pair (ties: the smaller gap, then the earlier
    signal) is a confluence when it scores at least ``min_signal_score`` — both signals are then
    consumed. Otherwise the signal waits. Freshness is measured at the latest event time the
    aggregator has seen. Pending signals older than two windows before that time are dropped.
    """

    def __init__(self, params: ConfluenceParams | None = None) -> None:
        self.params = params or ConfluenceParams()
        self._seen = SeenIds(self.params.max_seen_ids)
        self._fomo: dict[str, list[ExternalSignal]] = {}
        self._alpha: dict[str, list[ExternalSignal]] = {}
        self.now_ms = 0
        self.received = 0
        self.duplicates = 0
        self.ignored = 0
        self.below_threshold = 0
        self.confluences = 0

    def add(self, sig: ExternalSignal) -> IngestResult:
        """Ingest one parsed signal and report what became of it."""
        self.received += 1
        if not self._seen.add(sig.message_id):
            self.duplicates += 1
            return IngestResult(IngestStatus.DUPLICATE, sig, reason=f"message id {sig.message_id} already seen")
        if sig.kind is SignalKind.FOMO_INTENSIFIED and not self.params.enable_fomo_intensify:
            self.ignored += 1
            return IngestResult(IngestStatus.IGNORED, sig, reason="type 112 ignored: enable_fomo_intensify is off")
        if sig.time_ms > self.now_ms:
            self.now_ms = sig.time_ms
        p = self.params
        window = p.window_ms
        cutoff = self.now_ms - 2 * window
        own, other = (self._fomo, self._alpha) if sig.kind.is_fomo else (self._alpha, self._fomo)
        candidates = other.get(sig.symbol)
        best: tuple[tuple[float, int, int, str], ExternalSignal, ConfluenceScore] | None = None
        if candidates:
            candidates[:] = [s for s in candidates if s.time_ms >= cutoff]
            for cand in candidates:
                gap = abs(cand.time_ms - sig.time_ms)
                fomo_kind = sig.kind if sig.kind.is_fomo else cand.kind
                scored = p.score(gap, fomo_kind, max(0, self.now_ms - max(cand.time_ms, sig.time_ms)))
                if scored is None:
                    continue
                key = (-scored.score, gap, cand.time_ms, cand.message_id)
                if best is None or key < best[0]:
                    best = (key, cand, scored)
        if best is not None:
            _, cand, scored = best
            fomo, alpha = (sig, cand) if sig.kind.is_fomo else (cand, sig)
            conf = Confluence(sig.symbol, fomo, alpha, scored)
            if scored.score >= p.min_signal_score:
                candidates.remove(cand)  # type: ignore[union-attr]
                if not candidates:
                    del other[sig.symbol]
                self.confluences += 1
                return IngestResult(IngestStatus.CONFLUENCE, sig, conf, conf.describe() + ", " + scored.describe())
            self._store(own, sig, cutoff)
            self.below_threshold += 1
            return IngestResult(IngestStatus.BELOW_THRESHOLD, sig, conf,
                                f"{conf.describe()}, {scored.describe()} < min_signal_score {p.min_signal_score:g}")
        self._store(own, sig, cutoff)
        return IngestResult(IngestStatus.PENDING, sig, reason=f"waiting for a matching "
                                                              f"{'Alpha' if sig.kind.is_fomo else 'FOMO'} signal")

    @staticmethod
    def _store(book: dict[str, list[ExternalSignal]], sig: ExternalSignal, cutoff: int) -> None:
        lst = book.setdefault(sig.symbol, [])
        if lst and lst[0].time_ms < cutoff:
            lst[:] = [s for s in lst if s.time_ms >= cutoff]
        lst.append(sig)

    def pending(self, symbol: str | None = None) -> tuple[ExternalSignal, ...]:
        """Unmatched signals (of one symbol, or all), oldest first."""
        books = (self._fomo, self._alpha)
        out = [s for b in books for sym, lst in b.items() if symbol is None or sym == symbol for s in lst]
        return tuple(sorted(out, key=lambda s: (s.time_ms, s.message_id)))

    def counts(self) -> AggregatorCounts:
        return AggregatorCounts(
            received=self.received, duplicates=self.duplicates, ignored=self.ignored,
            below_threshold=self.below_threshold, confluences=self.confluences,
            pending_fomo=sum(len(v) for v in self._fomo.values()),
            pending_alpha=sum(len(v) for v in self._alpha.values()),
        )
