"""The table every pane is built on: declared columns, keyed rows and cell-level updates.

A pane describes its rows as plain :class:`Cell` values; :meth:`DeckTable.sync` changes only
the cells whose text or tone changed, appends new rows, drops vanished ones, and rebuilds only
when the row order changed. Colours come from component classes styled in ``app.tcss``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import DataTable, Static

TONES = ("gain", "loss", "muted", "long", "short", "accepted", "denied", "warn")
"""Cell tones; each is the component class ``deck--<tone>``."""


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


class DeckTable(DataTable):
    """A read-only, row-cursor table whose contents follow :meth:`sync`."""

    COMPONENT_CLASSES = {f"deck--{tone}" for tone in TONES}
    COLUMNS: tuple[Col, ...] = ()
    """Every column; each layout shows those flagged for it."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False, show_cursor=True)
        self._shown: tuple[Col, ...] = ()
        self._cells: dict[str, dict[str, Cell]] = {}

    def columns_for(self, compact: bool) -> tuple[Col, ...]:
        """The columns shown in the given layout."""
        return tuple(c for c in self.COLUMNS if (c.compact if compact else c.wide))

    def sync(self, rows: Sequence[Row], *, compact: bool = False) -> bool:
        """Show ``rows`` (in order); returns True when rows were added at the end."""
        columns = self.columns_for(compact)
        if columns != self._shown:
            self.clear(columns=True)
            for col in columns:
                self.add_column(Text(col.label, justify="right" if col.right else "left"), key=col.key)
            self._shown = columns
            self._cells = {}

        wanted = {key for key, _ in rows}
        kept = [key for key in self._cells if key in wanted]
        if [key for key, _ in rows[: len(kept)]] != kept:
            return self._rebuild(rows)  # the order changed

        for key in [key for key in self._cells if key not in wanted]:
            self.remove_row(key)
            del self._cells[key]
        for key, cells in rows[: len(kept)]:
            before, after = self._cells[key], self._pick(cells)
            for col, cell in after.items():
                if before[col] != cell:
                    self.update_cell(key, col, self._cell_text(cell), update_width=True)
            self._cells[key] = after
        for key, cells in rows[len(kept):]:
            self._add(key, cells)
        return len(rows) > len(kept)

    def _cell_text(self, cell: Cell) -> Text:
        style = self.get_component_rich_style(f"deck--{cell.tone}", partial=True) if cell.tone else ""
        return Text(cell.text, style=style, justify="right" if cell.right else "left", no_wrap=True)

    def _pick(self, cells: dict[str, Cell]) -> dict[str, Cell]:
        """The cells of the shown columns, by column key."""
        return {col.key: cells.get(col.cell or col.key, Cell("")) for col in self._shown}

    def _add(self, key: str, cells: dict[str, Cell]) -> None:
        row = self._pick(cells)
        self.add_row(*(self._cell_text(cell) for cell in row.values()), key=key)
        self._cells[key] = row

    def _rebuild(self, rows: Sequence[Row]) -> bool:
        cursor = self.cursor_row
        self.clear()
        self._cells = {}
        for key, cells in rows:
            self._add(key, cells)
        if rows:
            self.move_cursor(row=min(cursor, len(rows) - 1), animate=False, scroll=False)
        return bool(rows)


class Pane(Vertical):
    """A titled box around one table (or log), with an empty-state line."""

    def __init__(self, title: str, body: Widget, *, empty: str = "", id: str | None = None) -> None:
        super().__init__(id=id, classes="pane")
        self.title = title
        """The pane's name, shown in its border."""
        self.body = body
        """The table or log inside."""
        self.empty_text = empty
        """Shown instead of the body when there is nothing to list."""
        self.border_title = title

    def compose(self) -> ComposeResult:
        yield self.body
        if self.empty_text:
            yield Static(self.empty_text, classes="empty", markup=False)

    def show_count(self, count: int | None, note: str = "") -> None:
        """Put the row count (and a note) in the title; an empty pane shows its empty text."""
        parts = [self.title]
        if count is not None:
            parts.append(str(count))
        if note:
            parts.append(note)
        title = " · ".join(parts)
        if self.border_title != title:
            self.border_title = title
        if self.empty_text:
            self.set_class(count == 0, "-empty")
