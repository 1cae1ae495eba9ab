"""``perpdeck ctl status`` against a running headless instance: the guard's figures come back."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from tests.engine.headless import env, start_headless

FIGURES = {
    # note 002
    "position_count", "total_unrealized_pnl", "daily_trades", "daily_pnl",
    # guard state
    "positions_opened_today", "max_positions_per_day", "consecutive_losses", "max_consecutive_losses",
    "disabled_strategies", "guard", "timers",
}


def _ctl_status(state: Path) -> tuple[int, dict | str]:
    r = subprocess.run([sys.executable, "-m", "engine.cli", "--state-dir", str(state), "ctl", "status"],
                       env=env(), capture_output=True, text=True, timeout=120)
    return r.returncode, (json.loads(r.stdout) if r.stdout.strip().startswith("{") else r.stdout + r.stderr)


def test_ctl_status_prints_the_guard_figures(tmp_path):
    from engine.config import RiskSettings

    state = tmp_path / "state"
    proc = start_headless(tmp_path, state)  # the default config
    try:
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
