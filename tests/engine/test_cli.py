"""The ``perpdeck`` command: headless run, bad input, export, Ctrl-C."""

import asyncio
import csv
from decimal import Decimal
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.cli import main
from engine.state.store import Store

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for k in list(os.environ):
        if k.startswith("PERPDECK_") or k.startswith("BINANCE_"):
            monkeypatch.delenv(k)
    monkeypatch.chdir(tmp_path)  # no ./config.toml, no ./.env
    return tmp_path


def test_headless_run_prints_a_summary_and_exports_trades(clean_env, capsys):
    state = clean_env / "state"
    assert main(["--no-ui", "--state-dir", str(state), "--symbols", "BTCUSDT"]) == 0
    out = capsys.readouterr().out
    for needle in ("candles processed  20,160", "denials by reason", "win rate", "net PnL", "max drawdown",
                   str(state / "perpdeck.db"), "perpdeck-", "heartbeat.json"):
        assert needle in out
    from engine.heartbeat import read_heartbeat

    hb = read_heartbeat(state / "status" / "heartbeat.json")
    assert hb["finished"] is True and hb["candles"] == 20_160 and hb["engine_state"] == "ACTIVE"
    assert hb["journal_pending"] == 0 and hb["mode"] == "sim"
    logs = list((state / "logs").glob("*.jsonl"))
    assert logs and logs[0].read_text().startswith("{")
    out_csv = clean_env / "trades.csv"
    assert main(["--state-dir", str(state), "export", "trades", "--csv", str(out_csv)]) == 0
    rows = list(csv.DictReader(out_csv.open()))
    trades_line = [line for line in out.splitlines() if line.strip().startswith("trades ")][0]
    assert len(rows) == int(trades_line.split()[1]) > 0
    assert {"entry_reason", "exit_reason", "fees", "funding", "net_pnl", "mfe", "mae"} <= set(rows[0])


def _db_exists(state: Path) -> bool:
    return (state / "perpdeck.db").exists()


def test_bad_config_exits_2_names_the_field_and_writes_nothing(clean_env, capsys):
    cfg = clean_env / "bad.toml"
    cfg.write_text("[risk]\nstop_loss_pct = 150\n")
    state = clean_env / "state"
    assert main(["--no-ui", "--config", str(cfg), "--state-dir", str(state)]) == 2
    err = capsys.readouterr().err
    assert "risk.stop_loss_pct" in err and "150" in err and "less than 100" in err
    assert not _db_exists(state)


def test_bad_env_value_exits_2(clean_env, capsys, monkeypatch):
    monkeypatch.setenv("PERPDECK_LEVERAGE", "-3")
    assert main(["--no-ui", "--state-dir", str(clean_env / "s")]) == 2
    assert "leverage" in capsys.readouterr().err


def test_malformed_csv_exits_2_with_file_and_line_and_leaves_no_database(clean_env, capsys):
    bad = clean_env / "BTCUSDT-1m-bad.csv"
    bad.write_text("open_time,open,high,low,close,volume,close_time\n0,1,2,0.5,1.5,10,59999\n60000,1,2,x,1,1,119999\n")
    state = clean_env / "state"
    assert main(["--no-ui", "--data", str(bad), "--state-dir", str(state)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:3" in err and "column 'low'" in err
    assert not _db_exists(state)


def test_unknown_strategy_exits_2(clean_env, capsys):
    assert main(["--no-ui", "--strategy", "nope", "--state-dir", str(clean_env / "s")]) == 2
    assert "unknown strategy" in capsys.readouterr().err


def test_ctrl_c_stops_cleanly_with_everything_flushed(tmp_path):
    """A real process, a real SIGINT: the journal is flushed and the run is closed in the database."""
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERPDECK_", "BINANCE_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "--no-ui", "--speed", "3000", "--state-dir", str(state)],
        cwd=tmp_path, env={**env, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    hb = state / "status" / "heartbeat.json"
    deadline = time.monotonic() + 60
    while not hb.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)  # waiting for the process to start, not for time to pass in the test
    assert hb.exists(), proc.communicate(timeout=5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "perpdeck run summary" in out and "stopped before the end of the data" in err

    async def check():
        store = await Store.open(state / "perpdeck.db")
        try:
            runs = await store.runs()
            assert len(runs) == 1 and runs[0]["ended_ms"] is not None and runs[0]["summary_json"]
            import json

            summary = json.loads(runs[0]["summary_json"])
            signals = await store.signals(runs[0]["run_id"])
            assert len(signals) == summary["signals"]
            assert summary["stopped_early"] is True
        finally:
            await store.close()

    asyncio.run(check())


def test_mainnet_refuses_to_start_without_the_real_money_confirmation(clean_env, capsys, monkeypatch):
    monkeypatch.setenv("BINANCE_API_KEY", "k" * 16)
    monkeypatch.setenv("BINANCE_API_SECRET", "s" * 16)
    state = clean_env / "state"
    assert main(["--no-ui", "--mode", "mainnet", "--state-dir", str(state)]) == 2
    err = capsys.readouterr().err
    assert "MAINNET" in err and "REAL MONEY" in err and "--confirm-real-money" in err
    assert "s" * 16 not in err and not (state / "perpdeck.db").exists()


def test_testnet_without_keys_says_which_variables_to_set(clean_env, capsys):
    assert main(["--no-ui", "--mode", "testnet", "--state-dir", str(clean_env / "s")]) == 2
    assert "BINANCE_API_KEY" in capsys.readouterr().err


def test_sim_exchange_subcommand_serves_a_binance_client(tmp_path):
    """`perpdeck sim-exchange` as a real process; an unmodified UMFutures client talks to it."""
    import socket

    from binance.um_futures import UMFutures

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERPDECK_", "BINANCE_"))}
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "sim-exchange", "--port", str(port),
                             "--ws-port", "0", "--api-key", "cli-key", "--api-secret", "cli-secret"],
                            cwd=tmp_path, env={**env, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        client = UMFutures(key="cli-key", secret="cli-secret", base_url=f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 60
        while True:  # until the server is listening
            try:
                assert client.time()["serverTime"] > 0
                break
            except Exception:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.05)
        assert {s["symbol"] for s in client.exchange_info()["symbols"]} >= {"BTCUSDT", "ETHUSDT"}
        assert Decimal(client.balance()[0]["balance"]) > 0
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)


def _ctl(state, action):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERPDECK_", "BINANCE_"))}
    r = subprocess.run([sys.executable, "-m", "engine.cli", "--state-dir", str(state), "ctl", action],
                       env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120)
    import json

    return r.returncode, (json.loads(r.stdout) if r.stdout.strip().startswith("{") else r.stdout), r.stderr


def test_ctl_operates_a_running_headless_instance(tmp_path):
    from engine.control import socket_path

    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERPDECK_", "BINANCE_"))}
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "--no-ui", "--speed", "600", "--state-dir",
                             str(state)], cwd=tmp_path, env={**env, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        sock = socket_path(state)
        deadline = time.monotonic() + 60
        while not sock.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)  # waiting for the instance to come up
        assert sock.exists(), proc.communicate(timeout=5)
        assert oct(sock.stat().st_mode & 0o777) == "0o600"  # only this user can open it
        rc, doc, _ = _ctl(state, "status")
        assert rc == 0 and doc["status"]["state"] == "ACTIVE" and doc["status"]["mode"] == "sim"
        assert {"position_count", "total_unrealized_pnl", "daily_trades", "daily_pnl"} <= set(doc["status"])
        rc, _, _ = _ctl(state, "halt")
        assert rc == 0
        rc, doc, _ = _ctl(state, "status")
        assert doc["status"]["state"] == "HALTED" and "ctl" in doc["status"]["halt_reason"]
        assert _ctl(state, "resume")[0] == 0
        assert _ctl(state, "status")[1]["status"]["state"] == "ACTIVE"
        rc, out, _ = _ctl(state, "flatten")
        assert rc == 0 and out["state"] == "flat"
        doc = _ctl(state, "status")[1]["status"]
        assert doc["state"] == "HALTED" and doc["position_count"] == 0 and doc["open_algo_orders"] == 0
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    assert not socket_path(state).exists()  # removed on exit
    rc, _, err = _ctl(state, "status")
    assert rc == 2 and "no running perpdeck" in err


# --------------------------------------------------------------------------- perpdeck report

_REPORT_T0 = 1_746_403_200_000  # 2025-05-05T00:00:00Z


def _report_trades():
    from engine.model import Direction, ExitReason, PositionSide, Trade

    day, hour = 86_400_000, 3_600_000

    def t(tid, strategy, exit_ms, realized, fees, funding, reason):
        return Trade(trade_id=tid, signal_id=None, strategy=strategy, symbol="ETHUSDT", direction=Direction.SHORT,
                     position_side=PositionSide.BOTH, entry_time_ms=(exit_ms or _REPORT_T0) - hour,
                     entry_price=Decimal("1800"), quantity=Decimal("1"), exit_time_ms=exit_ms,
                     exit_price=None if exit_ms is None else Decimal("1790"), entry_reason="test",
                     exit_reason=reason, fees=Decimal(fees), funding=Decimal(funding),
                     realized_pnl=Decimal(realized), mfe=Decimal("3"), mae=Decimal("2"))

    return [
        t("a1", "alpha", _REPORT_T0 + 2 * hour, "12", "0.4", "0.1", ExitReason.TAKE_PROFIT),
        t("a2", "alpha", _REPORT_T0 + day + 2 * hour, "-5", "0.4", "-0.1", ExitReason.STOP_LOSS),
        t("b1", "beta", _REPORT_T0 + 2 * day + 2 * hour, "-1", "0.2", "0", ExitReason.STOP_LOSS),
        t("b2", "beta", None, "0", "0.2", "0", None),
    ]


def _report_db(state: Path) -> list:
    import json

    from engine.state.journal import JournalBatch

    trades = _report_trades()

    async def go():
        store = await Store.open(state / "perpdeck.db")
        try:
            await store.start_run("r1", _REPORT_T0, "sim", "alpha", json.dumps({"sim": {"starting_balance": "500"}}))
            await store.write_batch(JournalBatch("r1", trades=trades))
        finally:
            await store.close()

    asyncio.run(go())
    return trades


def test_report_entry_point_prints_per_strategy_figures(tmp_path):
    import json

    state = tmp_path / "state"
    trades = _report_db(state)
    closed = [t for t in trades if t.exit_time_ms is not None]
    nets = [t.realized_pnl - t.fees + t.funding for t in closed]
    script = Path(sys.executable).parent / "perpdeck"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "engine.cli"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERPDECK_", "BINANCE_"))}
    env["PYTHONPATH"] = str(REPO)

    def run(*extra):
        return subprocess.run([*cmd, "--state-dir", str(state), "report", *extra], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)

    r = run("--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["run_id"] == "r1" and list(doc["strategies"]) == ["alpha", "beta"]
    total = doc["total"]
    assert total["trades"] == len(closed) and total["wins"] == sum(1 for n in nets if n > 0)
    assert Decimal(total["net_pnl"]) == sum(nets)
    assert Decimal(total["fees"]) == sum(t.fees for t in closed)
    wins, losses = sum(n for n in nets if n > 0), -sum(n for n in nets if n < 0)
    assert total["profit_factor"] == str((wins / losses).quantize(Decimal("0.01")))
    assert total["return_pct"] == str((sum(nets) / 500 * 100).quantize(Decimal("0.01")))
    assert doc["open_trades"] == {"total": 1, "by_strategy": {"beta": 1}}
    assert doc["strategies"]["beta"]["profit_factor"] == "0.00"  # no wins, one loss: 0 / x
    r = run("--strategy", "alpha", "--to", "2025-05-05")
    assert r.returncode == 0, r.stderr
    rows: dict = {}
    for ln in r.stdout.splitlines():  # the first table's rows (the exit-reason table repeats the names)
        if ln.split():
            rows.setdefault(ln.split()[0], ln.split())
    assert rows["TOTAL"][1:3] == ["1", "1"] and "beta" not in rows
    assert rows["TOTAL"][4] == str(nets[0].quantize(Decimal("0.01")))


def test_report_bad_date_exits_2_naming_the_option(clean_env, capsys):
    state = clean_env / "state"
    _report_db(state)
    assert main(["--state-dir", str(state), "report", "--from", "2025-02-30"]) == 2
    err = capsys.readouterr().err
    assert "--from" in err and "2025-02-30" in err
    assert main(["--state-dir", str(state), "report", "--to", "5/7/2025"]) == 2
    err = capsys.readouterr().err
    assert "--to" in err and "5/7/2025" in err


def test_report_unknown_run_exits_2(clean_env, capsys):
    state = clean_env / "state"
    _report_db(state)
    assert main(["--state-dir", str(state), "report", "--run", "no-such-run"]) == 2
    err = capsys.readouterr().err
    assert "--run" in err and "no-such-run" in err


def test_report_empty_selection_exits_0(clean_env, capsys):
    state = clean_env / "state"
    _report_db(state)
    assert main(["--state-dir", str(state), "report", "--from", "2030-01-01"]) == 0
    assert "no closed trades in" in capsys.readouterr().out


# --------------------------------------------------------------------------- perpdeck backtest


def _direct_backtest(strategy: str, days: int):
    """The same window run straight through the backtest loop, independently of the command."""
    from engine.backtest import build_sim_run, run_sync
    from engine.config import Settings
    from engine.data import KlineFile, load_funding, load_klines, sample_funding_files, sample_kline_files

    f = load_klines(sample_kline_files(["BTCUSDT"])[0])
    files = [KlineFile(f.symbol, f.path, f.candles[: days * 1440])]
    funding = load_funding(sample_funding_files(["BTCUSDT"])[0])
    settings = Settings(symbols=["BTCUSDT"], active_strategy=strategy,
                        risk={"max_consecutive_losses": 0, "strategy_loss_limit_pct": 0})
    run = build_sim_run(settings, run_id="direct", files=files, funding=funding)
    run_sync(run)
    return run.engine


def test_backtest_runs_the_pipeline_over_the_window_and_prints_the_report(clean_env, capsys):
    import json

    args = ["backtest", "--strategy", "donchian_breakout", "--symbols", "BTCUSDT", "--from", "2025-05-05",
            "--to", "2025-05-07"]
    assert main([*args, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    eng = _direct_backtest("donchian_breakout", 3)
    closed = eng.trades.closed
    assert doc["candles"] == 3 * 1440 and doc["symbols"] == ["BTCUSDT"] and not doc["operator_halts"]
    assert len(doc["periods"]) == 1
    rep = doc["strategies"]["donchian_breakout"]
    assert rep["closed_trades"] == len(closed) > 0
    assert Decimal(rep["total"]["net_pnl"]) == sum((t.net_pnl for t in closed), Decimal(0))
    assert rep["signals"]["total"] == {"signals": eng.stats.signals, "accepted": eng.stats.accepted,
                                       "denied": eng.stats.signals - eng.stats.accepted}
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "backtest — 4,320 candles of BTCUSDT, 2025-05-05 00:00 UTC → 2025-05-07 23:59 UTC" in out
    assert "perpdeck report" in out and "Sharpe" in out and "avg MFE" in out and "signals judged by the guard" in out


def test_backtest_compare_prints_one_table_with_a_row_per_strategy(clean_env, capsys):
    names = ["ema_trend", "donchian_breakout", "regime_switch"]
    assert main(["backtest", "--compare", *names, "--symbols", "BTCUSDT", "--to", "2025-05-06"]) == 0
    out = capsys.readouterr().out.splitlines()
    header = next(i for i, ln in enumerate(out) if ln.startswith("strategy"))
    assert ["trades", "win", "%", "net", "PnL"] == out[header].split()[1:6]
    rows = {ln.split()[0]: ln.split() for ln in out[header + 2: header + 2 + len(names)]}
    assert list(rows) == names
    for name in names:
        closed = _direct_backtest(name, 2).trades.closed
        assert rows[name][1] == str(len(closed))
        assert rows[name][3] == str(sum((t.net_pnl for t in closed), Decimal(0)).quantize(Decimal("0.01")))


def test_backtest_bad_input_exits_2_naming_the_option(clean_env, capsys):
    assert main(["backtest", "--strategy", "nope"]) == 2
    assert "--strategy: unknown strategy 'nope'" in capsys.readouterr().err
    assert main(["backtest", "--compare", "ema_trend", "nope2"]) == 2
    assert "--compare: unknown strategy 'nope2'" in capsys.readouterr().err
    assert main(["backtest", "--from", "2025-05-07", "--to", "2025-05-05"]) == 2
    assert "after --to" in capsys.readouterr().err
    assert main(["backtest", "--symbols", "BTCUSDT", "--from", "2031-01-01"]) == 2
    assert "no candles to test" in capsys.readouterr().err


def test_backtest_runs_each_contiguous_period_from_a_fresh_account():
    """Two windows of one symbol a week apart are two periods: no position is carried over the gap."""
    from engine.backtest import contiguous_periods, run_backtest
    from engine.config import Settings
    from engine.data import KlineFile, load_klines, sample_kline_files

    f = load_klines(sample_kline_files(["BTCUSDT"])[0])
    early, late = (KlineFile(f.symbol, f.path, f.candles[a:b]) for a, b in ((0, 1440), (8 * 1440, 9 * 1440)))
    eth = load_klines(sample_kline_files(["ETHUSDT"])[0])
    overlapping = KlineFile(eth.symbol, eth.path, eth.candles[720:2000])  # overlaps `early`, touches nothing else
    assert contiguous_periods([late, early, overlapping]) == [[early, overlapping], [late]]
    s = Settings(symbols=["BTCUSDT"])
    both = run_backtest(s, "donchian_breakout", [early, late])
    alone = [run_backtest(s, "donchian_breakout", [x]) for x in (early, late)]
    assert len(both.summaries) == 2
    assert both.report.total.trades == sum(a.report.total.trades for a in alone) > 0
    assert both.report.total.net_pnl == sum(a.report.total.net_pnl for a in alone)
