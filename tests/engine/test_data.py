"""Kline and funding CSV loading: Binance Vision layout, validation with file:line messages."""

import gzip
from decimal import Decimal

import pytest

from engine.data import DataError, load_funding, load_klines, merged_candles, sample_funding_files, sample_kline_files

HEADER = "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore\n"


def write(tmp_path, name, rows, header=True, gz=False):
    text = (HEADER if header else "") + "".join(r + "\n" for r in rows)
    p = tmp_path / name
    if gz:
        with gzip.open(p, "wt") as fh:
            fh.write(text)
    else:
        p.write_text(text)
    return p


def test_bundled_sample_has_three_symbols_and_seven_days_or_more():
    files = [load_klines(p) for p in sample_kline_files()]
    assert {f.symbol for f in files} >= {"BTCUSDT", "ETHUSDT", "SOLUSDT"}
    for f in files:
        assert len(f.candles) >= 7 * 1440
    assert sample_funding_files()


def test_empty_trailing_columns_headerless_and_gz_are_accepted(tmp_path):
    p = write(tmp_path, "BTCUSDT-1m-x.csv.gz", ["60000,1.0,2,0.5,1.5,10,119999,,,,,"], header=False, gz=True)
    f = load_klines(p)
    assert f.symbol == "BTCUSDT" and f.candles[0].close == Decimal("1.5")
    full = write(tmp_path, "ETHUSDT-1m-y.csv", ["0,1,2,0.5,1.5,10,59999,15,3,5,7.5,0"])
    assert load_klines(full).candles[0].volume == Decimal("10")


@pytest.mark.parametrize(
    "row, needle",
    [
        ("60000,abc,2,0.5,1.5,10,119999", "column 'open': expected a decimal number, got 'abc'"),
        ("60000,1,2,0.5,1.5,10,119998", "column 'close_time'"),
        ("60000,1,0.9,0.5,1.5,10,119999", "expected low <= open, close <= high"),
        ("60000,1,2,0.5,1.5,-1,119999", "column 'volume'"),
        ("60000,1,2,0.5", "expected at least 7 columns"),
        ("sixty,1,2,0.5,1.5,10,119999", "column 'open_time': expected an integer"),
    ],
)
def test_malformed_rows_name_file_line_and_column(tmp_path, row, needle):
    p = write(tmp_path, "BTCUSDT-1m-bad.csv", ["0,1,2,0.5,1.5,10,59999", row])
    with pytest.raises(DataError) as exc:
        load_klines(p)
    assert f"{p}:3" in str(exc.value) and needle in str(exc.value)


def test_times_must_increase(tmp_path):
    p = write(tmp_path, "BTCUSDT-1m-dup.csv", ["60000,1,2,0.5,1.5,10,119999", "60000,1,2,0.5,1.5,10,119999"])
    with pytest.raises(DataError, match="strictly increasing"):
        load_klines(p)


def test_merge_orders_by_time_then_symbol(tmp_path):
    a = load_klines(write(tmp_path, "BTCUSDT-1m-a.csv", ["0,1,1,1,1,1,59999", "60000,1,1,1,1,1,119999"]))
    b = load_klines(write(tmp_path, "ETHUSDT-1m-b.csv", ["0,1,1,1,1,1,59999", "60000,1,1,1,1,1,119999"]))
    merged = merged_candles([b, a])
    assert [(c.open_time_ms, c.symbol) for c in merged] == [(0, "BTCUSDT"), (0, "ETHUSDT"), (60000, "BTCUSDT"),
                                                            (60000, "ETHUSDT")]


def test_funding_csv(tmp_path):
    p = tmp_path / "f.csv"
    p.write_text("symbol,funding_time,funding_rate\nBTCUSDT,1750723200003,0.00010000\n")
    assert load_funding(p) == {"BTCUSDT": {1750723200003: Decimal("0.0001")}}
    p.write_text("symbol,funding_time,funding_rate\nBTCUSDT,1750723200003,x\n")
    with pytest.raises(DataError, match="funding_rate"):
        load_funding(p)
