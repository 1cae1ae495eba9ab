"""Atomic file writes for checkpoints and policy files."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["atomic_write_bytes", "atomic_write_json", "read_json"]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temp file in ``path``'s directory, fsync it, then ``os.replace`` it over
    ``path``: a reader (or a crash) sees the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, ValueError):
        return None


POLICY_FILE = "rl-sac.npz"
"""The promoted policy's file name in the checkpoint directory."""


def promoted_path(settings: Any) -> Path:
    """``<checkpoint_dir>/rl-sac.npz`` (``checkpoint_dir`` empty = ``<state_dir>/rl``)."""
    rl = settings.rl
    base = Path(rl.checkpoint_dir).expanduser() if rl.checkpoint_dir else Path(settings.state_dir) / "rl"
    return base / POLICY_FILE


def policy_file(settings: Any, name: str = "rl-sac") -> Path:
    """The policy file the ``rl-sac`` strategy would load: ``[strategies.rl-sac] model``, else the
    promoted one. Numpy-free, so a start without a policy does not import numpy to find out."""
    raw = settings.strategies.get(name, {}) or {}
    return Path(raw["model"]).expanduser() if raw.get("model") else promoted_path(settings)
