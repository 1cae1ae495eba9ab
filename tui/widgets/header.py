"""The header bar: mode, engine state, streams, exchange clock, account, and the guard's counts."""

from __future__ import annotations

from rich.cells import cell_len
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widget import Widget

from engine.facade import EngineSnapshot, StatusView, StreamView
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

    def fit(self) -> None:
        """Forget the widest value seen (the layout changed): take the current text's width."""
        self._width = cell_len(f"{self.label} {self.value}" if self.label else self.value)
        self.refresh(layout=True)

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


class HeaderBar(Vertical):
    """Three lines: who and where we are; money; the guard's counts and limits."""

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
            yield HeaderField("uPnL", id="upnl")
            yield HeaderField("today", id="today-pnl")
            yield HeaderField("strategy", id="strategy")
        with Horizontal(classes="header-row"):
            yield HeaderField("trades", id="trades")
            yield HeaderField("opened", id="opened")
            yield HeaderField("losses", id="losses")
            yield HeaderField("disabled", id="disabled")
            yield HeaderField("guard", id="guard")

    _compact: bool | None = None

    def field(self, id: str) -> HeaderField:
        return self.query_one(f"#{id}", HeaderField)

    def show(self, snap: EngineSnapshot, wall_ms: int, compact: bool) -> None:
        """Show ``snap``; stream ages are measured against ``wall_ms``."""
        relayout = self._compact is not None and compact != self._compact
        self._compact = compact
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
        upnl = snap.unrealized_pnl
        self.field("upnl").show(fmt.signed_money(upnl), _signed_tone(upnl))
        pnl = snap.today_pnl
        self.field("today-pnl").show(fmt.signed_money(pnl), _signed_tone(pnl))
        strategy = snap.strategy
        if snap.replay_total:
            strategy += f" · replay {snap.replay_position or 0:,}/{snap.replay_total:,}"
        self.field("strategy").show(strategy, label="strat" if compact else "strategy")

        status = snap.status
        self.field("trades").show(*limit_text(snap.trades_today, snap.max_daily_trades))
        self.field("opened").show(*limit_text(status.positions_opened_today, status.max_positions_per_day),
                                  label="opened" if compact else "positions opened")
        self.field("losses").show(*losses_text(status), label="streak" if compact else "loss streak")
        self.field("disabled").show(*disabled_text(status, compact))
        self.field("guard").show(*guard_text(status, compact))
        if relayout:  # fields only grow within a layout; a new layout starts from what they show now
            for f in self.query(HeaderField):
                f.fit()


def _signed_tone(value) -> str | None:
    return "-pos" if value > 0 else "-neg" if value < 0 else None
