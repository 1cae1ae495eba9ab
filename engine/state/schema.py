"""SQLite schema for the perpdeck journal database.

The schema version lives in ``PRAGMA user_version``. ``MIGRATIONS[i]`` takes a database from
version ``i`` to ``i + 1``; :data:`SCHEMA_VERSION` is therefore ``len(MIGRATIONS)``. Later work
appends migrations here and never rewrites an existing one.

A migration is either

* a SQL script (several statements separated by ``;``), or
* a callable ``migrate(db: aiosqlite.Connection)`` (sync or ``async``) that runs its own statements
  with ``await db.execute(...)``. It runs inside the migration's transaction, so it must not call
  ``executescript`` (which commits) or ``COMMIT``/``ROLLBACK``.

Each migration runs in its own ``BEGIN IMMEDIATE`` transaction together with the bump of
``user_version``: a failed migration leaves the database at the previous version.

Storage conventions (see :mod:`engine.state.store`):

* money, prices and quantities are ``TEXT`` holding ``str(Decimal)`` (exact, never ``REAL``);
* times are ``INTEGER`` epoch milliseconds (UTC);
* enums are ``TEXT`` holding the enum value; booleans are ``INTEGER`` 0/1;
* every run-scoped row carries ``run_id`` (several runs share one database). ``candles_1m`` is
  market data shared by all runs and has no ``run_id``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

Migration = str | Callable[[Any], Awaitable[None] | None]

_V1 = """
CREATE TABLE runs (
    run_id        TEXT PRIMARY KEY,
    started_ms    INTEGER NOT NULL,
    ended_ms      INTEGER,
    mode          TEXT NOT NULL,
    strategy      TEXT NOT NULL,
    config_json   TEXT NOT NULL,
    summary_json  TEXT
);
CREATE INDEX runs_by_start ON runs (started_ms);

CREATE TABLE orders (
    run_id             TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    client_order_id    TEXT NOT NULL,
    exchange_order_id  INTEGER,
    symbol             TEXT NOT NULL,
    side               TEXT NOT NULL,
    type               TEXT NOT NULL,
    quantity           TEXT NOT NULL,
    price              TEXT,
    status             TEXT NOT NULL,
    filled_qty         TEXT NOT NULL,
    avg_price          TEXT NOT NULL,
    position_side      TEXT NOT NULL,
    reduce_only        INTEGER NOT NULL,
    purpose            TEXT NOT NULL,
    signal_id          TEXT,
    created_ms         INTEGER NOT NULL,
    updated_ms         INTEGER NOT NULL,
    reject_reason      TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, client_order_id)
);
CREATE INDEX orders_by_exchange_id ON orders (run_id, symbol, exchange_order_id);
CREATE INDEX orders_by_signal ON orders (run_id, signal_id);

CREATE TABLE algo_orders (
    run_id           TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    client_algo_id   TEXT NOT NULL,
    algo_id          INTEGER,
    symbol           TEXT NOT NULL,
    side             TEXT NOT NULL,
    type             TEXT NOT NULL,
    trigger_price    TEXT NOT NULL,
    status           TEXT NOT NULL,
    position_side    TEXT NOT NULL,
    close_position   INTEGER NOT NULL,
    working_type     TEXT NOT NULL,
    purpose          TEXT NOT NULL,
    signal_id        TEXT,
    actual_order_id  INTEGER,
    created_ms       INTEGER NOT NULL,
    updated_ms       INTEGER NOT NULL,
    reject_reason    TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, client_algo_id)
);
CREATE INDEX algo_orders_by_signal ON algo_orders (run_id, signal_id);

CREATE TABLE fills (
    run_id             TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    symbol             TEXT NOT NULL,
    trade_id           INTEGER NOT NULL,
    exchange_order_id  INTEGER NOT NULL,
    client_order_id    TEXT NOT NULL,
    side               TEXT NOT NULL,
    position_side      TEXT NOT NULL,
    price              TEXT NOT NULL,
    quantity           TEXT NOT NULL,
    commission         TEXT NOT NULL,
    commission_asset   TEXT NOT NULL,
    realized_pnl       TEXT NOT NULL,
    is_maker           INTEGER NOT NULL,
    time_ms            INTEGER NOT NULL,
    order_type         TEXT NOT NULL,
    UNIQUE (run_id, symbol, trade_id)
);
CREATE INDEX fills_by_time ON fills (run_id, time_ms);
CREATE INDEX fills_by_order ON fills (run_id, client_order_id);

CREATE TABLE positions (
    run_id            TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    symbol            TEXT NOT NULL,
    position_side     TEXT NOT NULL,
    amount            TEXT NOT NULL,
    entry_price       TEXT NOT NULL,
    break_even_price  TEXT NOT NULL,
    unrealized_pnl    TEXT NOT NULL,
    margin_type       TEXT NOT NULL,
    isolated_wallet   TEXT NOT NULL,
    update_time_ms    INTEGER NOT NULL,
    PRIMARY KEY (run_id, symbol, position_side)
);

CREATE TABLE signals (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id               TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    signal_id            TEXT NOT NULL,
    strategy             TEXT NOT NULL,
    symbol               TEXT NOT NULL,
    direction            TEXT NOT NULL,
    strength             REAL NOT NULL,
    reason               TEXT NOT NULL,
    candle_open_time_ms  INTEGER NOT NULL,
    price                TEXT NOT NULL,
    signal_time_ms       INTEGER NOT NULL,
    time_ms              INTEGER NOT NULL,
    verdict              TEXT NOT NULL,
    verdict_reason       TEXT NOT NULL,
    quantity             TEXT
);
CREATE INDEX signals_by_time ON signals (run_id, time_ms);
CREATE INDEX signals_by_signal_id ON signals (run_id, signal_id);

CREATE TABLE candles_1m (
    symbol         TEXT NOT NULL,
    open_time_ms   INTEGER NOT NULL,
    open           TEXT NOT NULL,
    high           TEXT NOT NULL,
    low            TEXT NOT NULL,
    close          TEXT NOT NULL,
    volume         TEXT NOT NULL,
    close_time_ms  INTEGER NOT NULL,
    PRIMARY KEY (symbol, open_time_ms)
);

CREATE TABLE trades (
    run_id             TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    trade_id           TEXT NOT NULL,
    signal_id          TEXT,
    strategy           TEXT NOT NULL,
    symbol             TEXT NOT NULL,
    direction          TEXT NOT NULL,
    position_side      TEXT NOT NULL,
    entry_time_ms      INTEGER NOT NULL,
    entry_price        TEXT NOT NULL,
    quantity           TEXT NOT NULL,
    exit_time_ms       INTEGER,
    exit_price         TEXT,
    entry_reason       TEXT NOT NULL,
    exit_reason        TEXT,
    fees               TEXT NOT NULL,
    funding            TEXT NOT NULL,
    realized_pnl       TEXT NOT NULL,
    net_pnl            TEXT NOT NULL,
    mfe                TEXT NOT NULL,
    mae                TEXT NOT NULL,
    stop_price         TEXT,
    take_profit_price  TEXT,
    PRIMARY KEY (run_id, trade_id)
);
CREATE INDEX trades_by_exit ON trades (run_id, exit_time_ms);
CREATE INDEX trades_by_exit_all_runs ON trades (exit_time_ms);
CREATE INDEX trades_by_entry ON trades (run_id, entry_time_ms);

CREATE TABLE funding (
    run_id         TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    symbol         TEXT NOT NULL,
    time_ms        INTEGER NOT NULL,
    position_side  TEXT NOT NULL,
    amount         TEXT NOT NULL,
    rate           TEXT,
    UNIQUE (run_id, symbol, time_ms, position_side)
);
CREATE INDEX funding_by_time ON funding (run_id, time_ms);

CREATE TABLE events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id     TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    time_ms    INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    message    TEXT NOT NULL,
    data_json  TEXT
);
CREATE INDEX events_by_time ON events (run_id, time_ms);
CREATE INDEX events_by_kind ON events (run_id, kind);
"""

# Version 2: what must outlive a process (restart reconciliation). ``account`` names the exchange
# account a run traded on (a stable key for testnet/mainnet/an external local exchange; the run id
# for a self-contained sim run). ``plans`` hold the management plan of each open position (break-even
# timer, partial take-profit progress, trailing state, the open trade) — one row per position,
# replaced as it changes, deleted when the position is closed. ``intents`` hold every order request
# BEFORE it is sent; a restart resolves an unfinished one by asking the exchange, never by resending.
_V2 = """
ALTER TABLE runs ADD COLUMN account TEXT;
CREATE INDEX runs_by_account ON runs (account);

CREATE TABLE plans (
    account        TEXT NOT NULL,
    symbol         TEXT NOT NULL,
    position_side  TEXT NOT NULL,
    run_id         TEXT NOT NULL,
    payload_json   TEXT NOT NULL,
    updated_ms     INTEGER NOT NULL,
    PRIMARY KEY (account, symbol, position_side)
);

CREATE TABLE intents (
    account        TEXT NOT NULL,
    client_id      TEXT NOT NULL,
    run_id         TEXT NOT NULL,
    symbol         TEXT NOT NULL,
    kind           TEXT NOT NULL,
    role           TEXT NOT NULL,
    payload_json   TEXT NOT NULL,
    state          TEXT NOT NULL,
    created_ms     INTEGER NOT NULL,
    updated_ms     INTEGER NOT NULL,
    PRIMARY KEY (account, client_id)
);
CREATE INDEX intents_by_state ON intents (account, state);
CREATE INDEX fills_by_trade ON fills (symbol, trade_id);
"""

# Version 3: per account, the exchange time up to which every fill is known to be recorded
# (``fills_complete_ms``). A restart fetches the fills after it, however long ago the last recorded
# fill was; written in the same transaction as the fills that complete it.
_V3 = """
CREATE TABLE accounts (
    account            TEXT PRIMARY KEY,
    fills_complete_ms  INTEGER NOT NULL,
    updated_ms         INTEGER NOT NULL
);
"""

#: Applied in order; ``MIGRATIONS[i]`` upgrades version ``i`` to ``i + 1``. Append only.
MIGRATIONS: list[Migration] = [
    _V1,
    _V2,
    _V3,
]

#: The version this code writes and understands.
SCHEMA_VERSION: int = len(MIGRATIONS)


def split_statements(script: str) -> list[str]:
    """Split a SQL script into complete statements (semicolons inside strings, comments and
    trigger bodies are handled by :func:`sqlite3.complete_statement`)."""
    statements: list[str] = []
    buf = ""
    for part in script.split(";"):
        buf += part + ";"
        if sqlite3.complete_statement(buf):
            if _has_code(buf):
                statements.append(buf.strip())
            buf = ""
    if _has_code(buf):
        raise ValueError(f"incomplete SQL statement at end of migration: {buf.strip()[:80]!r}")
    return statements


def _has_code(sql: str) -> bool:
    """True when ``sql`` holds something besides whitespace, ``;`` and ``--`` comments."""
    for line in sql.splitlines():
        code = line.split("--", 1)[0].strip().strip(";").strip()
        if code:
            return True
    return False
