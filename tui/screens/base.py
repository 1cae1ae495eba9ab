"""What the full-screen views share: the header, the footer, the compact layout, live snapshots."""

from __future__ import annotations

from textual import events
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer

from engine.facade import EngineSnapshot
from tui.messages import SnapshotTaken
from tui.widgets.header import HeaderBar

COMPACT_BELOW_WIDTH = 116
"""Narrower terminals get the compact layout (fewer columns); the wide orders table needs ~114."""
COMPACT_BELOW_HEIGHT = 32
"""Shorter terminals get the compact layout (slim panes, timers folded into positions)."""
BACK = Binding("escape", "app.show_dashboard", "Back", key_display="esc")
"""The views' way back to the dashboard."""


def changed(old: EngineSnapshot | None, new: EngineSnapshot, *fields: str) -> bool:
    """Whether any of the snapshot ``fields`` differs (always, when nothing was shown yet)."""
    return old is None or any(getattr(old, f) != getattr(new, f) for f in fields)


class DeckScreen(Screen):
    """A live view: the app sends it snapshots while it is on top; it paints only what changed.

    Subclasses compose a ``HeaderBar`` and a ``Footer`` around their panes and implement
    :meth:`paint`. The compact layout (class ``-compact``, else ``-wide``) follows the terminal size.
    """

    LIVE = True
    """The app sends this screen snapshots while it is on top."""
    COMPACT_HIDES_PALETTE = True
    """In the compact layout the footer leaves out ``ctrl+p`` (80 cells hold every key; it still works)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.compact = False
        """Whether the compact layout is in use (set from the terminal size)."""
        self.shown: EngineSnapshot | None = None
        """The snapshot on screen."""

    def on_mount(self) -> None:
        self._set_compact(self.app.size.width, self.app.size.height)
        if self.shown is None and getattr(self.app, "snapshot", None) is not None:
            self.show(self.app.snapshot)  # paint at once from the last read; the next one follows

    def on_screen_resume(self) -> None:
        self.app.call_later(self.app.refresh_snapshot, self)

    def on_resize(self, event: events.Resize) -> None:
        if self._set_compact(event.size.width, event.size.height) and self.shown is not None:
            self.show(self.shown, force=True)

    def _set_compact(self, width: int, height: int) -> bool:
        compact = width < COMPACT_BELOW_WIDTH or height < COMPACT_BELOW_HEIGHT
        changed_ = compact != self.compact or not (self.has_class("-compact") or self.has_class("-wide"))
        self.compact = compact
        self.set_class(compact, "-compact")
        self.set_class(not compact, "-wide")
        footer = self.query_one(Footer)
        footer.compact = compact
        if self.COMPACT_HIDES_PALETTE:
            footer.show_command_palette = not compact
        return changed_

    def on_snapshot_taken(self, message: SnapshotTaken) -> None:
        self.show(message.snapshot)

    def show(self, snap: EngineSnapshot, *, force: bool = False) -> None:
        """Paint ``snap``; parts whose slice of the snapshot is unchanged are left alone."""
        old = None if force else self.shown
        self.query_one(HeaderBar).show(snap, self.app.wall_clock_ms(), self.compact)
        self.paint(old, snap)
        self.shown = snap

    def paint(self, old: EngineSnapshot | None, snap: EngineSnapshot) -> None:
        """Paint what differs between ``old`` (None: everything) and ``snap``."""
        raise NotImplementedError
