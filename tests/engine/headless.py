"""A headless perpdeck instance as a real subprocess (sim mode, default config), for tests that
talk to it from outside: the ctl socket, signals."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def env() -> dict[str, str]:
    """The test process's environment without any PERPDECK_/BINANCE_ setting, the repo importable."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PERPDECK_", "BINANCE_"))}
    return {**base, "PYTHONPATH": str(REPO)}


def start_headless(cwd: Path, state: Path, speed: str = "600") -> subprocess.Popen:
    """``perpdeck --no-ui`` replaying slowly enough to still be running when asked; returns once its
    ctl socket is up (the instance is trading and flushing its journal)."""
    from engine.control import socket_path

    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "--no-ui", "--speed", speed, "--state-dir",
                             str(state)], cwd=cwd, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sock = socket_path(state)
    deadline = time.monotonic() + 60
    while not sock.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)  # waiting for the instance to come up
    if not sock.exists():
        proc.kill()
        raise AssertionError(f"the instance did not come up: {proc.communicate(timeout=5)}")
    return proc
