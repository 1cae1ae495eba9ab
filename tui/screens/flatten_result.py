"""Follows an emergency flatten live: running, flat, or failed with what is still open."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from engine.facade import FlattenReport
from tui.messages import SnapshotTaken

STATUS_TONES = ("-running", "-flat", "-failed")


def status_text(report: FlattenReport | None) -> tuple[str, str]:
    """The headline for a report, with its tone class."""
    if report is None:
        return "REQUESTED — waiting for the engine to start", "-running"
    attempts = f"{report.attempts} attempt" + ("" if report.attempts == 1 else "s")
    if report.state == "flat":
        return f"FLAT — every position closed, every order cancelled ({attempts})", "-flat"
    if report.state == "failed":
        return f"FAILED after {attempts} — still open:", "-failed"
    return f"RUNNING — attempt {report.attempts}", "-running"


def detail_text(report: FlattenReport | None) -> str:
    """What is left, line by line (empty when nothing is)."""
    if report is None:
        return ""
    lines: list[str] = []
    if report.open_positions:
        lines.append("positions:")
        lines += [f"  {p}" for p in report.open_positions]
    if report.open_orders:
        lines.append("orders:")
        lines += [f"  {o}" for o in report.open_orders]
    if report.detail:
        lines.append(report.detail)
    if report.state == "running" and not lines:
        lines.append("cancelling orders and closing positions…")
    return "\n".join(lines)


class FlattenResultScreen(ModalScreen[None]):
    """Shows ``snapshot.flatten`` from every snapshot while it is on top."""

    LIVE = True
    """The app keeps sending snapshots while this dialog is open."""

    BINDINGS = [Binding("escape,enter", "close", "Close")]

    def __init__(self) -> None:
        super().__init__(id="flatten-result")
        self.report: FlattenReport | None = None
        """The report on screen."""

    def compose(self) -> ComposeResult:
        status, tone = status_text(None)
        with Vertical(classes="dialog -danger"):
            yield Static("EMERGENCY FLATTEN", classes="dialog-title", markup=False)
            yield Static(status, id="flatten-status", classes=tone, markup=False)
            yield Static("", id="flatten-detail", markup=False)
            yield Static("esc / enter  close (a running flatten carries on in the engine)",
                         classes="dialog-keys", markup=False)

    def on_screen_resume(self) -> None:
        self.app.call_later(self.app.refresh_snapshot, self)

    def on_snapshot_taken(self, message: SnapshotTaken) -> None:
        self.show(message.snapshot.flatten)

    def show(self, report: FlattenReport | None) -> None:
        """Paint ``report`` (no-op when it did not change)."""
        if report == self.report and self.is_mounted:
            return
        self.report = report
        status, tone = status_text(report)
        widget = self.query_one("#flatten-status", Static)
        widget.update(status)
        widget.remove_class(*STATUS_TONES)
        widget.add_class(tone)
        detail = detail_text(report)
        self.query_one("#flatten-detail", Static).update(detail)
        self.query_one("#flatten-detail", Static).display = bool(detail)

    def action_close(self) -> None:
        self.dismiss(None)
