"""Exports of stored data for spreadsheets and notebooks."""

from __future__ import annotations

import asyncio
import csv
import os
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from engine.model import Trade
from engine.state.store import Store

TRADE_CSV_HEADER = (
    "trade_id", "strategy", "symbol", "direction", "entry_time_utc", "entry_price", "quantity",
    "exit_time_utc", "exit_price", "entry_reason", "exit_reason", "fees", "funding",
    "realized_pnl", "net_pnl", "mfe", "mae",
)  # fmt: skip

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utc_iso(ms: int | None) -> str:
    """Epoch ms -> ``2025-05-05T00:01:00.000Z`` (exact: no float arithmetic); None -> ``""``."""
    if ms is None:
        return ""
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


def decimal_text(d: Decimal | None) -> str:
    """Exact, plain (no exponent) text for a Decimal: ``0E-8`` -> ``0.00000000``; None -> ``""``."""
    if d is None:
        return ""
    return format(d, "f")


def _trade_csv_row(t: Trade) -> list[str]:
    return [
        t.trade_id, t.strategy, t.symbol, t.direction.value, utc_iso(t.entry_time_ms),
        decimal_text(t.entry_price), decimal_text(t.quantity), utc_iso(t.exit_time_ms),
        decimal_text(t.exit_price), t.entry_reason,
        "" if t.exit_reason is None else t.exit_reason.value, decimal_text(t.fees),
        decimal_text(t.funding), decimal_text(t.realized_pnl), decimal_text(t.net_pnl),
        decimal_text(t.mfe), decimal_text(t.mae),
    ]  # fmt: skip


def _write_csv_atomic(path: Path, header: Sequence[str], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(rows)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


async def export_trades_csv(store: Store, path: str | Path, run_id: str | None = None) -> int:
    """Write the trades (closed and open) of ``run_id`` (default: the last run) to ``path`` as CSV;
    return the number of trade rows. The file is replaced atomically. With no run at all the file
    holds only the header."""
    if run_id is None:
        run_id = await store.last_run_id()
    trades = [] if run_id is None else await store.trades(run_id)
    rows = [_trade_csv_row(t) for t in trades]
    await asyncio.to_thread(_write_csv_atomic, Path(path), TRADE_CSV_HEADER, rows)
    return len(rows)
