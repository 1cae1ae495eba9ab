"""``perpdeck signal`` (one signal, --simulate) against a running session over its ctl socket, and
the CLI's own session: the endpoint starts with ``perpdeck --no-ui`` and closes with it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.cli import main, simulated_signals
from engine.strategies.signal_sim import SignalSimulator

from tests.engine.ingest_support import TOKEN, http, running_session, wait_for

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for k in list(os.environ):
        if k.startswith(("PERPDECK_", "BINANCE_")):
            monkeypatch.delenv(k)
    monkeypatch.chdir(tmp_path)  # no ./config.toml, no ./.env
    return tmp_path


async def cli(*argv: str) -> int:
    """``perpdeck …`` in a worker thread (it runs its own event loop), while the session runs in ours."""
    return await asyncio.to_thread(main, list(argv))


async def test_signal_command_sends_to_the_running_session_and_prints_the_outcome(clean_env, capsys):
    async with running_session(clean_env) as s:
        state = str(s.settings.state_dir)
        rc = await cli("--state-dir", state, "signal", "--type", "113", "--symbol", "BTC", "--id", "cli-f1",
                       "--data", '{"channel": "x"}')
        out = capsys.readouterr().out
        assert rc == 0 and "113 BTC id=cli-f1: pending" in out
        rc = await cli("--state-dir", state, "signal", "--type", "110", "--symbol", "BTCUSDT", "--json")
        doc = json.loads(capsys.readouterr().out)
        assert rc == 0 and doc["status"] == "confluence" and doc["id"].startswith("cli-") and doc["score"] > 0.6
        assert [(f.source, f.message_id) for f in s.facts] == [("cli", "cli-f1"), ("cli", doc["id"])]
        assert s.facts[0].outcome["signal"]["data"] == {"channel": "x"}
        rc = await cli("--state-dir", state, "signal", "--type", "113", "--symbol", "BTC", "--id", "cli-f1")
        assert rc == 0 and "duplicate" in capsys.readouterr().out
        rc = await cli("--state-dir", state, "signal", "--type", "114", "--symbol", "BTC")
        assert rc == 2 and "message_type:" in capsys.readouterr().err
        rc = await cli("--state-dir", state, "signal", "--type", "113", "--symbol", "BTC", "--data", "{nope")
        assert rc == 2 and "--data: not valid JSON" in capsys.readouterr().err
        assert len(s.facts) == 3  # the refused ones never reached the engine


def test_signal_command_with_nothing_listening_fails_clearly(clean_env, capsys):
    assert main(["--state-dir", str(clean_env / "state"), "signal", "--type", "113", "--symbol", "BTC"]) == 2
    err = capsys.readouterr().err
    assert "no running perpdeck with state directory" in err
    assert main(["--state-dir", str(clean_env / "state"), "signal", "--symbol", "BTC"]) == 2
    assert "--type required" in capsys.readouterr().err


def test_simulated_stream_is_reproducible():
    a, b, c = simulated_signals(7, 40), simulated_signals(7, 40), simulated_signals(8, 40)
    assert a == b and a != c
    assert [x["id"] for x in a] == [s.message_id for s in SignalSimulator(7).take(40)]
    assert {x["type"] for x in a} <= {110, 112, 113} and len({x["type"] for x in a}) >= 2


async def test_simulate_feeds_the_same_stream_to_the_running_engine(clean_env, capsys):
    async with running_session(clean_env) as s:
        rc = await cli("--state-dir", str(s.settings.state_dir), "signal", "--simulate", "--seed", "3",
                       "--count", "25", "--rate-per-s", "0")
        out = capsys.readouterr().out
        assert rc == 0 and "sent 25 simulated signals (seed 3)" in out
        got = [(f.message_type, f.message_id, f.symbol) for f in s.facts if f.source == "simulate"]
        assert got == [(x["type"], x["id"], x["symbol"]) for x in simulated_signals(3, 25)]
        statuses = [f.outcome["status"] for f in s.facts]
        assert "confluence" in statuses or "below_threshold" in statuses  # pairs in the stream do match


def _free_port() -> int:
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        return sk.getsockname()[1]


def test_headless_session_serves_the_endpoint_and_closes_it_on_exit(tmp_path):
    """The real CLI process: the endpoint comes up with `perpdeck --no-ui`, takes a signal, and is
    gone after Ctrl-C; the token is in no log line."""
    from engine.control import socket_path

    state, port = tmp_path / "state", _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERPDECK_", "BINANCE_"))}
    env.update(PYTHONPATH=str(REPO), PERPDECK_SIGNALS__TOKEN=TOKEN, PERPDECK_SIGNALS__HTTP_PORT=str(port))
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "--no-ui", "--speed", "600", "--strategy",
                             "confluence", "--symbols", "BTCUSDT", "--state-dir", str(state)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not socket_path(state).exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)  # waiting for the process to come up, not for time to pass

        async def talk():
            await wait_for(lambda: _connects(port), timeout_s=30, what="endpoint up")
            return await http(port, {"type": 113, "id": "proc-1", "symbol": "BTC"})

        status, doc = asyncio.run(talk())
        assert status == 200 and doc["status"] == "pending", doc
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, 130), err
    assert not _connects(port)
    logs = "".join(p.read_text() for p in (state / "logs").glob("*.jsonl"))
    assert "signal endpoint listening on http://127.0.0.1:" in logs and "proc-1" in logs
    assert TOKEN not in logs and TOKEN not in out and TOKEN not in err


def _connects(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False
