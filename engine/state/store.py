"""Async SQLite store for orders, fills, positions, signals, trades, candles, funding and events.

Conventions: ``Decimal`` values are stored as ``TEXT`` (``str(d)``, exact: ``Decimal(text) == d``
and even the exponent survives); enums as their value; booleans as 0/1; times as epoch ms.
A ``float`` where money is expected is a bug and raises ``TypeError`` (the batch is rolled back).

The connection runs in autocommit mode (``isolation_level=None``); every write opens its own
explicit transaction. One :class:`asyncio.Lock` serialises all use of the connection, so a reader
never sees half of a batch that another task is writing.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Iterable, Sequence
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiosqlite

from engine.model import (
    AlgoOrder,
    AlgoStatus,
    Candle,
    Direction,
    ExitReason,
    Fill,
    MarginType,
    Order,
    OrderPurpose,
    OrderStatus,
    OrderType,
    Position,
    PositionSide,
    Side,
    Signal,
    SignalRecord,
    Trade,
    Verdict,
    WorkingType,
)
from engine.state.schema import MIGRATIONS, SCHEMA_VERSION, split_statements

if TYPE_CHECKING:
    from engine.state.journal import JournalBatch

BUSY_TIMEOUT_MS = 5_000


class StoreError(Exception):
    """The database cannot be used as asked (newer schema, failed migration, unknown run...)."""


# --------------------------------------------------------------------------- value conversion


def _dec(value: Any) -> str:
    """Decimal (or int) -> exact TEXT. Floats are refused: money is never binary floating point."""
    if value.__class__ is Decimal:
        return str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"expected Decimal, got {type(value).__name__}: {value!r}")


def _dec_opt(value: Any) -> str | None:
    return None if value is None else _dec(value)


def _to_dec(text: str) -> Decimal:
    return Decimal(text)


def _to_dec_opt(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def _ev(value: Any) -> str:
    """Enum (or its plain string value) -> TEXT."""
    return value.value if isinstance(value, Enum) else str(value)


def _ev_opt(value: Any) -> str | None:
    return None if value is None else _ev(value)


class DecimalJSONEncoder(json.JSONEncoder):
    """JSON encoder for journal data: Decimals as exact strings, enums as values, dataclasses as
    dicts, sets/tuples as lists. Anything else becomes ``str(o)``: an event must never be lost
    because its payload holds an odd object."""

    def default(self, o: Any) -> Any:
        if isinstance(o, Decimal):
            return str(o)
        if isinstance(o, Enum):
            return o.value
        if hasattr(o, "__dataclass_fields__") and not isinstance(o, type):
            return {name: getattr(o, name) for name in o.__dataclass_fields__}
        if isinstance(o, set | frozenset | tuple):
            return list(o)
        if isinstance(o, bytes | bytearray):
            return o.hex()
        return str(o)


def dumps(data: Any) -> str:
    """Serialise ``data`` for a ``*_json`` column (Decimals as strings, keys sorted)."""
    return json.dumps(data, cls=DecimalJSONEncoder, sort_keys=True, separators=(",", ":"))


# --------------------------------------------------------------------------- rows <-> records

_ORDER_COLS = (
    "run_id, client_order_id, exchange_order_id, symbol, side, type, quantity, price, status, "
    "filled_qty, avg_price, position_side, reduce_only, purpose, signal_id, created_ms, "
    "updated_ms, reject_reason"
)
_ALGO_COLS = (
    "run_id, client_algo_id, algo_id, symbol, side, type, trigger_price, status, position_side, "
    "close_position, working_type, purpose, signal_id, actual_order_id, created_ms, updated_ms, "
    "reject_reason"
)
_FILL_COLS = (
    "run_id, symbol, trade_id, exchange_order_id, client_order_id, side, position_side, price, "
    "quantity, commission, commission_asset, realized_pnl, is_maker, time_ms, order_type"
)
_POSITION_COLS = (
    "run_id, symbol, position_side, amount, entry_price, break_even_price, unrealized_pnl, "
    "margin_type, isolated_wallet, update_time_ms"
)
_SIGNAL_COLS = (
    "run_id, signal_id, strategy, symbol, direction, strength, reason, candle_open_time_ms, "
    "price, signal_time_ms, time_ms, verdict, verdict_reason, quantity"
)
_CANDLE_COLS = "symbol, open_time_ms, open, high, low, close, volume, close_time_ms"
_TRADE_COLS = (
    "run_id, trade_id, signal_id, strategy, symbol, direction, position_side, entry_time_ms, "
    "entry_price, quantity, exit_time_ms, exit_price, entry_reason, exit_reason, fees, funding, "
    "realized_pnl, net_pnl, mfe, mae, stop_price, take_profit_price"
)
_FUNDING_COLS = "run_id, symbol, time_ms, position_side, amount, rate"
_EVENT_COLS = "run_id, time_ms, kind, message, data_json"


def _cols(spec: str) -> list[str]:
    return [c.strip() for c in spec.split(",")]


def _insert(table: str, spec: str, *, verb: str = "INSERT") -> str:
    cols = _cols(spec)
    return f"{verb} INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"


def _upsert(table: str, spec: str, key: Sequence[str]) -> str:
    cols = _cols(spec)
    updates = ", ".join(f"{c} = excluded.{c}" for c in cols if c not in key)
    return f"{_insert(table, spec)} ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"


_SQL_ORDER = _upsert("orders", _ORDER_COLS, ("run_id", "client_order_id"))
_SQL_ALGO = _upsert("algo_orders", _ALGO_COLS, ("run_id", "client_algo_id"))
_SQL_FILL = _insert("fills", _FILL_COLS, verb="INSERT OR IGNORE")
_SQL_POSITION = _upsert("positions", _POSITION_COLS, ("run_id", "symbol", "position_side"))
_SQL_SIGNAL = _insert("signals", _SIGNAL_COLS)
_SQL_CANDLE = _insert("candles_1m", _CANDLE_COLS, verb="INSERT OR IGNORE")
_SQL_TRADE = _upsert("trades", _TRADE_COLS, ("run_id", "trade_id"))
_SQL_FUNDING = _insert("funding", _FUNDING_COLS, verb="INSERT OR IGNORE")
_SQL_EVENT = _insert("events", _EVENT_COLS)


_SQL_PLAN = _upsert("plans", "account, symbol, position_side, run_id, payload_json, updated_ms",
                    ("account", "symbol", "position_side"))
_SQL_FILL_MARK = (
    "INSERT INTO accounts (account, fills_complete_ms, updated_ms) VALUES (?, ?, ?) "
    "ON CONFLICT (account) DO UPDATE SET fills_complete_ms = MAX(fills_complete_ms, excluded.fills_complete_ms), "
    "updated_ms = excluded.updated_ms"
)
_SQL_PLAN_DELETE = "DELETE FROM plans WHERE account = ? AND symbol = ? AND position_side = ?"

#: Intent states. ``pending``: stored, maybe sent (a crash here leaves it unknown); ``acked``: the
#: exchange accepted it; ``rejected``: the exchange refused it; ``missing``: a restart found the
#: exchange never received it (it is NOT resent); ``resolved``: a restart found it on the exchange.
INTENT_OPEN_STATES = ("pending",)


def _order_row(run_id: str, o: Order) -> tuple:
    return (
        run_id, o.client_order_id, o.exchange_order_id, o.symbol, _ev(o.side), _ev(o.type),
        _dec(o.quantity), _dec_opt(o.price), _ev(o.status), _dec(o.filled_qty), _dec(o.avg_price),
        _ev(o.position_side), int(bool(o.reduce_only)), _ev(o.purpose), o.signal_id, o.created_ms,
        o.updated_ms, o.reject_reason or "",
    )  # fmt: skip


def _order_from(r: Sequence[Any]) -> Order:
    return Order(
        client_order_id=r[1], exchange_order_id=r[2], symbol=r[3], side=Side(r[4]),
        type=OrderType(r[5]), quantity=Decimal(r[6]), price=_to_dec_opt(r[7]),
        status=OrderStatus(r[8]), filled_qty=Decimal(r[9]), avg_price=Decimal(r[10]),
        position_side=PositionSide(r[11]), reduce_only=bool(r[12]), purpose=OrderPurpose(r[13]),
        signal_id=r[14], created_ms=r[15], updated_ms=r[16], reject_reason=r[17],
    )  # fmt: skip


def _algo_row(run_id: str, a: AlgoOrder) -> tuple:
    return (
        run_id, a.client_algo_id, a.algo_id, a.symbol, _ev(a.side), _ev(a.type),
        _dec(a.trigger_price), _ev(a.status), _ev(a.position_side), int(bool(a.close_position)),
        _ev(a.working_type), _ev(a.purpose), a.signal_id, a.actual_order_id, a.created_ms,
        a.updated_ms, a.reject_reason or "",
    )  # fmt: skip


def _algo_from(r: Sequence[Any]) -> AlgoOrder:
    return AlgoOrder(
        client_algo_id=r[1], algo_id=r[2], symbol=r[3], side=Side(r[4]), type=OrderType(r[5]),
        trigger_price=Decimal(r[6]), status=AlgoStatus(r[7]), position_side=PositionSide(r[8]),
        close_position=bool(r[9]), working_type=WorkingType(r[10]), purpose=OrderPurpose(r[11]),
        signal_id=r[12], actual_order_id=r[13], created_ms=r[14], updated_ms=r[15],
        reject_reason=r[16],
    )  # fmt: skip


def _fill_row(run_id: str, f: Fill) -> tuple:
    return (
        run_id, f.symbol, f.trade_id, f.exchange_order_id, f.client_order_id, _ev(f.side),
        _ev(f.position_side), _dec(f.price), _dec(f.quantity), _dec(f.commission),
        f.commission_asset, _dec(f.realized_pnl), int(bool(f.is_maker)), f.time_ms,
        _ev(f.order_type),
    )  # fmt: skip


def _fill_from(r: Sequence[Any]) -> Fill:
    return Fill(
        symbol=r[1], trade_id=r[2], exchange_order_id=r[3], client_order_id=r[4], side=Side(r[5]),
        position_side=PositionSide(r[6]), price=Decimal(r[7]), quantity=Decimal(r[8]),
        commission=Decimal(r[9]), commission_asset=r[10], realized_pnl=Decimal(r[11]),
        is_maker=bool(r[12]), time_ms=r[13], order_type=OrderType(r[14]),
    )  # fmt: skip


def _position_row(run_id: str, p: Position) -> tuple:
    return (
        run_id, p.symbol, _ev(p.position_side), _dec(p.amount), _dec(p.entry_price),
        _dec(p.break_even_price), _dec(p.unrealized_pnl), _ev(p.margin_type),
        _dec(p.isolated_wallet), p.update_time_ms,
    )  # fmt: skip


def _position_from(r: Sequence[Any]) -> Position:
    return Position(
        symbol=r[1], position_side=PositionSide(r[2]), amount=Decimal(r[3]),
        entry_price=Decimal(r[4]), break_even_price=Decimal(r[5]), unrealized_pnl=Decimal(r[6]),
        margin_type=MarginType(r[7]), isolated_wallet=Decimal(r[8]), update_time_ms=r[9],
    )  # fmt: skip


def _signal_row(run_id: str, rec: SignalRecord) -> tuple:
    s = rec.signal
    return (
        run_id, s.signal_id, s.strategy, s.symbol, _ev(s.direction), float(s.strength), s.reason,
        s.candle_open_time_ms, _dec(s.price), s.time_ms, rec.time_ms, _ev(rec.verdict),
        rec.reason, _dec_opt(rec.quantity),
    )  # fmt: skip


def _signal_from(r: Sequence[Any]) -> SignalRecord:
    signal = Signal(
        strategy=r[2], symbol=r[3], direction=Direction(r[4]), strength=r[5], reason=r[6],
        candle_open_time_ms=r[7], price=Decimal(r[8]), time_ms=r[9],
    )  # fmt: skip
    return SignalRecord(
        signal=signal, verdict=Verdict(r[11]), reason=r[12], quantity=_to_dec_opt(r[13]),
        time_ms=r[10],
    )


def _candle_row(c: Candle) -> tuple:
    return (
        c.symbol, c.open_time_ms, _dec(c.open), _dec(c.high), _dec(c.low), _dec(c.close),
        _dec(c.volume), c.close_time_ms,
    )  # fmt: skip


def _candle_from(r: Sequence[Any]) -> Candle:
    return Candle(
        symbol=r[0], open_time_ms=r[1], open=Decimal(r[2]), high=Decimal(r[3]),
        low=Decimal(r[4]), close=Decimal(r[5]), volume=Decimal(r[6]), close_time_ms=r[7],
        closed=True,
    )  # fmt: skip


def _trade_row(run_id: str, t: Trade) -> tuple:
    return (
        run_id, t.trade_id, t.signal_id, t.strategy, t.symbol, _ev(t.direction),
        _ev(t.position_side), t.entry_time_ms, _dec(t.entry_price), _dec(t.quantity),
        t.exit_time_ms, _dec_opt(t.exit_price), t.entry_reason, _ev_opt(t.exit_reason),
        _dec(t.fees), _dec(t.funding), _dec(t.realized_pnl), _dec(t.net_pnl), _dec(t.mfe),
        _dec(t.mae), _dec_opt(t.stop_price), _dec_opt(t.take_profit_price),
    )  # fmt: skip


def _trade_from(r: Sequence[Any]) -> Trade:
    return Trade(
        trade_id=r[1], signal_id=r[2], strategy=r[3], symbol=r[4], direction=Direction(r[5]),
        position_side=PositionSide(r[6]), entry_time_ms=r[7], entry_price=Decimal(r[8]),
        quantity=Decimal(r[9]), exit_time_ms=r[10], exit_price=_to_dec_opt(r[11]),
        entry_reason=r[12], exit_reason=None if r[13] is None else ExitReason(r[13]),
        fees=Decimal(r[14]), funding=Decimal(r[15]), realized_pnl=Decimal(r[16]),
        # r[17] is net_pnl: stored for queries, derived again by Trade.net_pnl
        mfe=Decimal(r[18]), mae=Decimal(r[19]), stop_price=_to_dec_opt(r[20]),
        take_profit_price=_to_dec_opt(r[21]),
    )  # fmt: skip


def _funding_row(run_id: str, d: dict) -> tuple:
    return (
        run_id, d["symbol"], int(d["time_ms"]), _ev(d["position_side"]), _dec(d["amount"]),
        _dec_opt(d.get("rate")),
    )  # fmt: skip


def _event_row(run_id: str, d: dict) -> tuple:
    if "data_json" in d:
        data_json = d["data_json"]
    else:
        data = d.get("data")
        data_json = None if data is None else dumps(data)
    return (run_id, int(d["time_ms"]), str(d["kind"]), str(d["message"]), data_json)


def _signal_filter(run_id: str | None, since_ms: int | None, until_ms: int | None, strategy: str | None,
                   time_col: str) -> tuple[str, list[Any]]:
    """`` WHERE …`` (or "") and its parameters for a run / time window / strategy selection."""
    conds: list[str] = []
    params: list[Any] = []
    for cond, value in (("run_id = ?", run_id), (f"{time_col} >= ?", since_ms), (f"{time_col} < ?", until_ms),
                        ("strategy = ?", strategy)):
        if value is not None:
            conds.append(cond)
            params.append(value)
    return (" WHERE " + " AND ".join(conds) if conds else ""), params


# --------------------------------------------------------------------------- the store


class Store:
    """One SQLite database file. Open with ``await Store.open(path)``; close with ``close()``
    (or use ``async with``)."""

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self._db = db
        self.path = path
        self._lock = asyncio.Lock()
        self._closed = False

    # ---------------------------------------------------------------- lifecycle

    @classmethod
    async def open(cls, path: str | Path) -> Store:
        path = Path(path)
        memory = str(path) == ":memory:"
        if not memory:
            path.parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(str(path), isolation_level=None)
        try:
            await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            found = await _user_version(db)
            if found > SCHEMA_VERSION:
                raise StoreError(
                    f"{path}: database schema version {found} is newer than this code supports "
                    f"(version {SCHEMA_VERSION}); upgrade perpdeck or use another database file"
                )
            if not memory:
                await db.execute("PRAGMA journal_mode = WAL")
            await db.execute("PRAGMA synchronous = NORMAL")
            await db.execute("PRAGMA foreign_keys = ON")
            await _migrate(db, path)
        except BaseException:
            await db.close()
            raise
        return cls(db, path)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        async with self._lock:
            await self._db.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def schema_version(self) -> int:
        async with self._lock:
            return await _user_version(self._db)

    async def journal_mode(self) -> str:
        async with self._lock:
            rows = await self._db.execute_fetchall("PRAGMA journal_mode")
        return str(next(iter(rows))[0]).lower()

    # ---------------------------------------------------------------- runs

    async def start_run(
        self, run_id: str, started_ms: int, mode: str, strategy: str, config_json: str
    ) -> None:
        """Register a run. ``config_json`` must already be redacted by the caller."""
        async with self._lock:
            try:
                await self._db.execute(
                    "INSERT INTO runs (run_id, started_ms, mode, strategy, config_json) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (run_id, started_ms, mode, strategy, config_json),
                )
            except aiosqlite.IntegrityError as exc:
                raise StoreError(f"{self.path}: run {run_id!r} already exists") from exc

    async def set_run_account(self, run_id: str, account: str) -> None:
        """Name the exchange account ``run_id`` trades on (restart reconciliation reads by account)."""
        async with self._lock:
            await self._db.execute("UPDATE runs SET account = ? WHERE run_id = ?", (account, run_id))

    async def run_count(self, account: str) -> int:
        rows = await self._fetch("SELECT COUNT(*) FROM runs WHERE account = ?", (account,))
        return int(rows[0][0])

    # ---------------------------------------------------------------- what outlives a process

    async def latest_rows(self, account: str) -> tuple[list[Order], list[AlgoOrder], list[tuple[str, Position]]]:
        """The newest row of every order, algo order and position of ``account``, across its runs
        (newest run first, then ``updated_ms``): what the database says is true now. Positions come
        with their run id."""
        def newest(rows, key) -> list:
            out: dict = {}
            for r in rows:  # ordered oldest first: later rows win
                out[key(r)] = r
            return list(out.values())

        runs = "SELECT run_id, rowid AS rank FROM runs WHERE account = ?"
        orders = await self._fetch(
            f"SELECT {', '.join('o.' + c for c in _cols(_ORDER_COLS))} FROM orders o JOIN ({runs}) r USING (run_id) "
            "ORDER BY r.rank, o.updated_ms, o.rowid", (account,))
        algos = await self._fetch(
            f"SELECT {', '.join('a.' + c for c in _cols(_ALGO_COLS))} FROM algo_orders a JOIN ({runs}) r USING (run_id) "
            "ORDER BY r.rank, a.updated_ms, a.rowid", (account,))
        positions = await self._fetch(
            f"SELECT {', '.join('p.' + c for c in _cols(_POSITION_COLS))} FROM positions p JOIN ({runs}) r USING (run_id) "
            "ORDER BY r.rank, p.update_time_ms, p.rowid", (account,))
        return ([_order_from(r) for r in newest(orders, lambda r: r[1])],
                [_algo_from(r) for r in newest(algos, lambda r: r[1])],
                [(r[0], _position_from(r)) for r in newest(positions, lambda r: (r[1], r[2]))])

    async def fills_complete_ms(self, account: str) -> int | None:
        """Exchange time up to which every fill of ``account`` is recorded (None: not known yet)."""
        rows = await self._fetch("SELECT fills_complete_ms FROM accounts WHERE account = ?", (account,))
        return int(rows[0][0]) if rows else None

    async def plans(self, account: str) -> list[dict]:
        """The stored management plans of ``account``'s open positions."""
        rows = await self._fetch(
            "SELECT symbol, position_side, run_id, payload_json, updated_ms FROM plans WHERE account = ? "
            "ORDER BY symbol, position_side", (account,))
        return [{"symbol": r[0], "position_side": r[1], "run_id": r[2], "payload": json.loads(r[3]),
                 "updated_ms": r[4]} for r in rows]

    async def record_intent(self, account: str, run_id: str, client_id: str, *, symbol: str, kind: str,
                            role: str, payload: dict, time_ms: int) -> bool:
        """Store an order request before it is sent (committed on return). False if this client id
        was already stored — the caller must then not send it blindly."""
        async with self._lock:
            cur = await self._db.execute(
                "INSERT OR IGNORE INTO intents (account, client_id, run_id, symbol, kind, role, payload_json, "
                "state, created_ms, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
                (account, client_id, run_id, symbol, kind, role, dumps(payload), time_ms, time_ms))
            return cur.rowcount == 1

    async def set_intent_state(self, account: str, client_id: str, state: str, time_ms: int) -> None:
        async with self._lock:
            await self._db.execute(
                "UPDATE intents SET state = ?, updated_ms = ? WHERE account = ? AND client_id = ?",
                (state, time_ms, account, client_id))

    async def intents(self, account: str, states: Sequence[str] | None = None) -> list[dict]:
        sql = ("SELECT client_id, run_id, symbol, kind, role, payload_json, state, created_ms, updated_ms "
               "FROM intents WHERE account = ?")
        params: list[Any] = [account]
        if states:
            sql += f" AND state IN ({', '.join('?' for _ in states)})"
            params.extend(states)
        rows = await self._fetch(sql + " ORDER BY created_ms, rowid", params)
        keys = ("client_id", "run_id", "symbol", "kind", "role", "payload", "state", "created_ms", "updated_ms")
        out = []
        for r in rows:
            d = dict(zip(keys, r, strict=True))
            d["payload"] = json.loads(d["payload"])
            out.append(d)
        return out

    async def intent_ids(self, account: str, role: str | None = None) -> set[str]:
        sql, params = "SELECT client_id FROM intents WHERE account = ?", [account]
        if role is not None:
            sql += " AND role = ?"
            params.append(role)
        return {r[0] for r in await self._fetch(sql, params)}

    async def account_fill_keys(self, account: str, since_ms: int = 0) -> set[tuple[str, int]]:
        """(symbol, exchange trade id) of every fill recorded by ``account``'s runs since ``since_ms``."""
        rows = await self._fetch(
            "SELECT f.symbol, f.trade_id FROM fills f JOIN runs r ON r.run_id = f.run_id "
            "WHERE r.account = ? AND f.time_ms >= ?", (account, since_ms))
        return {(r[0], int(r[1])) for r in rows}

    async def last_fill_ms(self, account: str) -> int | None:
        rows = await self._fetch(
            "SELECT MAX(f.time_ms) FROM fills f JOIN runs r ON r.run_id = f.run_id WHERE r.account = ?",
            (account,))
        return int(rows[0][0]) if rows and rows[0][0] is not None else None

    async def take_open_trades(self, account: str, run_id: str) -> list[Trade]:
        """The trades ``account``'s earlier runs left open, moved to ``run_id`` (which goes on
        managing them, so each trade stays one row)."""
        async with self._lock:
            db = self._db
            await db.execute("BEGIN IMMEDIATE")
            try:
                rows = list(await db.execute_fetchall(
                    f"SELECT {_TRADE_COLS} FROM trades t WHERE t.exit_time_ms IS NULL AND t.run_id IN "
                    "(SELECT run_id FROM runs WHERE account = ? AND run_id != ?)", (account, run_id)))
                for r in rows:
                    await db.execute(
                        "DELETE FROM trades WHERE run_id = ? AND trade_id = ? AND EXISTS "
                        "(SELECT 1 FROM trades WHERE run_id = ? AND trade_id = ?)", (run_id, r[1], run_id, r[1]))
                    await db.execute("UPDATE trades SET run_id = ? WHERE run_id = ? AND trade_id = ?",
                                     (run_id, r[0], r[1]))
                await db.execute("COMMIT")
            except BaseException:
                await _rollback(db)
                raise
        return [_trade_from(r) for r in rows]

    async def end_run(self, run_id: str, ended_ms: int, summary_json: str) -> None:
        async with self._lock:
            cur = await self._db.execute(
                "UPDATE runs SET ended_ms = ?, summary_json = ? WHERE run_id = ?",
                (ended_ms, summary_json, run_id),
            )
            if cur.rowcount == 0:
                raise StoreError(f"{self.path}: cannot end unknown run {run_id!r}")

    async def runs(self) -> list[dict]:
        rows = await self._fetch(
            "SELECT run_id, started_ms, ended_ms, mode, strategy, config_json, summary_json "
            "FROM runs ORDER BY started_ms, rowid"
        )
        keys = ("run_id", "started_ms", "ended_ms", "mode", "strategy", "config_json",
                "summary_json")  # fmt: skip
        return [dict(zip(keys, r, strict=True)) for r in rows]

    async def last_run_id(self) -> str | None:
        rows = await self._fetch(
            "SELECT run_id FROM runs ORDER BY started_ms DESC, rowid DESC LIMIT 1"
        )
        return rows[0][0] if rows else None

    # ---------------------------------------------------------------- writes

    async def write_batch(self, batch: JournalBatch) -> None:
        """Write everything in ``batch`` in ONE transaction: all of it or none of it.

        orders, algo orders, positions and trades are upserted (the last record of a key in
        arrival order wins); fills, funding and candles are insert-or-ignore (a fill is stored
        once however often it is written); signals and events are appended.
        Raises :class:`StoreError` when the batch's run was never started.
        """
        if len(batch) == 0:
            return
        run_id = batch.run_id
        # Convert before opening the transaction: a bad record fails fast without touching the DB.
        work: list[tuple[str, list[tuple]]] = [
            (_SQL_ORDER, [_order_row(run_id, o) for o in batch.orders]),
            (_SQL_ALGO, [_algo_row(run_id, a) for a in batch.algo_orders]),
            (_SQL_FILL, [_fill_row(run_id, f) for f in batch.fills]),
            (_SQL_POSITION, [_position_row(run_id, p) for p in batch.positions]),
            (_SQL_SIGNAL, [_signal_row(run_id, s) for s in batch.signals]),
            (_SQL_TRADE, [_trade_row(run_id, t) for t in batch.trades]),
            (_SQL_CANDLE, [_candle_row(c) for c in batch.candles if c.closed]),
            (_SQL_FUNDING, [_funding_row(run_id, d) for d in batch.funding]),
            (_SQL_EVENT, [_event_row(run_id, d) for d in batch.events]),
        ]
        for d in batch.plans:  # in arrival order: the last word on a position wins
            if d["payload_json"] is None:
                work.append((_SQL_PLAN_DELETE, [(d["account"], d["symbol"], d["position_side"])]))
            else:
                work.append((_SQL_PLAN, [(d["account"], d["symbol"], d["position_side"], run_id,
                                          d["payload_json"], int(d["updated_ms"]))]))
        for d in batch.fill_marks:
            work.append((_SQL_FILL_MARK, [(d["account"], d["fills_complete_ms"], d["updated_ms"])]))
        run_scoped = len(batch) - len(batch.candles)
        async with self._lock:
            db = self._db
            await db.execute("BEGIN IMMEDIATE")
            try:
                if run_scoped:
                    rows = await db.execute_fetchall(
                        "SELECT 1 FROM runs WHERE run_id = ?", (run_id,)
                    )
                    if not rows:
                        raise StoreError(
                            f"{self.path}: run {run_id!r} was never started; call start_run first"
                        )
                for sql, params in work:
                    if params:
                        await db.executemany(sql, params)
                await db.execute("COMMIT")
            except BaseException:
                await _rollback(db)
                raise

    # ---------------------------------------------------------------- reads

    async def orders(self, run_id: str | None) -> list[Order]:
        rows = await self._fetch_run("orders", _ORDER_COLS, run_id, "created_ms, rowid")
        return [_order_from(r) for r in rows]

    async def algo_orders(self, run_id: str | None) -> list[AlgoOrder]:
        rows = await self._fetch_run("algo_orders", _ALGO_COLS, run_id, "created_ms, rowid")
        return [_algo_from(r) for r in rows]

    async def fills(self, run_id: str | None) -> list[Fill]:
        rows = await self._fetch_run("fills", _FILL_COLS, run_id, "time_ms, rowid")
        return [_fill_from(r) for r in rows]

    async def positions(self, run_id: str | None) -> list[Position]:
        rows = await self._fetch_run("positions", _POSITION_COLS, run_id, "symbol, position_side")
        return [_position_from(r) for r in rows]

    async def signals(self, run_id: str | None) -> list[SignalRecord]:
        rows = await self._fetch_run("signals", _SIGNAL_COLS, run_id, "id")
        return [_signal_from(r) for r in rows]

    async def trades(self, run_id: str | None) -> list[Trade]:
        rows = await self._fetch_run("trades", _TRADE_COLS, run_id, "entry_time_ms, rowid")
        return [_trade_from(r) for r in rows]

    async def signal_counts(
        self, run_id: str | None = None, *, since_ms: int | None = None, until_ms: int | None = None,
        strategy: str | None = None,
    ) -> dict[str, dict[str, int]]:
        """Judged signals per strategy: ``{strategy: {"signals", "accepted", "denied"}}`` (sorted),
        for one run or all, judged at ``since_ms <= time_ms < until_ms``, optionally one strategy."""
        where, params = _signal_filter(run_id, since_ms, until_ms, strategy, "time_ms")
        rows = await self._fetch(
            f"SELECT strategy, verdict, COUNT(*) FROM signals{where} GROUP BY strategy, verdict", params)
        out: dict[str, dict[str, int]] = {}
        for name, verdict, n in rows:
            c = out.setdefault(name, {"signals": 0, "accepted": 0, "denied": 0})
            c["signals"] += int(n)
            c[Verdict(verdict).value] += int(n)
        return dict(sorted(out.items()))

    async def strategy_summary(
        self, run_id: str | None = None, *, since_ms: int | None = None, until_ms: int | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Per strategy, for a console or a script: judged signals (``signals``, ``accepted``,
        ``denied``) and trades — ``trades`` closed with their exit at ``since_ms <= exit < until_ms``,
        ``open`` (entered before ``until_ms``, not closed), ``wins`` (net PnL > 0), ``win_rate_pct``
        (Decimal, None without closed trades) and ``net_pnl`` (exact Decimal sum, USDT)."""
        out: dict[str, dict[str, Any]] = {}

        def row(name: str) -> dict[str, Any]:
            return out.setdefault(name, {"signals": 0, "accepted": 0, "denied": 0, "trades": 0, "open": 0,
                                         "wins": 0, "win_rate_pct": None, "net_pnl": Decimal(0)})

        for name, counts in (await self.signal_counts(run_id, since_ms=since_ms, until_ms=until_ms)).items():
            row(name).update(counts)
        where, params = _signal_filter(run_id, None, until_ms, None, "entry_time_ms")
        for name, exit_ms, net in await self._fetch(f"SELECT strategy, exit_time_ms, net_pnl FROM trades{where}",
                                                    params):
            r = row(name)
            if exit_ms is None:
                r["open"] += 1
                continue
            if (since_ms is not None and exit_ms < since_ms) or (until_ms is not None and exit_ms >= until_ms):
                continue
            pnl = _to_dec(net)
            r["trades"] += 1
            r["net_pnl"] += pnl
            if pnl > 0:
                r["wins"] += 1
        for r in out.values():
            if r["trades"]:
                r["win_rate_pct"] = Decimal(r["wins"]) * 100 / r["trades"]
        return dict(sorted(out.items()))

    async def funding(self, run_id: str | None) -> list[dict]:
        rows = await self._fetch_run("funding", _FUNDING_COLS, run_id, "time_ms, rowid")
        return [
            {
                "symbol": r[1],
                "time_ms": r[2],
                "position_side": r[3],
                "amount": Decimal(r[4]),
                "rate": _to_dec_opt(r[5]),
            }
            for r in rows
        ]

    async def events(self, run_id: str | None) -> list[dict]:
        rows = await self._fetch_run("events", "id, " + _EVENT_COLS, run_id, "id")
        return [
            {
                "id": r[0],
                "time_ms": r[2],
                "kind": r[3],
                "message": r[4],
                "data": None if r[5] is None else json.loads(r[5]),
            }
            for r in rows
        ]

    async def candles(
        self, symbol: str, start_ms: int | None = None, end_ms: int | None = None
    ) -> list[Candle]:
        """Stored 1m candles of ``symbol`` with ``start_ms <= open_time_ms < end_ms``."""
        sql = f"SELECT {_CANDLE_COLS} FROM candles_1m WHERE symbol = ?"
        params: list[Any] = [symbol]
        if start_ms is not None:
            sql += " AND open_time_ms >= ?"
            params.append(start_ms)
        if end_ms is not None:
            sql += " AND open_time_ms < ?"
            params.append(end_ms)
        rows = await self._fetch(sql + " ORDER BY open_time_ms", params)
        return [_candle_from(r) for r in rows]

    async def candle_count(self, symbol: str | None = None) -> int:
        if symbol is None:
            rows = await self._fetch("SELECT COUNT(*) FROM candles_1m")
        else:
            rows = await self._fetch("SELECT COUNT(*) FROM candles_1m WHERE symbol = ?", (symbol,))
        return int(rows[0][0])

    # ---------------------------------------------------------------- helpers

    async def _fetch(self, sql: str, params: Iterable[Any] = ()) -> list[Sequence[Any]]:
        async with self._lock:
            return list(await self._db.execute_fetchall(sql, tuple(params)))

    async def _fetch_run(
        self, table: str, cols: str, run_id: str | None, order_by: str
    ) -> list[Sequence[Any]]:
        """Rows of ``table`` for one run, or for every run when ``run_id`` is None."""
        if run_id is None:
            return await self._fetch(f"SELECT {cols} FROM {table} ORDER BY {order_by}")
        return await self._fetch(
            f"SELECT {cols} FROM {table} WHERE run_id = ? ORDER BY {order_by}", (run_id,)
        )


# --------------------------------------------------------------------------- migrations


async def _user_version(db: aiosqlite.Connection) -> int:
    rows = await db.execute_fetchall("PRAGMA user_version")
    return int(next(iter(rows))[0])


async def _rollback(db: aiosqlite.Connection) -> None:
    if db.in_transaction:
        await db.execute("ROLLBACK")


async def _migrate(db: aiosqlite.Connection, path: Path) -> None:
    """Apply the pending migrations, each in its own transaction with its ``user_version`` bump.
    The version is re-read inside the transaction, so two processes opening a fresh database at
    once do not both run the same migration."""
    while True:
        current = await _user_version(db)
        if current >= SCHEMA_VERSION:
            return
        await db.execute("BEGIN IMMEDIATE")
        try:
            current = await _user_version(db)
            if current > SCHEMA_VERSION:
                raise StoreError(
                    f"{path}: database schema version {current} is newer than this code "
                    f"supports (version {SCHEMA_VERSION})"
                )
            if current == SCHEMA_VERSION:  # another process migrated it meanwhile
                await db.execute("COMMIT")
                return
            migration = MIGRATIONS[current]
            if isinstance(migration, str):
                for statement in split_statements(migration):
                    await db.execute(statement)
            else:
                result = migration(db)
                if inspect.isawaitable(result):
                    await result
            await db.execute(f"PRAGMA user_version = {current + 1}")
            await db.execute("COMMIT")
        except BaseException as exc:
            await _rollback(db)
            if isinstance(exc, Exception) and not isinstance(exc, StoreError):
                raise StoreError(
                    f"{path}: migration from schema version {current} to {current + 1} failed: "
                    f"{exc}"
                ) from exc
            raise
