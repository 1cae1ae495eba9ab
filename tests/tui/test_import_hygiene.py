"""The console reads snapshots and sends commands: it never loads the engine's internals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("engine.state", "engine.orders", "engine.guard", "sqlite3", "aiosqlite")


def test_console_modules_do_not_import_engine_internals():
    code = (
        "import sys, tui.app, tui.fake\n"
        f"bad = sorted(m for m in sys.modules if m.startswith({FORBIDDEN!r}))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_no_console_source_names_engine_internals():
    for path in (ROOT / "tui").rglob("*.py"):
        text = path.read_text()
        for name in FORBIDDEN[:3]:
            assert f"import {name}" not in text and f"from {name}" not in text, (path, name)
