"""The table every pane is built on: declared columns, keyed rows, rows rendered once.

A pane describes its rows as plain :class:`Cell` values and hands them to :meth:`DeckTable.sync`.
The table is a line-API scroll view: each row is turned into one cached :class:`Strip` when it
changes, and a repaint only crops cached strips, so a busy engine's refresh costs the console
very little. When the same rows stay listed, only the lines of rows that changed are repainted.
The panes give their tables a height of their own (``app.tcss``), never one taken from the rows,
so rows coming and going only scroll the table: the screen is not laid out again (only a
scrollbar appearing or going away needs that). With no rows, the table shows its empty text.
Colours come from component classes styled in ``app.tcss``; rows are read-only, with a row
cursor when focused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.geometry import Region, Size, Spacing
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget

TONES = ("gain", "loss", "muted", "long", "short", "accepted", "denied", "warn")
"""Cell tones; each is the component class ``deck--<tone>``."""
CELL_PADDING = 1
"""Blank cells either side of every column."""


@dataclass(frozen=True, slots=True)
class Col:
    """A column: its key, its heading, alignment, and which layouts show it."""

    key: str
    label: str
    right: bool = False
    wide: bool = True
    """Shown in the wide layout."""
    compact: bool = True
    """Shown in the compact layout."""
    cell: str = ""
    """The row cell it shows, when not the one named like the column."""


@dataclass(frozen=True, slots=True)
class Cell:
    """What one cell shows: text, an optional tone, alignment."""

    text: str
    tone: str | None = None
    right: bool = False


Row = tuple[str, dict[str, Cell]]
"""A row key and its cells by column key (cells for dropped columns are ignored)."""


def component_style(widget: Widget, name: str) -> Style:
    """A component class's own style (partial: it adds to the widget's) with its colour resolved.

    The theme's text colours (``$text-muted`` …) carry alpha. A partial style drops it — muted text
    would be drawn white — so the colour is taken from the full style, blended over the background.
    """
    partial = widget.get_component_rich_style(name, partial=True)
    if partial.color is None:
        return partial
    return partial + Style(color=widget.get_component_rich_style(name).color)


class DeckTable(ScrollView, can_focus=True):
    """A read-only, row-cursor table whose contents follow :meth:`sync`."""

    COMPONENT_CLASSES = {"deck--header", "deck--cursor", "deck--empty", *(f"deck--{tone}" for tone in TONES)}
    BINDINGS = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "edge(0)", "First", show=False),
        Binding("end", "edge(1)", "Last", show=False),
    ]
    COLUMNS: tuple[Col, ...] = ()
    """Every column; each layout shows those flagged for it."""

    def __init__(self, *, empty: str = "", id: str | None = None) -> None:
        super().__init__(id=id)
        self.empty_text = empty
        """Shown instead of the header while there are no rows."""
        self._shown: tuple[Col, ...] = ()
        self._widths: list[int] = []
        self._keys: list[str] = []
        self._cells: dict[str, tuple[Cell, ...]] = {}
        self._strips: dict[str, Strip] = {}
        self._header: Strip | None = None
        self._empty: Strip | None = None
        self.cursor_row = 0
        """Index of the highlighted row (shown while the table has focus)."""

    # -- contents -----------------------------------------------------------------------------

    @property
    def row_keys(self) -> tuple[str, ...]:
        """The rows' keys, top to bottom."""
        return tuple(self._keys)

    @property
    def row_count(self) -> int:
        """How many rows are listed."""
        return len(self._keys)

    @property
    def shown_columns(self) -> tuple[Col, ...]:
        """The columns of the current layout."""
        return self._shown

    def cell(self, row_key: str, column_key: str) -> Cell:
        """What the given row shows in the given (shown) column."""
        index = [c.key for c in self._shown].index(column_key)
        return self._cells[row_key][index]

    def columns_for(self, compact: bool) -> tuple[Col, ...]:
        """The columns shown in the given layout."""
        return tuple(c for c in self.COLUMNS if (c.compact if compact else c.wide))

    def sync(self, rows: Sequence[Row], *, compact: bool = False) -> bool:
        """Show ``rows`` (in order); returns True when rows were added at the end.

        Only rows whose cells changed are rendered again, and while the same rows are listed
        only their lines are repainted.
        """
        columns = self.columns_for(compact)
        new_columns = columns != self._shown
        if new_columns:
            self._shown = columns
            self._widths = [cell_len(c.label) for c in columns]
            self._cells, self._strips, self._header = {}, {}, None
        old_keys = self._keys
        new_cells = {key: tuple(cells.get(c.cell or c.key, Cell("")) for c in columns) for key, cells in rows}
        new_keys = list(new_cells)
        kept = [key for key in old_keys if key in new_cells]
        appended = len(new_keys) > len(kept) and new_keys[: len(kept)] == kept

        widths = self._widths
        grew = False
        changed_rows: list[int] = []
        for index, (key, cells) in enumerate(new_cells.items()):
            if self._cells.get(key) == cells:
                continue
            changed_rows.append(index)
            self._strips.pop(key, None)
            for i, cell in enumerate(cells):
                if (n := cell_len(cell.text)) > widths[i]:
                    widths[i], grew = n, True
        if grew:
            self._strips, self._header = {}, None
        same_keys = new_keys == old_keys
        self._cells, self._keys = new_cells, new_keys
        if not same_keys and self.cursor_row >= len(new_keys):
            self.cursor_row = max(0, len(new_keys) - 1)
        self._set_virtual_size(self._content_size())
        if new_columns or grew or not same_keys:
            self.refresh()
        else:  # the same rows: repaint only the lines of those that changed
            for index in changed_rows:
                self.refresh_line(index + 1)
        return appended

    def _content_size(self) -> Size:
        if not self._keys and self.empty_text:
            return Size(cell_len(self.empty_text) + 2 * CELL_PADDING, 1)
        return Size(self._total_width(), len(self._keys) + 1)

    def _set_virtual_size(self, size: Size) -> None:
        """Set the scrollable size; a layout pass only when the table's height follows its rows."""
        if size == self.virtual_size:
            return
        height = self.styles.height
        if height is None or height.is_auto or not self.is_mounted:
            self.virtual_size = size  # reactive with layout=True: the screen is laid out again
            return
        # The region the table is given does not depend on its rows: update the scroll state
        # (scrollbars, clamped offsets) and repaint, without laying out the whole screen again.
        self.set_reactive(DeckTable.virtual_size, size)
        self._scroll_update(size)
        self.refresh()

    def _total_width(self) -> int:
        return sum(w + 2 * CELL_PADDING for w in self._widths)

    # -- rendering ----------------------------------------------------------------------------

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips, self._header, self._empty = {}, None, None

    def _line(self, cells: Sequence[tuple[str, bool, Style]], base: Style) -> Strip:
        pad = " " * CELL_PADDING
        segments: list[Segment] = []
        for (text, right, style), width in zip(cells, self._widths, strict=True):
            gap = " " * max(0, width - cell_len(text))
            segments.append(Segment(pad + (gap if right else ""), base))
            segments.append(Segment(text, base + style if style else base))
            segments.append(Segment(("" if right else gap) + pad, base))
        return Strip(segments, self._total_width())

    def _row_strip(self, key: str) -> Strip:
        strip = self._strips.get(key)
        if strip is None:
            base = self.rich_style
            strip = self._line([(c.text, c.right, self._tone(c.tone)) for c in self._cells[key]], base)
            self._strips[key] = strip
        return strip

    def _tone(self, tone: str | None) -> Style | None:
        return component_style(self, f"deck--{tone}") if tone else None

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        base = self.rich_style
        if not self._keys and self.empty_text:
            if y == scroll_y == 0:
                if self._empty is None:
                    # Not partial: $text-muted has alpha, only blended with a background it is grey.
                    style = self.get_component_rich_style("deck--empty")
                    pad = Segment(" " * CELL_PADDING, base)
                    self._empty = Strip([pad, Segment(self.empty_text, base + style), pad])
                return self._empty.crop_extend(scroll_x, scroll_x + width, base)
            return Strip.blank(width, base)
        if y == 0:
            if self._header is None:
                style = component_style(self, "deck--header")
                self._header = self._line([(c.label, c.right, style) for c in self._shown], base)
            return self._header.crop_extend(scroll_x, scroll_x + width, base)
        index = scroll_y + y - 1
        if index >= len(self._keys):
            return Strip.blank(width, base)
        strip = self._row_strip(self._keys[index])
        if index == self.cursor_row and self.has_focus:
            cursor = self.get_component_rich_style("deck--cursor")
            strip = Strip(Segment.apply_style(iter(strip), post_style=cursor), strip.cell_length)
        return strip.crop_extend(scroll_x, scroll_x + width, base)

    # -- cursor -------------------------------------------------------------------------------

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    def _move_cursor(self, row: int) -> None:
        if not self._keys:
            return
        self.cursor_row = max(0, min(len(self._keys) - 1, row))
        # Row r is virtual line r + 1; the header (line 0) stays in view above it.
        self.scroll_to_region(Region(0, self.cursor_row + 1, 1, 1), spacing=Spacing(1, 0, 0, 0),
                              animate=False, immediate=True, x_axis=False)
        self.refresh()

    def action_cursor(self, step: int) -> None:
        self._move_cursor(self.cursor_row + step)

    def action_page(self, direction: int) -> None:
        self._move_cursor(self.cursor_row + direction * max(1, self.scrollable_content_region.height - 1))

    def action_edge(self, end: int) -> None:
        self._move_cursor(len(self._keys) - 1 if end else 0)


class Pane(Vertical):
    """A titled box around one table (or log); the table shows the pane's empty text."""

    def __init__(self, title: str, body: Widget, *, empty: str = "", id: str | None = None) -> None:
        super().__init__(id=id, classes="pane")
        self.title = title
        """The pane's name, shown in its border."""
        self.body = body
        """The table or log inside."""
        self.empty_text = empty
        """Shown instead of the body's rows when there is nothing to list."""
        if empty and isinstance(body, DeckTable):
            body.empty_text = empty
        self.border_title = title

    def compose(self) -> ComposeResult:
        yield self.body

    def show_count(self, count: int | None, note: str = "") -> None:
        """Put the row count (and a note) in the title."""
        parts = [self.title]
        if count is not None:
            parts.append(str(count))
        if note:
            parts.append(note)
        title = " · ".join(parts)
        if self.border_title != title:
            self.border_title = title
