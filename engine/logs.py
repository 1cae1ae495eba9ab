"""Logging: human-readable lines on the console, JSON lines in a file, secrets never written.

A :class:`RedactFilter` on every handler replaces any configured secret (API key, secret, listen
key…) that a message might contain with ``***`` before anything is formatted or written.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Iterable

HUMAN_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class RedactFilter(logging.Filter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 4]

    def add(self, secret: str) -> None:
        if secret and len(secret) >= 4 and secret not in self.secrets:
            self.secrets.append(secret)

    def redact(self, text: str) -> str:
        for s in self.secrets:
            if s in text:
                text = text.replace(s, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            msg = self.redact(record.getMessage())
            record.msg, record.args = msg, None
            if record.exc_info and record.exc_info[1] is not None:
                record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
                record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    def __init__(self, banner: str | None = None) -> None:
        super().__init__()
        self.banner = banner

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts_ms": int(record.created * 1000),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if self.banner:
            doc["mode"] = self.banner
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exc"] = record.exc_text
        return json.dumps(doc, ensure_ascii=False)


def setup_logging(level: str, log_file: Path | None, secrets: Iterable[str] = (), console: bool = True,
                  console_stream=None, banner: str | None = None) -> RedactFilter:
    """Configure the root logger; returns the redaction filter so more secrets can be added.

    ``banner`` (e.g. "MAINNET") is put on every console line and every JSON record."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    root.setLevel(logging.DEBUG)
    redact = RedactFilter(secrets)
    if console:
        ch = logging.StreamHandler(console_stream or sys.stderr)
        ch.setLevel(getattr(logging, level.upper(), logging.INFO))
        fmt_ = HUMAN_FORMAT if not banner else HUMAN_FORMAT.replace("%(levelname)", f"[{banner}] %(levelname)")
        ch.setFormatter(logging.Formatter(fmt_, "%H:%M:%S"))
        ch.addFilter(redact)
        root.addHandler(ch)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(log_file, encoding="utf-8")
        fh.setLevel(logging.DEBUG if level.upper() == "DEBUG" else logging.INFO)
        fh.setFormatter(JsonFormatter(banner))
        fh.addFilter(redact)
        root.addHandler(fh)
    return redact
