"""Panes update cell by cell: unchanged rows stay, new ones append, vanished ones go."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.geometry import Region

from engine.facade import LogLine
from tui.widgets.log import new_lines
from tui.widgets.tables import Cell, Col, DeckTable


class Two(DeckTable):
    COLUMNS = (Col("a", "A"), Col("b", "B", right=True, compact=False))


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        yield Two(id="t")


class PaneApp(App[None]):
    """A table whose height is its own (as in every console pane), with an empty text."""

    CSS = "Two { height: 8; }"

    def compose(self) -> ComposeResult:
        yield Two(empty="nothing listed", id="t")


def rows(*pairs: tuple[str, str]):
    return [(key, {"a": Cell(key), "b": Cell(value)}) for key, value in pairs]


def texts(table: DeckTable) -> list[str]:
    """What the table shows, line by line (header first), without trailing blanks."""
    return [table.render_line(y).text.rstrip() for y in range(table.row_count + 1)]


async def test_sync_renders_only_changed_rows_and_appends_new_ones():
    app = TableApp()
    async with app.run_test() as pilot:
        table = app.query_one(Two)
        table.sync(rows(("x", "1"), ("y", "2"), ("w", "5")))
        await pilot.pause()
        texts(table)
        kept_strip = table._row_strip("w")

        appended = table.sync(rows(("y", "3"), ("w", "5"), ("z", "4")))
        await pilot.pause()

        assert appended
        assert table.row_keys == ("y", "w", "z")
        assert table.cell("y", "b") == Cell("3")
        assert texts(table) == [" A  B", " y  3", " w  5", " z  4"]
        assert table._row_strip("w") is kept_strip  # unchanged: not rendered again


async def test_columns_grow_to_fit_and_right_aligned_cells_line_up():
    app = TableApp()
    async with app.run_test() as pilot:
        table = app.query_one(Two)
        table.sync([("x", {"a": Cell("long name"), "b": Cell("7", right=True)}),
                    ("y", {"a": Cell("s"), "b": Cell("1,234", right=True)})])
        await pilot.pause()
        assert texts(table) == [" A              B", " long name      7", " s          1,234"]
        assert table.virtual_size.height == 3  # header + two rows


async def test_sync_rebuilds_when_the_order_changes_and_drops_columns_when_compact():
    app = TableApp()
    async with app.run_test():
        table = app.query_one(Two)
        table.sync(rows(("x", "1"), ("y", "2")))
        assert not table.sync(rows(("y", "2"), ("x", "1")))
        assert table.row_keys == ("y", "x")
        table.sync(rows(("y", "2")), compact=True)
        assert [c.key for c in table.shown_columns] == ["a"]
        assert table.row_count == 1
        assert texts(table) == [" A", " y"]


async def test_cursor_keys_move_the_highlighted_row_within_bounds():
    app = TableApp()
    async with app.run_test(size=(40, 4)) as pilot:
        table = app.query_one(Two)
        table.sync(rows(*((str(i), str(i)) for i in range(10))))
        table.focus()
        await pilot.press("down", "down")
        assert table.cursor_row == 2
        await pilot.press("end")
        assert table.cursor_row == 9
        assert table.scroll_offset.y > 0  # the last row was scrolled into view
        await pilot.press("down", "home", "up")
        assert table.cursor_row == 0
        table.sync(rows(("a", "1")))
        assert table.cursor_row == 0


async def test_rows_coming_and_going_never_lay_out_the_screen():
    app = PaneApp()
    async with app.run_test(size=(40, 12)) as pilot:
        table = app.query_one(Two)
        table.sync(rows(("x", "1")))
        await pilot.pause()
        layouts: list[object] = []
        refresh_layout = app.screen._refresh_layout
        app.screen._refresh_layout = lambda *a, **kw: (layouts.append(a), refresh_layout(*a, **kw))[1]

        table.sync(rows(("x", "1"), ("y", "2"), ("z", "3")))
        await pilot.pause()
        assert texts(table) == [" A  B", " x  1", " y  2", " z  3"]
        assert table.virtual_size.height == 4
        table.sync(rows(("z", "3")))
        await pilot.pause()
        assert texts(table) == [" A  B", " z  3"]

        assert layouts == []
        assert table.region.height == 8


async def test_an_empty_table_shows_its_empty_text_instead_of_the_header():
    app = PaneApp()
    async with app.run_test(size=(40, 12)) as pilot:
        table = app.query_one(Two)
        table.sync([])
        await pilot.pause()
        assert table.render_line(0).text.rstrip() == " nothing listed"
        assert table.render_line(1).text.strip() == ""
        table.sync(rows(("x", "1")))
        await pilot.pause()
        assert texts(table) == [" A  B", " x  1"]
        table.sync([])
        await pilot.pause()
        assert table.render_line(0).text.rstrip() == " nothing listed"


async def test_a_changed_cell_repaints_only_its_row():
    app = PaneApp()
    async with app.run_test(size=(40, 12)) as pilot:
        table = app.query_one(Two)
        table.sync(rows(("x", "1"), ("y", "2"), ("z", "3")))
        await pilot.pause()
        repainted: list[tuple[Region, ...]] = []
        refresh = table.refresh
        table.refresh = lambda *regions, **kw: (repainted.append(regions), refresh(*regions, **kw))[1]

        table.sync(rows(("x", "1"), ("y", "5"), ("z", "3")))

        assert [[r.y for r in regions] for regions in repainted] == [[2]]  # line 2: row y (under the header)
        await pilot.pause()
        assert texts(table) == [" A  B", " x  1", " y  5", " z  3"]


def line(i: int) -> LogLine:
    return LogLine(i, "INFO", f"line {i}")


def test_new_lines_of_a_growing_or_scrolling_ring():
    old = tuple(line(i) for i in range(5))
    assert new_lines(old, old) == ()
    assert new_lines(old, old + (line(5),)) == (line(5),)
    assert new_lines(old, old[2:] + (line(5), line(6))) == (line(5), line(6))
    assert new_lines((), old) == old
    assert new_lines(old, (line(9),)) is None


class MutedApp(App[None]):
    """The console's stylesheet: headings and the muted tone are ``$text-muted`` (a colour with alpha)."""

    CSS_PATH = "../../tui/app.tcss"

    def compose(self) -> ComposeResult:
        yield Two(id="t")


async def test_headings_and_muted_cells_are_grey_not_white():
    # $text-muted has alpha: only blended over the background is it grey. A partial style drops the
    # alpha and the text came out white (the foreground colour at full strength).
    app = MutedApp()
    async with app.run_test() as pilot:
        table = app.query_one(Two)
        table.sync([("k", {"a": Cell("—", "muted"), "b": Cell("x")})])
        app.set_focus(None)  # no cursor row
        await pilot.pause()
        grey = table.get_component_rich_style("deck--muted").color  # blended over the background
        unblended = table.get_component_rich_style("deck--muted", partial=True).color
        assert grey != unblended  # the premise: blending changes the colour
        header = [s for s in table.render_line(0) if s.text.strip() == "A"][0]
        cell = [s for s in table.render_line(1) if s.text.strip() == "—"][0]
        assert header.style.color == table.get_component_rich_style("deck--header").color
        assert header.style.bold
        assert cell.style.color == grey
