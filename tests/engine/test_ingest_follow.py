"""The followed JSON-lines file: growth, half-written lines, bad lines (logged with their number),
truncation, rotation, and where following starts — against a running session."""

from __future__ import annotations

import json
import logging
import os

from tests.engine.ingest_support import running_session, wait_for


def line(kind: int, mid: str, symbol: str = "BTC") -> str:
    return json.dumps({"type": kind, "id": mid, "symbol": symbol}) + "\n"


def append(path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text)


def ids(s) -> list[str]:
    return [f.message_id for f in s.facts if f.source == "file"]


async def test_follows_growth_skips_bad_lines_with_their_number_and_waits_for_whole_lines(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    path = tmp_path / "signals.jsonl"
    path.write_text(line(113, "old-1") + line(110, "old-2"))
    async with running_session(tmp_path, signals={"follow_file": str(path)}) as s:  # from the end (default)
        follower = s.ingest.follower
        append(path, line(113, "f-1") + "not json\n\n" + '{"type": 113, "id": "f-2"}\n' + line(999, "f-3"))
        await wait_for(lambda: follower.bad_lines == 3 and ids(s) == ["f-1"], what="lines read")
        append(path, '{"type": 110, "id": "a-1", ')  # half a line: not read yet
        polls = follower.polls
        await wait_for(lambda: follower.polls >= polls + 2, what="two more looks at the file")
        assert follower.lines == 5 and ids(s) == ["f-1"] and follower.bad_lines == 3
        append(path, '"symbol": "BTC"}\n')
        await wait_for(lambda: ids(s) == ["f-1", "a-1"], what="the completed line")
        assert s.facts[-1].outcome["status"] == "confluence"
    assert "old-1" not in ids(s)
    assert f"signal file {path} line 4 skipped: not valid JSON" in caplog.text  # lines 1-2 existed before
    assert f"signal file {path} line 6 skipped: symbol: missing" in caplog.text
    assert f"signal file {path} line 7 skipped: message_type:" in caplog.text
    assert "following signal file" in caplog.text and "from line 3" in caplog.text


async def test_reads_from_the_start_and_follows_truncation_and_rotation(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    path = tmp_path / "signals.jsonl"
    path.write_text(line(113, "s-1") + line(113, "s-2"))
    async with running_session(tmp_path, signals={"follow_file": str(path), "follow_from_start": True}) as s:
        follower = s.ingest.follower
        await wait_for(lambda: ids(s) == ["s-1", "s-2"], what="existing lines")
        path.write_text(line(110, "t-1"))  # truncated and rewritten (shorter than what was read)
        await wait_for(lambda: ids(s)[-1:] == ["t-1"], what="after truncation")
        os.rename(path, tmp_path / "signals.jsonl.1")  # rotated: the old file gets its last line first
        append(tmp_path / "signals.jsonl.1", line(110, "r-old"))
        path.write_text(line(112, "r-new") + "{bad\n")
        await wait_for(lambda: ids(s)[-2:] == ["r-old", "r-new"] and follower.bad_lines == 1, what="after rotation")
        assert follower.reopened == 2
    assert f"signal file {path} line 2 skipped" in caplog.text  # numbered in the new file
    assert "was truncated" in caplog.text and "was replaced (rotated)" in caplog.text


async def test_waits_for_a_file_that_does_not_exist_yet(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    path = tmp_path / "later.jsonl"
    async with running_session(tmp_path, signals={"follow_file": str(path)}) as s:
        await wait_for(lambda: "does not exist yet" in caplog.text, what="waiting logged")
        path.write_text(line(113, "late-1"))  # created after start: read from its first line
        await wait_for(lambda: ids(s) == ["late-1"], what="new file read")
        assert ids(s) == ["late-1"]
