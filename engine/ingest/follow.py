"""Follow a JSON-lines file of external signals as it grows (one signal object per line).

* Starts at the end of the file (only lines added later count) or at its first line
  (``from_start``); a file that does not exist yet is waited for.
* Only complete lines (ending in a newline) are read; a half-written last line waits for the rest.
* Truncation (the file got shorter: ``copytruncate``, ``> file``) restarts from its first line;
  rotation (the path now names another file: ``mv`` + re-create) finishes the old file, then reads
  the new one from its first line.
* A bad line (not JSON, not a signal object, a bad field) is logged with the file's name and the
  line number and skipped; blank lines are skipped silently. Fields the engine itself refuses are
  logged the same way when its answer comes.

The file is polled every ``poll_interval_s`` (no platform-specific watcher, no new dependency).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import BinaryIO

from engine.ingest.envelope import EnvelopeError, parse_envelope
from engine.ingest.gateway import GatewayClosed, SignalGateway

log = logging.getLogger("engine.ingest.follow")

MAX_LINE_BYTES = 64 * 1024


class SignalFileFollower:
    def __init__(self, path: Path, gateway: SignalGateway, *, from_start: bool = False,
                 poll_interval_s: float = 0.25, source: str = "file") -> None:
        self.path = Path(path)
        self.gateway = gateway
        self.from_start = from_start
        self.poll_interval_s = poll_interval_s
        self.source = source
        self.lines = 0  # complete lines read (blank ones included)
        self.submitted = 0
        self.bad_lines = 0
        self.rejected = 0  # refused by the engine (a field the strategy would not take)
        self.reopened = 0  # truncations and rotations followed
        self.polls = 0  # looks at the file so far
        self._task: asyncio.Task | None = None
        self._fh: BinaryIO | None = None
        self._ident: tuple[int, int] | None = None
        self._pos = 0
        self._lineno = 0
        self._buf = b""
        self._first_open = True
        self.progress = asyncio.Event()  # set after every poll that read something (for watchers)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="signal-file-follower")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._close()

    # -- the loop ---------------------------------------------------------------------------------

    async def _run(self) -> None:
        waiting_logged = False
        while True:
            try:
                read = self.poll()
                if read:
                    self.progress.set()
                if self._fh is None and not waiting_logged:
                    log.info("signal file %s does not exist yet: waiting for it", self.path)
                    waiting_logged = True
                elif self._fh is not None:
                    waiting_logged = False
            except Exception:  # noqa: BLE001 - a file problem must not end the session
                log.exception("signal file %s: read failed; retrying", self.path)
            await asyncio.sleep(self.poll_interval_s)

    def poll(self) -> int:
        """Read whatever is new; returns the number of complete lines read."""
        self.polls += 1
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._first_open = False  # nothing was there at the start: whatever comes is new
            return self._finish_old() if self._fh is not None else 0
        n = 0
        ident = (st.st_dev, st.st_ino)
        if self._fh is not None and ident != self._ident:
            n += self._finish_old()
            self.reopened += 1
            log.info("signal file %s was replaced (rotated): reading the new file from its first line", self.path)
        if self._fh is None:
            self._open(ident)
        elif st.st_size < self._pos:
            self.reopened += 1
            log.info("signal file %s was truncated: reading it again from its first line", self.path)
            self._rewind()
        return n + self._read_lines()

    def _open(self, ident: tuple[int, int]) -> None:
        self._fh = open(self.path, "rb")  # noqa: SIM115 - held open while following
        self._ident = ident
        self._rewind()
        if self._first_open and not self.from_start:
            # skip what is there, counting its lines so later line numbers are the file's own
            # (a half-written last line stays in the buffer: it counts once its newline comes)
            while chunk := self._fh.read(1 << 20):
                self._pos += len(chunk)
                newlines = chunk.count(b"\n")
                if newlines:
                    self._lineno += newlines
                    self._buf = chunk[chunk.rfind(b"\n") + 1:]
                else:
                    self._buf += chunk
            log.info("following signal file %s from line %d (earlier lines skipped)", self.path, self._lineno + 1)
        else:
            log.info("following signal file %s from its first line", self.path)
        self._first_open = False

    def _rewind(self) -> None:
        assert self._fh is not None
        self._fh.seek(0)
        self._pos = 0
        self._lineno = 0
        self._buf = b""

    def _finish_old(self) -> int:
        n = self._read_lines()
        self._close()
        return n

    def _close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
            self._ident = None

    def _read_lines(self) -> int:
        fh = self._fh
        if fh is None:
            return 0
        n = 0
        while chunk := fh.read(1 << 16):
            self._pos += len(chunk)
            self._buf += chunk
            *lines, self._buf = self._buf.split(b"\n")
            for raw in lines:
                self._lineno += 1
                n += 1
                self._line(raw, self._lineno)
            if len(self._buf) > MAX_LINE_BYTES:  # a runaway line: skip it up to its newline
                self._lineno += 1
                self._bad(self._lineno, f"longer than {MAX_LINE_BYTES} bytes")
                self._buf = b""
                self._skip_rest_of_line()
        self.lines += n
        return n

    def _skip_rest_of_line(self) -> None:
        fh = self._fh
        assert fh is not None
        while chunk := fh.read(1 << 16):
            self._pos += len(chunk)
            i = chunk.find(b"\n")
            if i >= 0:
                self._buf = chunk[i + 1:]
                return

    # -- one line ---------------------------------------------------------------------------------

    def _bad(self, lineno: int, why: str) -> None:
        self.bad_lines += 1
        log.warning("signal file %s line %d skipped: %s", self.path, lineno, why)

    def _line(self, raw: bytes, lineno: int) -> None:
        text = raw.strip()
        if not text:
            return
        try:
            obj = json.loads(text.decode("utf-8"))
        except UnicodeDecodeError:
            return self._bad(lineno, "not UTF-8 text")
        except json.JSONDecodeError as exc:
            return self._bad(lineno, f"not valid JSON ({exc.msg} at column {exc.colno})")
        try:
            cmd = parse_envelope(obj, self.source)
        except EnvelopeError as exc:
            return self._bad(lineno, str(exc))
        try:
            fut = self.gateway.send_nowait(cmd)
        except GatewayClosed:
            return
        self.submitted += 1
        fut.add_done_callback(lambda f, n=lineno: self._answered(f, n))

    def _answered(self, fut: asyncio.Future, lineno: int) -> None:
        if fut.cancelled() or fut.exception() is not None:
            return
        fact = fut.result()
        if fact.error:
            self.rejected += 1
            log.warning("signal file %s line %d refused by the engine: %s", self.path, lineno, fact.error)
