"""The engine's log, newest at the bottom, filtered by level."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from rich.text import Text
from textual.widgets import RichLog

from engine.facade import LogLine
from tui import format as fmt
from tui.widgets.tables import component_style

LEVELS = ("ALL", "INFO", "WARNING", "ERROR")
"""The filter cycle; each level shows lines at that level and above."""
LOG_LINES_KEPT = 500


def level_number(level: str) -> int:
    """The stdlib number of a level name (unknown names count as INFO)."""
    number = logging.getLevelName(level.upper())
    return number if isinstance(number, int) else logging.INFO


def new_lines(old: Sequence[LogLine], new: Sequence[LogLine]) -> Sequence[LogLine] | None:
    """The lines of ``new`` that follow ``old`` (a ring that grew or scrolled), or None if unrelated."""
    if not old:
        return new
    for shift in range(len(old)):
        overlap = len(old) - shift
        if overlap <= len(new) and old[shift] == new[0] and tuple(old[shift:]) == tuple(new[:overlap]):
            return new[overlap:]
    return None


class LogView(RichLog):
    """Engine log lines; :meth:`show` appends only what is new, :meth:`cycle_level` re-filters."""

    COMPONENT_CLASSES = {"log--time", "log--debug", "log--info", "log--warning", "log--error"}

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, max_lines=LOG_LINES_KEPT, min_width=20, wrap=True, markup=False,
                         highlight=False, auto_scroll=True)
        self.level = "ALL"
        """The current filter."""
        self._lines: tuple[LogLine, ...] = ()

    def _visible(self, line: LogLine) -> bool:
        return self.level == "ALL" or level_number(line.level) >= level_number(self.level)

    def _format(self, line: LogLine) -> Text:
        number = level_number(line.level)
        tone = ("error" if number >= logging.ERROR else "warning" if number >= logging.WARNING
                else "info" if number >= logging.INFO else "debug")
        return Text.assemble(
            (fmt.hms(line.time_ms), component_style(self, "log--time")),
            " ",
            (f"{line.level:<7}", component_style(self, f"log--{tone}")),
            " ",
            line.message,
        )

    def show(self, lines: tuple[LogLine, ...]) -> None:
        """Show the snapshot's log (newest last); appends only the lines not shown yet."""
        if lines is self._lines or lines == self._lines:
            return
        added = new_lines(self._lines, lines)
        self._lines = lines
        if added is None:
            self._rewrite()
            return
        for line in added:
            if self._visible(line):
                self.write(self._format(line))

    def cycle_level(self) -> str:
        """Move to the next filter level and re-render; returns the new level."""
        self.level = LEVELS[(LEVELS.index(self.level) + 1) % len(LEVELS)]
        self._rewrite()
        return self.level

    def _rewrite(self) -> None:
        self.clear()
        for line in self._lines:
            if self._visible(line):
                self.write(self._format(line))
