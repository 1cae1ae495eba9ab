"""Historical market data: Binance Vision kline CSVs and funding-rate CSVs.

Kline files use the data.binance.vision USDⓈ-M layout::

    open_time,open,high,low,close,volume,close_time,quote_volume,count,
    taker_buy_volume,taker_buy_quote_volume,ignore

The header row is optional (older Binance Vision dumps have none), trailing columns may be empty
strings, and ``.gz`` files are read transparently. Every row is validated; a bad row raises
:class:`DataError` naming the file, the line, the column and what was expected, before anything
downstream (the database in particular) has been touched.
"""

from __future__ import annotations

import csv
import gzip
import heapq
import io
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Iterator, Sequence

from engine.model import Candle

KLINE_HEADER = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "count",
    "taker_buy_volume",
    "taker_buy_quote_volume",
    "ignore",
)
ONE_MINUTE_MS = 60_000


class DataError(ValueError):
    """A market-data file that cannot be used; the message says where and why."""


@dataclass(frozen=True, slots=True)
class KlineFile:
    symbol: str
    path: Path
    candles: tuple[Candle, ...]


def symbol_from_filename(path: Path) -> str:
    """``BTCUSDT-1m-2025-05-05-2025-05-18.csv.gz`` → ``BTCUSDT``."""
    name = path.name
    symbol = name.split("-", 1)[0].upper()
    if not symbol.isalnum():
        raise DataError(f"{path}: cannot tell the symbol from the file name (expected SYMBOL-1m-….csv)")
    return symbol


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _dec(raw: str, path: Path, line: int, column: str) -> Decimal:
    try:
        value = Decimal(raw)
    except (InvalidOperation, ValueError):
        raise DataError(f"{path}:{line}: column '{column}': expected a decimal number, got {raw!r}") from None
    if not value.is_finite():
        raise DataError(f"{path}:{line}: column '{column}': expected a finite number, got {raw!r}")
    return value


def _int(raw: str, path: Path, line: int, column: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise DataError(f"{path}:{line}: column '{column}': expected an integer (epoch ms), got {raw!r}") from None


def load_klines(path: str | Path, symbol: str | None = None) -> KlineFile:
    """Parse and validate one kline file completely (raises :class:`DataError`)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such kline file")
    sym = (symbol or symbol_from_filename(path)).upper()
    out: list[Candle] = []
    prev_open: int | None = None
    try:
        with _open_text(path) as fh:
            reader = csv.reader(fh)
            for line_no, row in enumerate(reader, start=1):
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if line_no == 1 and row[0].strip().lower() == "open_time":
                    continue
                if len(row) < 7:
                    raise DataError(
                        f"{path}:{line_no}: expected at least 7 columns "
                        f"(open_time … close_time), got {len(row)}"
                    )
                if len(row) > 12:
                    raise DataError(f"{path}:{line_no}: expected at most 12 columns, got {len(row)}")
                open_time = _int(row[0], path, line_no, "open_time")
                o = _dec(row[1], path, line_no, "open")
                h = _dec(row[2], path, line_no, "high")
                lo = _dec(row[3], path, line_no, "low")
                c = _dec(row[4], path, line_no, "close")
                v = _dec(row[5], path, line_no, "volume")
                close_time = _int(row[6], path, line_no, "close_time")
                if lo <= 0:
                    raise DataError(f"{path}:{line_no}: column 'low': expected a price > 0, got {row[3]!r}")
                if h < lo or h < o or h < c or lo > o or lo > c:
                    raise DataError(
                        f"{path}:{line_no}: expected low <= open, close <= high, "
                        f"got open={row[1]} high={row[2]} low={row[3]} close={row[4]}"
                    )
                if v < 0:
                    raise DataError(f"{path}:{line_no}: column 'volume': expected >= 0, got {row[5]!r}")
                if close_time != open_time + ONE_MINUTE_MS - 1:
                    raise DataError(
                        f"{path}:{line_no}: column 'close_time': expected open_time + 59999 "
                        f"({open_time + ONE_MINUTE_MS - 1}) for a 1m kline, got {close_time}"
                    )
                if prev_open is not None and open_time <= prev_open:
                    raise DataError(
                        f"{path}:{line_no}: column 'open_time': expected strictly increasing times, "
                        f"got {open_time} after {prev_open}"
                    )
                prev_open = open_time
                out.append(Candle(sym, open_time, close_time, o, h, lo, c, v, True))
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text CSV (bad encoding)") from None
    if not out:
        raise DataError(f"{path}: no candles in file")
    return KlineFile(sym, path, tuple(out))


def merge_by_time(files: Sequence[KlineFile]) -> Iterator[Candle]:
    """Merge several symbols' candles into one stream ordered by (open_time, symbol)."""
    iters = [((c.open_time_ms, c.symbol, i, c) for i, c in enumerate(f.candles)) for f in files]
    for _, _, _, candle in heapq.merge(*iters):
        yield candle


def merged_candles(files: Sequence[KlineFile]) -> list[Candle]:
    return list(merge_by_time(files))


def load_funding(path: str | Path) -> dict[str, dict[int, Decimal]]:
    """Parse ``symbol,funding_time,funding_rate`` CSV → {symbol: {funding_time_ms: rate}}."""
    path = Path(path)
    out: dict[str, dict[int, Decimal]] = {}
    try:
        with _open_text(path) as fh:
            for line_no, row in enumerate(csv.reader(fh), start=1):
                if not row:
                    continue
                if line_no == 1 and row[0].strip().lower() == "symbol":
                    continue
                if len(row) < 3:
                    raise DataError(f"{path}:{line_no}: expected 3 columns symbol,funding_time,funding_rate")
                t = _int(row[1], path, line_no, "funding_time")
                rate = _dec(row[2], path, line_no, "funding_rate")
                out.setdefault(row[0].strip().upper(), {})[t] = rate
    except FileNotFoundError:
        raise DataError(f"{path}: no such funding file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None
    return out


def sample_dir() -> Path:
    """The bundled sample data directory (shipped inside the package)."""
    return Path(str(resources.files("engine.exchange.sim") / "data" / "sample"))


def sample_kline_files(symbols: Sequence[str] | None = None) -> list[Path]:
    files = sorted(sample_dir().glob("*-1m-*.csv.gz"))
    if symbols:
        wanted = {s.upper() for s in symbols}
        files = [f for f in files if symbol_from_filename(f) in wanted]
    return files


def sample_funding_files(symbols: Sequence[str] | None = None) -> list[Path]:
    files = sorted(sample_dir().glob("*-fundingRate-*.csv"))
    if symbols:
        wanted = {s.upper() for s in symbols}
        files = [f for f in files if symbol_from_filename(f) in wanted]
    return files
