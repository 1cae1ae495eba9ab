"""A queued snapshot is replaced by a newer one, so a busy screen paints only the latest."""

from __future__ import annotations

from textual.message import Message

from tui.fake import FakeFacade
from tui.messages import SnapshotTaken


def test_a_snapshot_message_is_replaced_by_a_newer_one_only():
    older, newer = SnapshotTaken(FakeFacade().snapshot()), SnapshotTaken(FakeFacade().snapshot())
    assert older.can_replace(newer)
    assert not older.can_replace(Message())
    assert not SnapshotTaken.bubble
