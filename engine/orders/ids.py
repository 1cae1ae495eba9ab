"""Deterministic client order ids.

The id of every order we send is derived from the signal that caused it and the order's role, so
a retried request carries the same id and can be found by querying the exchange — it can never
open a second position. Ids match Binance's ``^[\\.A-Z\\:/a-z0-9_-]{1,36}$`` and are distinct from
the exchange's numeric ids.
"""

from __future__ import annotations

import hashlib
import re

CLIENT_ID_RE = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
PREFIX = "pd"

ROLE_CODES = {
    "entry": "E",
    "stop_loss": "S",
    "take_profit": "T",
    "take_profit_1": "P",
    "trailing_stop": "R",
    "break_even_timeout": "B",
    "break_even_stop": "K",
    "emergency_close": "X",
    "flatten": "F",
    "end_of_data": "Z",
}


def _digest(text: str, n: int = 22) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()[:n]


def client_id(namespace: str, key: str, role: str, attempt: int = 0) -> str:
    """``pd`` + role code + attempt + 22 hex chars of the (namespace, key) digest: 27–28 chars.

    ``namespace`` separates runs/accounts (e.g. the run id) so two runs replaying the same data
    against one account cannot collide; ``key`` is the signal id (or position key for closes).
    ``attempt`` is bumped only when a *new* order is intended (e.g. a replacement stop after a
    rejection), never for a retry of the same request.
    """
    code = ROLE_CODES[role]
    cid = f"{PREFIX}{code}{attempt}-{_digest(namespace + '|' + key)}"
    assert CLIENT_ID_RE.match(cid), cid
    return cid


def role_of(client_order_id: str) -> str | None:
    """The role encoded in one of our ids, or None for ids we did not make."""
    if not client_order_id.startswith(PREFIX) or len(client_order_id) < 4:
        return None
    code = client_order_id[len(PREFIX)]
    for role, c in ROLE_CODES.items():
        if c == code:
            return role
    return None
