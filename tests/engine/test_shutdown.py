"""Stopping a headless instance: a second Ctrl-C forces the exit at once, and the database it
leaves is whole (SQLite's integrity check passes and the run is recorded)."""

from __future__ import annotations

import signal
import sqlite3

from tests.engine.headless import start_headless


def test_a_second_ctrl_c_forces_the_exit_and_the_database_stays_whole(tmp_path):
    state = tmp_path / "state"
    proc = start_headless(tmp_path, state)
    try:
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
