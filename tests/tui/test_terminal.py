"""The real `perpdeck` console in a pseudo-terminal (tmux): keys pressed, the screen read back."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(TMUX is None, reason="tmux is needed to run the console in a pseudo-terminal")


def screen(session: str) -> str:
    return subprocess.run([TMUX, "capture-pane", "-t", session, "-p"], capture_output=True, text=True).stdout


def wait_for(session: str, text: str, timeout_s: float = 60.0) -> str:
    end = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < end:
        last = screen(session)
        if text in last:
            return last
        time.sleep(0.1)  # polling the terminal for the console to draw, not waiting for time to pass
    raise AssertionError(f"{text!r} never appeared; screen was:\n{last}")


def test_console_in_a_terminal_halts_resumes_and_quits(tmp_path):
    session = f"pd-{uuid.uuid4().hex[:8]}"
    state = tmp_path / "state"
    env = " ".join(f"{k}=" for k in os.environ if k.startswith(("PERPDECK_", "BINANCE_")))
    cmd = (f"cd {tmp_path} && env {env} PYTHONPATH={REPO} {sys.executable} -m engine.cli --in-process "
           f"--speed 500 --state-dir {state}; echo EXITED $?; sleep 30")
    subprocess.run([TMUX, "new-session", "-d", "-s", session, "-x", "120", "-y", "40", cmd], check=True)
    try:
        first = wait_for(session, "ACTIVE", timeout_s=120)
        assert "SIM" in first and "Positions" in first and "Signals" in first and "Orders" in first
        subprocess.run([TMUX, "send-keys", "-t", session, "h"], check=True)
        assert "HALTED" in wait_for(session, "HALTED")
        subprocess.run([TMUX, "send-keys", "-t", session, "r"], check=True)
        wait_for(session, "ACTIVE")
        subprocess.run([TMUX, "send-keys", "-t", session, "?"], check=True)
        helptext = wait_for(session, "Flatten")
        assert "Halt" in helptext and "Resume" in helptext
        subprocess.run([TMUX, "send-keys", "-t", session, "?"], check=True)  # ? closes help again
        end = time.monotonic() + 30
        while "esc / ? / q" in screen(session) and time.monotonic() < end:
            time.sleep(0.1)
        subprocess.run([TMUX, "send-keys", "-t", session, "q"], check=True)
        end = time.monotonic() + 120
        while time.monotonic() < end:  # either the quit question (positions open) or the exit
            now = screen(session)
            if "EXITED" in now:
                break
            if "QUIT WITH OPEN POSITIONS" in now.upper():
                subprocess.run([TMUX, "send-keys", "-t", session, "y"], check=True)
                break
            time.sleep(0.1)
        out = wait_for(session, "EXITED", timeout_s=120)
        assert "EXITED 0" in out
        assert (state / "perpdeck.db").exists()
    finally:
        subprocess.run([TMUX, "kill-session", "-t", session], capture_output=True)
