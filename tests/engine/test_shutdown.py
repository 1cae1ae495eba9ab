"""Stopping a headless instance: a second Ctrl-C forces the exit at once, and the database it
leaves is whole (SQLite's integrity check passes and the run is recorded)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERPDECK_", "BINANCE_"))}
    return {**env, "PYTHONPATH": str(REPO)}


def test_a_second_ctrl_c_forces_the_exit_and_the_database_stays_whole(tmp_path):
    from engine.control import socket_path

    state = tmp_path / "state"
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "--no-ui", "--speed", "600", "--state-dir",
                             str(state)], cwd=tmp_path, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        sock = socket_path(state)
        deadline = time.monotonic() + 60
        while not sock.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)  # waiting for the instance to come up (trading, journal flushing)
        assert sock.exists(), proc.communicate(timeout=5)
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGINT)  # impatient: force it
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode in (0, 130), err[-2000:]
    assert "Traceback" not in err, err[-2000:]
    dbs = list(state.glob("*.db")) + list(state.glob("*.sqlite"))
    assert dbs, list(state.iterdir())
    with sqlite3.connect(dbs[0]) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
