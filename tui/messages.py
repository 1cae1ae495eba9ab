"""Messages the console posts to itself. Past-tense facts carrying their payload."""

from __future__ import annotations

from textual.message import Message

from engine.facade import EngineSnapshot


class SnapshotTaken(Message, bubble=False):
    """The app read a fresh engine snapshot; the screen on top should show it.

    Only the newest one matters: a queued snapshot is replaced by a later one, so a busy screen
    paints the latest state once instead of catching up on stale ones.
    """

    def __init__(self, snapshot: EngineSnapshot) -> None:
        super().__init__()
        self.snapshot = snapshot
        """The snapshot to show."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SnapshotTaken)
