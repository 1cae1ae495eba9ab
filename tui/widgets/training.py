"""The training pane: the background RL trainer's :class:`~engine.facade.TrainingView`.

One line-API widget of fixed height: it repaints when the view changes and never lays out the
screen (the trainer updates its figures several times a second while it runs).
"""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

from engine.facade import TrainingView
from tui import format as fmt
from tui.widgets.tables import component_style

NOT_AVAILABLE = (
    "Training is not available in this process.",
    "Install the rl extra (pip install 'perpdeck[rl]') and set [rl] enabled = true in config.toml,",
    "then start perpdeck again.",
)
"""What the pane says when no trainer is attached."""
KEYS_HINT = "t start / resume   T stop (a checkpoint is saved)   esc back"
STATE_TONES = {"running": "ok", "starting": "warn", "stopping": "warn", "finished": "ok", "failed": "bad",
               "stopped": "muted", "idle": "muted"}
BAR_WIDTH = 30
"""Cells of the progress bar."""
LABEL_WIDTH = 12
"""Cells of the left column's labels."""
COLUMN_WIDTH = 28
"""Cells of the left column (label + value); the right one starts after it."""
RIGHT_LABEL_WIDTH = 16
"""Cells of the right column's labels."""


def progress_bar(steps: int, total: int, width: int = BAR_WIDTH) -> str:
    """``█████▍      `` for steps of total, in eighths of a cell; an empty bar when total is unknown."""
    if total <= 0:
        return "░" * width
    eighths = round(max(0.0, min(1.0, steps / total)) * width * 8)
    full, part = divmod(eighths, 8)
    bar = "█" * full + (" ▏▎▍▌▋▊▉"[part] if part else "")
    return bar + "░" * (width - len(bar))


def progress_text(v: TrainingView) -> str:
    """``48.2%  48,200 / 100,000 steps`` (steps alone while the total is unknown)."""
    if v.total_steps <= 0:
        return f"{v.steps:,} steps"
    return f"{100 * v.steps / v.total_steps:.1f}%  {v.steps:,} / {v.total_steps:,} steps"


def eta_text(v: TrainingView) -> str:
    if v.state == "finished":
        return "done"
    if v.eta_s is None or v.state not in ("running", "starting"):
        return fmt.DASH
    return fmt.duration(int(v.eta_s * 1000))


def number(value: float | None, places: int = 4, *, signed: bool = False) -> str:
    if value is None:
        return fmt.DASH
    return f"{value:+.{places}f}" if signed else f"{value:.{places}f}"


def sign_tone(value: float | None) -> str | None:
    """``ok`` above zero, ``bad`` below, none at zero or unknown."""
    if value is None or value == 0:
        return None
    return "ok" if value > 0 else "bad"


def training_lines(v: TrainingView | None) -> list[list[tuple[str, str | None]]]:
    """The pane's lines as (text, tone) parts; tones are ``label``, ``ok``, ``warn``, ``bad``, ``muted``,
    ``bar`` or None (plain). Pure, so tests can read what the pane says."""
    if v is None:
        first, *rest = NOT_AVAILABLE
        return [[(first, "warn")], *[[(line, "muted")] for line in rest]]

    def pair(left_label: str, left: str, left_tone: str | None, right_label: str = "", right: str = "",
             right_tone: str | None = None) -> list[tuple[str, str | None]]:
        parts: list[tuple[str, str | None]] = [(left_label.ljust(LABEL_WIDTH), "label"), (left, left_tone)]
        if right_label:
            used = LABEL_WIDTH + len(left)
            parts.append((" " * max(1, COLUMN_WIDTH - used), None))
            parts += [(right_label.ljust(RIGHT_LABEL_WIDTH), "label"), (right, right_tone)]
        return parts

    val = v.best_val_return_pct
    val_text = fmt.DASH if val is None else f"{val:+.2f}%"
    return [
        pair("State", v.state, STATE_TONES.get(v.state), "Device", v.device or fmt.DASH, None),
        [("Progress".ljust(LABEL_WIDTH), "label"), (progress_bar(v.steps, v.total_steps), "bar"),
         ("  " + progress_text(v), None)],
        pair("Speed", f"{v.steps_per_s:,.0f} steps/s" if v.steps_per_s is not None else fmt.DASH, None,
             "ETA", eta_text(v), None),
        pair("Ep. reward", number(v.episode_reward, signed=True), sign_tone(v.episode_reward),
             "Best validation", val_text, sign_tone(val)),
        pair("Actor loss", number(v.actor_loss), None, "Critic loss", number(v.critic_loss), None),
        pair("Ent. coef", number(v.ent_coef), None),
        pair("Checkpoint", v.checkpoint or fmt.DASH, None if v.checkpoint else "muted"),
        pair("Detail", v.detail or fmt.DASH, ("bad" if v.state == "failed" else None) if v.detail else "muted"),
        [(KEYS_HINT, "muted")],
    ]


class TrainingPanel(Widget):
    """Every field of the trainer's view; a note on how to enable training when there is none."""

    COMPONENT_CLASSES = {"training--label", "training--ok", "training--warn", "training--bad",
                         "training--muted", "training--bar"}
    DEFAULT_CSS = """
    TrainingPanel {
        height: 9;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.view: TrainingView | None = None
        """The view on screen."""
        self.shown = False
        self._lines: list[list[tuple[str, str | None]]] = training_lines(None)
        self._strips: list[Strip] | None = None

    def show(self, view: TrainingView | None) -> None:
        """Paint ``view``; nothing happens when it is the one on screen."""
        if self.shown and view == self.view:
            return
        self.view, self.shown = view, True
        self._lines = training_lines(view)
        self._strips = None
        self.refresh()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips = None

    def _style(self, tone: str | None) -> Style:
        base = self.rich_style
        if tone is None:
            return base
        return base + component_style(self, f"training--{tone}")

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if self._strips is None:
            self._strips = [Strip([Segment(text, self._style(tone)) for text, tone in line]) for line in self._lines]
        if y >= len(self._strips):
            return Strip.blank(width, self.rich_style)
        return self._strips[y].crop_extend(0, width, self.rich_style)
