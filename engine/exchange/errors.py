"""Typed exchange errors carrying Binance's code and a hint a trader can act on.

Messages never include request parameters, keys or signatures.
"""

from __future__ import annotations

#: Codes after which the request certainly did not take effect and may be retried as-is.
RETRYABLE_NOT_APPLIED = frozenset({-1001, -1003, -1008, -1015, -1021, -4117, -5028})
#: Codes after which the request may or may not have taken effect: query before any retry.
UNKNOWN_STATUS = frozenset({-1006, -1007, -1000})

HINTS: dict[int, str] = {
    -1003: "rate limit hit: slowing down; wait for the ban/Retry-After to pass",
    -1021: "local clock is off from Binance's: resyncing the server-time offset",
    -1022: "signature rejected: check BINANCE_API_SECRET (and that the key type matches HMAC/RSA/Ed25519)",
    -2014: "API key format invalid: check BINANCE_API_KEY",
    -2015: "key rejected: wrong key, futures permission missing, IP not allow-listed, or a testnet key used on mainnet",
    -2019: "margin is insufficient: reduce size or leverage, or add funds",
    -2021: "the trigger price is already crossed: the order would trigger immediately",
    -2022: "reduce-only rejected: the position is already flat or smaller",
    -1111: "precision too high: price/quantity must be rounded to tick/step",
    -4164: "order notional below the symbol's minimum",
    -4120: "conditional order sent to /fapi/v1/order: use the algo-order endpoint",
    -4061: "position side does not match the account's position mode (one-way vs hedge)",
    -4116: "duplicate client order id: the order already exists; query it instead of resending",
}


class ExchangeError(Exception):
    def __init__(self, code: int, msg: str, http_status: int = 400) -> None:
        self.code = code
        self.msg = msg
        self.http_status = http_status
        hint = HINTS.get(code)
        super().__init__(f"Binance error {code}: {msg}" + (f" — {hint}" if hint else ""))

    @property
    def hint(self) -> str:
        return HINTS.get(self.code, "")

    @property
    def retryable(self) -> bool:
        """Safe to resend unchanged: the exchange certainly did not apply it."""
        return self.code in RETRYABLE_NOT_APPLIED or self.http_status in (429,)

    @property
    def unknown_status(self) -> bool:
        """The exchange may have applied it: resolve by querying, never by resending blindly."""
        return self.code in UNKNOWN_STATUS or (self.http_status >= 500 and self.code not in RETRYABLE_NOT_APPLIED)
