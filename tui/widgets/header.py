"""The header bar: mode, engine state, streams, exchange clock, account, and the guard's counts."""

from __future__ import annotations

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

from engine.facade import EngineSnapshot, StatusView, StreamView
from tui import format as fmt

FIELD_TONES = (
    "-sim", "-testnet", "-mainnet", "-active", "-halted", "-reducing",
    "-ok", "-warn", "-bad", "-pos", "-neg",
)
"""Tones a header field can carry; each is the component class ``header-<tone>`` in ``app.tcss``."""

MODE_BADGES = {"sim": "SIM", "testnet": "TESTNET", "mainnet": "MAINNET — REAL MONEY"}
STATE_GLYPHS = {"ACTIVE": "●", "HALTED": "■", "REDUCING": "◐"}
STREAM_STALE_MS = 30_000
"""A connected stream silent for longer than this is shown as a warning."""


class HeaderField:
    """One ``label value`` pair of the header; the bar draws it (a field is not a widget).

    Values are padded to the widest seen in the current layout, so a field never narrows and
    the fields after it never jitter.
    """

    def __init__(self, id: str, label: str = "", *, grow: bool = False, right: bool = False,
                 pad: int = 0, gap: int = 2, kind: str = "") -> None:
        self.id = id
        """The field's name (as in ``HeaderBar.field(id)``)."""
        self.label = label
        """The field's name on screen, drawn muted before its value."""
        self.value = ""
        """The text last shown."""
        self.tone: str | None = None
        """The tone last applied (``-ok``, ``-warn``, …): the component class ``header-<tone>``."""
        self.grow = grow
        """Takes the row's spare width (at least its text's width when there is room)."""
        self.right = right
        """Right-aligned within its width."""
        self.pad = pad
        """Blank cells either side, in the field's tone (the badges)."""
        self.gap = gap
        """Blank cells after the field."""
        self.kind = kind
        """Component class for the field itself (``header--mode``, ``header--state``), or none."""
        self._width = 0

    @property
    def text_width(self) -> int:
        """Cells the padded text takes (the widest seen in this layout)."""
        return self._width

    def show(self, value: str, tone: str | None = None, label: str | None = None) -> bool:
        """Take ``value`` with ``tone``; returns whether anything changed."""
        label = self.label if label is None else label
        if value == self.value and tone == self.tone and label == self.label:
            return False
        self.value, self.tone, self.label = value, tone, label
        self._width = max(self._width, self._used())
        return True

    def fit(self) -> None:
        """Forget the widest value seen (the layout changed): take the current text's width."""
        self._width = self._used()

    @property
    def padded_value(self) -> str:
        """The value, padded with blanks so that label and value take :attr:`text_width` cells."""
        return self.value + " " * max(0, self._width - self._used())

    def _used(self) -> int:
        return cell_len(f"{self.label} {self.value}" if self.label else self.value)


def stream_text(stream: StreamView, wall_ms: int) -> tuple[str, str]:
    """A stream's state and the age of its last message, with a tone."""
    state = stream.state
    if state == "connected":
        if stream.last_message_ms is None:
            return "● connected", "-ok"
        age = wall_ms - stream.last_message_ms
        return f"● {fmt.age(age)}", "-ok" if age <= STREAM_STALE_MS else "-warn"
    if state == "in-process":
        return "● in-process", "-ok"
    if state == "reconnecting":
        return "◌ reconnecting", "-warn"
    if state == "down":
        return "✕ down", "-bad"
    return f"? {state}", "-warn"


GUARD_HALTS = {"consecutive_losses": "losing streak", "daily_loss": "daily loss", "market_shock": "market shock"}
"""How the guard's own halts are named in the header."""


def limit_text(count: int | None, limit: int | None) -> tuple[str, str | None]:
    """``3/10`` (a warning at the limit), ``3`` without a limit, ``—`` when unknown."""
    if count is None:
        return fmt.DASH, None
    if limit is None:
        return str(count), None
    return f"{count}/{limit}", "-warn" if count >= limit else None


def losses_text(status: StatusView) -> tuple[str, str | None]:
    """Losing trades in a row against the streak limit (0 or None: off, the count alone)."""
    n, limit = status.consecutive_losses, status.max_consecutive_losses
    if n is None:
        return fmt.DASH, None
    if not limit:
        return str(n), None
    return f"{n}/{limit}", "-bad" if n >= limit else "-warn" if n and n == limit - 1 else None


def guard_text(status: StatusView, compact: bool) -> tuple[str, str]:
    """The guard's own halt or market-shock cool-down, else ``ok``."""
    if status.halted_by:
        return f"halt: {GUARD_HALTS.get(status.halted_by, status.halted_by)}", "-bad"
    if status.shock_until_ms is not None:
        if compact:
            return f"shock → {fmt.hms(status.shock_until_ms)[:5]}", "-warn"
        return f"market-shock cool-down until {fmt.clock(status.shock_until_ms, with_date=False)}", "-warn"
    return "ok", "-ok"


def disabled_text(status: StatusView, compact: bool) -> tuple[str, str | None]:
    """Strategies the guard disabled for their losses (compact: a count when more than one)."""
    names = status.disabled_strategies
    if not names:
        return "none", None
    if compact and len(names) > 1:
        return f"{len(names)} strategies", "-bad"
    return ", ".join(names), "-bad"


def header_rows() -> tuple[tuple[HeaderField, ...], ...]:
    """The bar's three rows of fields, left to right."""
    return (
        (
            HeaderField("mode", pad=1, kind="header--mode"),
            HeaderField("engine-state", grow=True, pad=1, kind="header--state"),
            HeaderField("market-stream", "market"),
            HeaderField("user-stream", "user"),
            HeaderField("clock", gap=0),
        ),
        (
            HeaderField("equity", "equity"),
            HeaderField("available", "available"),
            HeaderField("upnl", "uPnL"),
            HeaderField("today-pnl", "today"),
            HeaderField("strategy", "strategy", grow=True, right=True, gap=0),
        ),
        (
            HeaderField("trades", "trades"),
            HeaderField("opened", "opened"),
            HeaderField("losses", "losses"),
            HeaderField("disabled", "disabled"),
            HeaderField("guard", "guard"),
        ),
    )


class HeaderBar(Widget):
    """Three lines: who and where we are; money; the guard's counts and limits.

    One line-API widget draws every field: a refresh repaints only the lines whose fields
    changed, and a tone is a component style looked up while drawing (no CSS class changes).
    """

    COMPONENT_CLASSES = {
        "header--label", "header--mode", "header--state",
        *(f"header-{tone}" for tone in FIELD_TONES),
    }

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows = header_rows()
        """The fields, row by row."""
        self._fields = {f.id: f for row in self.rows for f in row}
        self._compact: bool | None = None
        self._lines: dict[int, Strip] = {}
        self._lines_width = -1
        self._styles: dict[tuple[str, ...], Style] = {}

    def field(self, id: str) -> HeaderField:
        """The field called ``id``."""
        return self._fields[id]

    def show(self, snap: EngineSnapshot, wall_ms: int, compact: bool) -> None:
        """Show ``snap``; stream ages are measured against ``wall_ms``."""
        relayout = self._compact is not None and compact != self._compact
        self._compact = compact
        f = self._fields
        changed: set[str] = set()

        def put(id: str, value: str, tone: str | None = None, label: str | None = None) -> None:
            if f[id].show(value, tone, label):
                changed.add(id)

        mode = snap.mode.lower()
        put("mode", MODE_BADGES.get(mode, mode.upper()), f"-{mode}" if mode in MODE_BADGES else "-warn")
        if self.has_class("-mainnet") != (mode == "mainnet"):
            self.set_class(mode == "mainnet", "-mainnet")

        state = snap.state.upper()
        text = f"{STATE_GLYPHS.get(state, '?')} {state}"
        if state != "ACTIVE" and snap.halt_reason:
            text += f" — {snap.halt_reason}"
        if snap.finished:
            text += " · run finished"
        put("engine-state", text, f"-{state.lower()}" if state in STATE_GLYPHS else "-warn")

        market, tone = stream_text(snap.market_stream, wall_ms)
        put("market-stream", market, tone, label="mkt" if compact else "market")
        put("user-stream", *stream_text(snap.user_stream, wall_ms))
        put("clock", fmt.clock(snap.exchange_time_ms, with_date=not compact))

        put("equity", fmt.money(snap.equity), label="eq" if compact else "equity")
        put("available", fmt.money(snap.available_balance), label="avail" if compact else "available")
        upnl = snap.unrealized_pnl
        put("upnl", fmt.signed_money(upnl), _signed_tone(upnl))
        pnl = snap.today_pnl
        put("today-pnl", fmt.signed_money(pnl), _signed_tone(pnl))
        strategy = snap.strategy
        if snap.replay_total:
            strategy += f" · replay {snap.replay_position or 0:,}/{snap.replay_total:,}"
        put("strategy", strategy, label="strat" if compact else "strategy")

        status = snap.status
        put("trades", *limit_text(snap.trades_today, snap.max_daily_trades))
        put("opened", *limit_text(status.positions_opened_today, status.max_positions_per_day),
            label="opened" if compact else "positions opened")
        put("losses", *losses_text(status), label="streak" if compact else "loss streak")
        put("disabled", *disabled_text(status, compact))
        put("guard", *guard_text(status, compact))

        if relayout:  # fields only grow within a layout; a new layout starts from what they show now
            for field in self._fields.values():
                field.fit()
            self._lines.clear()
            self.refresh()
            return
        width = self.content_size.width
        for y, row in enumerate(self.rows):
            if any(field.id in changed for field in row):
                self._lines.pop(y, None)
                self.refresh(Region(0, y, width, 1))

    # -- rendering ----------------------------------------------------------------------------

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._lines.clear()
        self._styles.clear()

    def _style(self, *names: str) -> Style:
        """The widget's style with the named components' styles on top (cached)."""
        style = self._styles.get(names)
        if style is None:
            style = self.rich_style
            for name in names:
                # Not partial: the theme's text colours have alpha, blended only over a background.
                style += self.get_component_rich_style(name)
            self._styles[names] = style
        return style

    def render_line(self, y: int) -> Strip:
        width = self.content_size.width
        if width != self._lines_width:
            self._lines.clear()
            self._lines_width = width
        line = self._lines.get(y)
        if line is None:
            line = self._render_row(self.rows[y], width) if y < len(self.rows) else Strip.blank(width)
            self._lines[y] = line
        return line

    def _render_row(self, row: tuple[HeaderField, ...], width: int) -> Strip:
        base = self._style()
        fixed = sum(f.text_width + 2 * f.pad for f in row if not f.grow) + sum(f.gap for f in row)
        growers = sum(1 for f in row if f.grow)
        spare = max(0, width - fixed)
        segments: list[Segment] = []
        for f in row:
            if f.grow:  # like 1fr: the spare width, shared
                share = spare // growers
                spare, growers = spare - share, growers - 1
                segments.extend(self._render_field(f, share))
            else:
                segments.extend(self._render_field(f, f.text_width + 2 * f.pad))
            if f.gap:
                segments.append(Segment(" " * f.gap, base))
        return Strip(segments).adjust_cell_length(width, base)

    def _render_field(self, f: HeaderField, width: int) -> list[Segment]:
        names = tuple(n for n in (f.kind, f"header-{f.tone}" if f.tone else "") if n)
        style = self._style(*names)
        inner = width - 2 * f.pad
        if inner <= 0:
            return [Segment(" " * width, style)] if width > 0 else []
        text = [Segment(f.padded_value, style)]
        if f.label:
            text[:0] = [Segment(f.label, self._style(*names, "header--label")), Segment(" ", style)]
        strip = Strip(text)
        if strip.cell_length > inner:  # too narrow: cut, ending in an ellipsis
            strip = Strip([*strip.crop(0, inner - 1), Segment("…", style)])
        fill = " " * (inner - strip.cell_length)
        pad = " " * f.pad
        left, right = (pad + fill, pad) if f.right else (pad, fill + pad)
        return [*((Segment(left, style),) if left else ()), *strip, *((Segment(right, style),) if right else ())]


def _signed_tone(value) -> str | None:
    return "-pos" if value > 0 else "-neg" if value < 0 else None
