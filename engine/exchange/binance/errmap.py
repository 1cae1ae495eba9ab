"""Connector and transport exceptions → typed :class:`ExchangeError`s (protocol notes §3, §10).

The mapping only reads Binance's code, message and HTTP status (plus ``Retry-After``); request
parameters, URLs, keys and signatures never reach the resulting message. Transport exceptions
from ``requests`` can carry the full URL (with the signature) in their text, so only their class
name is kept.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable, Mapping

import requests
from binance.error import ClientError, Error as ConnectorError, ServerError

from engine.exchange.errors import (
    AUTH_CODES,
    AuthError,
    Banned,
    ExchangeError,
    RateLimited,
    TransientError,
    UnknownStatusError,
    hint_for,
)

#: 503 variant A: reached the engine, no reply — execution status unknown (§3.1).
UNKNOWN_503_TEXT = "Unknown error, please check your request or try again later."
#: 503 variant B: certainly failed.
SERVICE_UNAVAILABLE_TEXT = "Service Unavailable."
#: 503 variant C (also -1001): failed, may resend.
INTERNAL_ERROR_TEXT = "Internal error; unable to process your request"

TRANSIENT_CODES = frozenset({-1001, -1008})
UNKNOWN_CODES = frozenset({-1006, -1007})
DEFAULT_BAN_S = 120.0

_BANNED_UNTIL = re.compile(r"banned until\s*(\d{10,})", re.IGNORECASE)
_REDACTIONS = (
    (re.compile(r"(signature=)[^&\s\"']+", re.IGNORECASE), r"\1***"),
    (re.compile(r"(listenKey=)[^&\s\"']+", re.IGNORECASE), r"\1***"),
    (re.compile(r"(\"listenKey\"\s*:\s*\")[^\"]+", re.IGNORECASE), r"\1***"),
    (re.compile(r"(/ws/)[A-Za-z0-9]{16,}"), r"\1***"),
    (re.compile(r"(X-MBX-APIKEY['\"]?\s*[:=]\s*['\"]?)[^'\"\s,}]+", re.IGNORECASE), r"\1***"),
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Blank signatures, listen keys, API-key headers and any given secret out of ``text``."""
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, "***")
    for rx, repl in _REDACTIONS:
        text = rx.sub(repl, text)
    return text


def truncate(text: str, n: int = 300) -> str:
    text = str(text)
    return text if len(text) <= n else text[:n] + f"…(+{len(text) - n} chars)"


def short_key(key: str | None) -> str:
    """A listen key (or any token) shortened for log lines."""
    if not key:
        return "-"
    return key[:4] + "…" if len(key) > 8 else "***"


def _header(headers: Any, name: str) -> str | None:
    if not headers:
        return None
    try:
        v = headers.get(name)
        if v is None and isinstance(headers, Mapping):
            low = name.lower()
            for k, val in headers.items():
                if str(k).lower() == low:
                    return str(val)
        return None if v is None else str(v)
    except AttributeError:
        return None


def retry_after_s(headers: Any) -> float | None:
    v = _header(headers, "Retry-After")
    if v is None:
        return None
    try:
        s = float(v)
    except ValueError:
        return None
    return s if s >= 0 else None


def banned_until_ms(msg: str) -> int | None:
    m = _BANNED_UNTIL.search(msg or "")
    return int(m.group(1)) if m else None


def _body(text: str) -> tuple[int | None, str]:
    try:
        doc = json.loads(text)
    except (ValueError, TypeError):
        return None, text
    if isinstance(doc, dict):
        code = doc.get("code")
        try:
            code = int(code) if code is not None else None
        except (TypeError, ValueError):
            code = None
        return code, str(doc.get("msg", text))
    return None, text


def map_client_error(e: ClientError, *, env: str | None = None, now_ms: int = 0) -> ExchangeError:
    status = int(e.status_code or 400)
    code = e.error_code
    try:
        code = int(code) if code is not None else 0
    except (TypeError, ValueError):
        code = 0
    msg = truncate(redact(str(e.error_message or "")))
    hint = hint_for(code, env) or None
    if status == 418:
        ra = retry_after_s(e.header)
        until = banned_until_ms(msg) or 0
        if ra is not None:
            until = max(until, now_ms + int(ra * 1000))
        if until <= now_ms:
            until = now_ms + int(DEFAULT_BAN_S * 1000)
        return Banned(code or -1003, msg, status, until_ms=until,
                      retry_after_s=ra if ra is not None else (until - now_ms) / 1000)
    if status == 429 or code in (-1003, -1015):
        ra = retry_after_s(e.header)
        until = now_ms + int(ra * 1000) if ra is not None else 0
        return RateLimited(code or -1003, msg, status, until_ms=until, retry_after_s=ra, hint=hint)
    if status == 401 or code in AUTH_CODES:
        return AuthError(code, msg, status, hint=hint)
    if status == 408 or code in UNKNOWN_CODES:
        return UnknownStatusError(code or -1007, msg or "request timeout (HTTP 408)", status, hint=hint)
    if code in TRANSIENT_CODES:
        return TransientError(code, msg, status, hint=hint)
    if status == 403 and not code:
        return ExchangeError(0, msg or "forbidden", status,
                             hint="blocked by Binance's web application firewall (HTTP 403): slow down and "
                                  "check the request")
    return ExchangeError(code, msg, status, hint=hint)


def map_server_error(e: ServerError, *, env: str | None = None) -> ExchangeError:
    status = int(e.status_code or 500)
    raw = str(e.message or "")
    code, msg = _body(raw)
    msg = truncate(redact(msg)) or f"HTTP {status}"
    hint = hint_for(code, env) if code is not None else None
    if UNKNOWN_503_TEXT in raw or (code is not None and code in UNKNOWN_CODES):
        return UnknownStatusError(code if code is not None else -1006, msg, status,
                                  hint=hint or "execution status unknown: querying the order before any resend")
    if SERVICE_UNAVAILABLE_TEXT in raw or INTERNAL_ERROR_TEXT in raw or (code is not None and code in TRANSIENT_CODES):
        return TransientError(code if code is not None else -1001, msg, status,
                              hint=hint or "Binance is unavailable: the request was not applied; retrying with backoff")
    if code is not None and code in (-1003, -1015):
        return RateLimited(code, msg, status, hint=hint or None)
    # Any other 5xx ("Request occur unknown error.", gateway errors): may or may not have been applied.
    return UnknownStatusError(code if code is not None else 0, msg, status,
                              hint=hint or "Binance-side error: the request may or may not have been applied")


def map_exception(exc: BaseException, *, env: str | None = None, now_ms: int = 0) -> ExchangeError:
    """Any failure of one HTTP exchange with Binance as a typed error (never with the URL in it)."""
    if isinstance(exc, ExchangeError):
        return exc
    if isinstance(exc, ClientError):
        return map_client_error(exc, env=env, now_ms=now_ms)
    if isinstance(exc, ServerError):
        return map_server_error(exc, env=env)
    name = type(exc).__name__
    if isinstance(exc, (requests.exceptions.ConnectTimeout,)):
        return TransientError(0, f"could not connect to Binance ({name})", 0,
                              hint="network problem: the request was not sent; retrying with backoff")
    if isinstance(exc, requests.exceptions.ConnectionError) and _is_connect_failure(exc):
        return TransientError(0, f"could not connect to Binance ({name})", 0,
                              hint="network problem: the request was not sent; retrying with backoff")
    if isinstance(exc, (requests.exceptions.Timeout, requests.exceptions.ConnectionError)):
        return UnknownStatusError(0, f"no response from Binance ({name})", 0,
                                  hint="the request may or may not have been applied: querying before any resend")
    if isinstance(exc, ConnectorError):
        return ExchangeError(0, f"request rejected by the client library ({name})", 0,
                             hint="a required parameter or the API key is missing")
    if isinstance(exc, requests.exceptions.RequestException):
        return ExchangeError(0, f"HTTP client error ({name})", 0)
    return UnknownStatusError(0, f"unexpected failure talking to Binance ({name})", 0,
                              hint="the request may or may not have been applied")


def _is_connect_failure(exc: BaseException) -> bool:
    """True when a ``requests.ConnectionError`` happened before anything was sent."""
    seen = 0
    cur: BaseException | None = exc
    while cur is not None and seen < 8:
        n = type(cur).__name__
        if n in ("NewConnectionError", "NameResolutionError", "ConnectTimeoutError", "ConnectionRefusedError"):
            return True
        # urllib3's MaxRetryError keeps the cause in .reason
        reason = getattr(cur, "reason", None)
        if isinstance(reason, BaseException) and reason is not cur:
            cur = reason
        else:
            cur = cur.__cause__ or cur.__context__ or (cur.args[0] if cur.args and isinstance(cur.args[0], BaseException) else None)
        seen += 1
    return False
