"""Typed exchange errors carrying Binance's code and a hint a trader can act on.

Messages never include request parameters, keys, signatures or listen keys.

The subclasses say what a caller may do next:

* :class:`TransientError` — certainly not applied (503 "Service Unavailable.", -1001, -1008,
  connection refused): resend as-is after a pause.
* :class:`UnknownStatusError` — may or may not have been applied (503 "Unknown error…", HTTP 408,
  -1006/-1007, read timeout): query by client id before any resend.
* :class:`RateLimited` (429/-1003/-1015) and :class:`Banned` (418): nothing is sent until the
  window or the ban ends.
* :class:`AuthError` — key, signature, permission or IP problems (-1022, -2014, -2015, HTTP 401).
* :class:`ExchangeConfigError` — the account or config is not in a state we can trade in.
"""

from __future__ import annotations

#: Codes after which the request certainly did not take effect and may be retried as-is.
RETRYABLE_NOT_APPLIED = frozenset({-1001, -1003, -1008, -1015, -1021, -4117, -5028})
#: Codes after which the request may or may not have taken effect: query before any retry.
UNKNOWN_STATUS = frozenset({-1006, -1007, -1000})
#: Codes that mean the credentials (key, signature, permissions, IP allow-list) are wrong.
AUTH_CODES = frozenset({-1022, -2014, -2015})

HINTS: dict[int, str] = {
    -1000: "unknown error at Binance: the request may or may not have been applied",
    -1001: "Binance internal error: the request was not applied; retrying with backoff",
    -1003: "rate limit hit: slowing down; wait for the ban/Retry-After to pass",
    -1006: "execution status unknown: querying the order before any resend",
    -1007: "Binance timed out: execution status unknown; querying the order before any resend",
    -1008: "Binance is throttling under load: the request was not applied; backing off",
    -1015: "too many new orders: order-rate limit hit; waiting for the window to roll",
    -1021: "local clock is off from Binance's: resyncing the server-time offset",
    -1022: "signature rejected: check BINANCE_API_SECRET (and that the key type matches HMAC/RSA/Ed25519)",
    -1100: "illegal characters in a parameter: a number was not formatted as a plain decimal",
    -1111: "precision too high: price/quantity must be rounded to tick/step",
    -1125: "listen key expired or unknown: a new user-data stream key is needed",
    -2010: "order rejected by the matching engine",
    -2011: "cancel rejected: the order is already closed or unknown",
    -2013: "order does not exist",
    -2014: "API key format invalid: check BINANCE_API_KEY",
    -2015: "key rejected: wrong key, futures permission missing, IP not allow-listed, or a testnet key used on mainnet",
    -2018: "balance is insufficient: add funds to the futures wallet",
    -2019: "margin is insufficient: reduce size or leverage, or add funds",
    -2021: "the trigger price is already crossed: the order would trigger immediately",
    -2022: "reduce-only rejected: the position is already flat or smaller",
    -2025: "too many open orders on this symbol",
    -4004: "quantity below the symbol's minimum quantity",
    -4005: "quantity above the symbol's maximum quantity",
    -4013: "price below the symbol's minimum price",
    -4014: "price not a multiple of the tick size: round to tickSize",
    -4016: "limit price too far above the mark price (PERCENT_PRICE filter)",
    -4023: "quantity not a multiple of the step size: round to stepSize",
    -4024: "limit price too far below the mark price (PERCENT_PRICE filter)",
    -4028: "leverage not allowed for this symbol/notional: lower it",
    -4045: "too many conditional (stop/take-profit) orders open",
    -4046: "margin type already set",
    -4047: "margin type cannot be changed while open orders exist on the symbol",
    -4048: "margin type cannot be changed while a position exists on the symbol",
    -4059: "position mode already set",
    -4061: "position side does not match the account's position mode (one-way vs hedge)",
    -4067: "position mode cannot be changed while open orders exist",
    -4068: "position mode cannot be changed while positions exist",
    -4116: "duplicate client order id: the order already exists; query it instead of resending",
    -4120: "conditional order sent to /fapi/v1/order: use the algo-order endpoint",
    -4131: "market order rejected: the book is too thin within the PERCENT_PRICE band",
    -4142: "the trigger price is already crossed: the order would trigger immediately",
    -4164: "order notional below the symbol's minimum",
    -5021: "FOK order could not be filled in full and was rejected",
    -5022: "post-only order would have taken liquidity and was rejected",
    -5028: "local clock is off from Binance's matching engine: resyncing the server-time offset",
}

#: Extra words for -2015, depending on which environment the key was sent to.
ENV_HINTS: dict[tuple[int, str], str] = {
    (-2015, "mainnet"): "against MAINNET: a testnet/demo key does not work here; also check the key has "
    "'Enable Futures' and your IP is allow-listed",
    (-2015, "testnet"): "against TESTNET: use a key created on the futures testnet/demo site, not a mainnet key",
}


def hint_for(code: int, env: str | None = None) -> str:
    """The trader-actionable hint for ``code``, sharpened for the environment when we know one."""
    base = HINTS.get(code, "")
    extra = ENV_HINTS.get((code, env or ""))
    if extra:
        return f"{base} ({extra})" if base else extra
    return base


class ExchangeError(Exception):
    """An error answer (or no answer) from the exchange. ``code`` is Binance's code, 0 if none."""

    def __init__(self, code: int, msg: str, http_status: int = 400, *, hint: str | None = None) -> None:
        self.code = code
        self.msg = msg
        self.http_status = http_status
        self.hint = HINTS.get(code, "") if hint is None else hint
        super().__init__(f"Binance error {code}: {msg}" + (f" — {self.hint}" if self.hint else ""))

    @property
    def retryable(self) -> bool:
        """Safe to resend unchanged: the exchange certainly did not apply it."""
        return self.code in RETRYABLE_NOT_APPLIED or self.http_status in (429,)

    @property
    def unknown_status(self) -> bool:
        """The exchange may have applied it: resolve by querying, never by resending blindly."""
        return self.code in UNKNOWN_STATUS or (self.http_status >= 500 and self.code not in RETRYABLE_NOT_APPLIED)

    @property
    def transient(self) -> bool:
        """Worth asking again later: certainly not applied or of unknown outcome, an overload, a
        rate limit or ban, or a timestamp outside recvWindow (the clock is re-synced)."""
        return (self.retryable or self.unknown_status or isinstance(self, RateLimited)
                or self.http_status >= 500 or self.code in (-1021, -5028))

    @property
    def is_auth(self) -> bool:
        return self.code in AUTH_CODES or self.http_status == 401


class TransientError(ExchangeError):
    """Certainly not applied (overload, maintenance, connection refused): retry with backoff."""

    retryable = True
    unknown_status = False


class UnknownStatusError(ExchangeError):
    """The request may have been applied. Orders: query by client id, never resend blindly."""

    retryable = False
    unknown_status = True


class RateLimited(ExchangeError):
    """429 / -1003 / -1015. Nothing is sent before ``until_ms`` (wall clock, ms)."""

    def __init__(self, code: int, msg: str, http_status: int = 429, *, until_ms: int = 0,
                 retry_after_s: float | None = None, hint: str | None = None) -> None:
        super().__init__(code, msg, http_status, hint=hint)
        self.until_ms = until_ms
        self.retry_after_s = retry_after_s

    retryable = True
    unknown_status = False


class Banned(RateLimited):
    """418: the IP is banned until ``until_ms`` (wall clock). No request is sent before then."""

    def __init__(self, code: int, msg: str, http_status: int = 418, *, until_ms: int = 0,
                 retry_after_s: float | None = None, hint: str | None = None) -> None:
        super().__init__(code, msg, http_status, until_ms=until_ms, retry_after_s=retry_after_s,
                         hint=hint if hint is not None else
                         "IP banned by Binance for exceeding rate limits: no requests until the ban ends")

    retryable = False


class AuthError(ExchangeError):
    """Bad key, bad signature, missing futures permission, IP not allow-listed (-1022/-2014/-2015/401)."""

    retryable = False
    unknown_status = False


class ExchangeConfigError(ExchangeError):
    """The account or the configuration is not in a state we can trade in; a person must act."""

    def __init__(self, msg: str, code: int = 0, http_status: int = 0, *, hint: str | None = None) -> None:
        super().__init__(code, msg, http_status, hint=hint if hint is not None else "")

    @property
    def retryable(self) -> bool:
        return False

    @property
    def unknown_status(self) -> bool:
        return False
