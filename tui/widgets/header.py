"""The header bar: mode, engine state, streams, exchange clock, account and today's numbers."""

from __future__ import annotations

from rich.cells import cell_len
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widget import Widget

from engine.facade import EngineSnapshot, StreamView
from tui import format as fmt

FIELD_TONES = (
    "-sim", "-testnet", "-mainnet", "-active", "-halted", "-reducing",
    "-ok", "-warn", "-bad", "-pos", "-neg",
)
"""Classes a header field can carry; each one is coloured in ``app.tcss``."""

MODE_BADGES = {"sim": "SIM", "testnet": "TESTNET", "mainnet": "MAINNET — REAL MONEY"}
STATE_GLYPHS = {"ACTIVE": "●", "HALTED": "■", "REDUCING": "◐"}
STREAM_STALE_MS = 30_000
"""A connected stream silent for longer than this is shown as a warning."""


class HeaderField(Widget):
    """One ``label value`` pair of the header; its tone is a CSS class."""

    COMPONENT_CLASSES = {"field--label"}
    DEFAULT_CSS = "HeaderField { width: auto; height: 1; }"

    def __init__(self, label: str = "", *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.label = label
        """The field's name, drawn muted before its value."""
        self.value = ""
        """The text last shown."""
        self.tone: str | None = None
        """The tone class last applied."""
        self._width = -1
        """Cells the text last took: only a change of width needs a (whole-screen) layout pass."""

    def show(self, value: str, tone: str | None = None, label: str | None = None) -> None:
        """Show ``value`` with ``tone``; does nothing when neither changed."""
        label = self.label if label is None else label
        if value == self.value and tone == self.tone and label == self.label:
            return
        if tone != self.tone:
            if self.tone:
                self.remove_class(self.tone)
            if tone:
                self.add_class(tone)
            self.tone = tone
        self.value, self.label = value, label
        # The field only ever grows (values are padded to the widest seen), so after the first
        # refreshes it never asks for a whole-screen layout pass again; a repaint suffices.
        width = cell_len(f"{label} {value}" if label else value)
        grew = width > self._width
        self._width = max(self._width, width)
        self.refresh(layout=grew)

    def render(self) -> Content:
        used = cell_len(f"{self.label} {self.value}" if self.label else self.value)
        value = self.value + " " * max(0, self._width - used)
        if not self.label:
            return Content(value)
        return Content.assemble((self.label, self.get_visual_style("field--label", partial=True)), " ", value)


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


class HeaderBar(Vertical):
    """Two lines: who and where we are, then money and activity."""

    def compose(self) -> ComposeResult:
        with Horizontal(classes="header-row"):
            yield HeaderField(id="mode")
            yield HeaderField(id="engine-state")
            yield HeaderField("market", id="market-stream")
            yield HeaderField("user", id="user-stream")
            yield HeaderField(id="clock")
        with Horizontal(classes="header-row"):
            yield HeaderField("equity", id="equity")
            yield HeaderField("available", id="available")
            yield HeaderField("today", id="today-pnl")
            yield HeaderField("trades", id="trades")
            yield HeaderField("strategy", id="strategy")

    def field(self, id: str) -> HeaderField:
        return self.query_one(f"#{id}", HeaderField)

    def show(self, snap: EngineSnapshot, wall_ms: int, compact: bool) -> None:
        """Show ``snap``; stream ages are measured against ``wall_ms``."""
        mode = snap.mode.lower()
        badge = MODE_BADGES.get(mode, mode.upper())
        self.field("mode").show(badge, f"-{mode}" if mode in MODE_BADGES else "-warn")
        self.set_class(mode == "mainnet", "-mainnet")

        state = snap.state.upper()
        text = f"{STATE_GLYPHS.get(state, '?')} {state}"
        if state != "ACTIVE" and snap.halt_reason:
            text += f" — {snap.halt_reason}"
        if snap.finished:
            text += " · run finished"
        self.field("engine-state").show(text, f"-{state.lower()}" if state in STATE_GLYPHS else "-warn")

        market, tone = stream_text(snap.market_stream, wall_ms)
        self.field("market-stream").show(market, tone, label="mkt" if compact else "market")
        self.field("user-stream").show(*stream_text(snap.user_stream, wall_ms))
        self.field("clock").show(fmt.clock(snap.exchange_time_ms, with_date=not compact))

        self.field("equity").show(fmt.money(snap.equity), label="eq" if compact else "equity")
        self.field("available").show(fmt.money(snap.available_balance), label="avail" if compact else "available")
        pnl = snap.today_pnl
        self.field("today-pnl").show(fmt.signed_money(pnl), "-pos" if pnl > 0 else "-neg" if pnl < 0 else None)
        limit = snap.max_daily_trades
        trades = f"{snap.trades_today}/{limit}" if limit is not None else str(snap.trades_today)
        self.field("trades").show(trades, "-warn" if limit is not None and snap.trades_today >= limit else None)
        strategy = snap.strategy
        if snap.replay_total:
            strategy += f" · replay {snap.replay_position or 0:,}/{snap.replay_total:,}"
        self.field("strategy").show(strategy, label="strat" if compact else "strategy")
