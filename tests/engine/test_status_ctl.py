"""``perpdeck ctl status`` against a running headless instance: the guard's figures come back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIGURES = {
    # note 002
    "position_count", "total_unrealized_pnl", "daily_trades", "daily_pnl",
    # guard state
    "positions_opened_today", "max_positions_per_day", "consecutive_losses", "max_consecutive_losses",
    "disabled_strategies", "guard", "timers",
}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERPDECK_", "BINANCE_"))}
    return {**env, "PYTHONPATH": str(REPO)}


def _ctl_status(state: Path) -> tuple[int, dict | str]:
    r = subprocess.run([sys.executable, "-m", "engine.cli", "--state-dir", str(state), "ctl", "status"],
                       env=_env(), capture_output=True, text=True, timeout=120)
    return r.returncode, (json.loads(r.stdout) if r.stdout.strip().startswith("{") else r.stdout + r.stderr)


def test_ctl_status_prints_the_guard_figures(tmp_path):
    from engine.config import RiskSettings
    from engine.control import socket_path

    state = tmp_path / "state"
    # Slow enough that the run is still going when asked; the default config otherwise.
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "--no-ui", "--speed", "600", "--state-dir",
                             str(state)], cwd=tmp_path, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        sock = socket_path(state)
        deadline = time.monotonic() + 60
        while not sock.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)  # waiting for the instance to come up
        assert sock.exists(), proc.communicate(timeout=5)
        rc, reply = _ctl_status(state)
        assert rc == 0 and isinstance(reply, dict), reply
        doc = reply["status"]
        assert FIGURES <= set(doc)
        risk = RiskSettings()  # the instance runs on the defaults
        assert doc["max_positions_per_day"] == risk.max_positions_per_day
        assert doc["max_consecutive_losses"] == risk.max_consecutive_losses
        assert isinstance(doc["positions_opened_today"], int) and isinstance(doc["consecutive_losses"], int)
        assert isinstance(doc["disabled_strategies"], list)
        assert {"halted_by", "halt_reason", "shock_until_ms", "strategy_net_pnl"} <= set(doc["guard"])
        assert len(doc["timers"]) <= doc["position_count"]
        for t in doc["timers"]:
            assert {"symbol", "side", "deadline_ms", "break_even_reached", "trigger_price"} <= set(t)
        for p in doc["positions"]:
            assert {"tp1_price", "tp1_qty", "tp1_done", "stop_kind"} <= set(p)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
