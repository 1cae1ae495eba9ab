"""Panes update cell by cell: unchanged rows stay, new ones append, vanished ones go."""

from __future__ import annotations

from textual.app import App, ComposeResult

from engine.facade import LogLine
from tui.widgets.log import new_lines
from tui.widgets.tables import Cell, Col, DeckTable


class Two(DeckTable):
    COLUMNS = (Col("a", "A"), Col("b", "B", right=True, compact=False))


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        yield Two(id="t")


def rows(*pairs: tuple[str, str]):
    return [(key, {"a": Cell(key), "b": Cell(value)}) for key, value in pairs]


async def test_sync_updates_changed_cells_and_appends_new_rows():
    app = TableApp()
    async with app.run_test() as pilot:
        table = app.query_one(Two)
        table.sync(rows(("x", "1"), ("y", "2")))
        updates: list[tuple] = []
        original = table.update_cell
        table.update_cell = lambda *a, **k: (updates.append(a[:2]), original(*a, **k))

        appended = table.sync(rows(("y", "3"), ("z", "4")))
        await pilot.pause()

        assert appended
        assert [str(k.value) for k in table.rows] == ["y", "z"]
        assert updates == [("y", "b")]
        assert str(table.get_cell("y", "b")) == "3"


async def test_sync_rebuilds_when_the_order_changes_and_drops_columns_when_compact():
    app = TableApp()
    async with app.run_test():
        table = app.query_one(Two)
        table.sync(rows(("x", "1"), ("y", "2")))
        table.sync(rows(("y", "2"), ("x", "1")))
        assert [str(k.value) for k in table.rows] == ["y", "x"]
        table.sync(rows(("y", "2")), compact=True)
        assert [str(c.value) for c in table.columns] == ["a"]
        assert table.row_count == 1


def line(i: int) -> LogLine:
    return LogLine(i, "INFO", f"line {i}")


def test_new_lines_of_a_growing_or_scrolling_ring():
    old = tuple(line(i) for i in range(5))
    assert new_lines(old, old) == ()
    assert new_lines(old, old + (line(5),)) == (line(5),)
    assert new_lines(old, old[2:] + (line(5), line(6))) == (line(5), line(6))
    assert new_lines((), old) == old
    assert new_lines(old, (line(9),)) is None
