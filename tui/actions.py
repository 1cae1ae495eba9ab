"""The one table of operator actions.

Every key the console answers to is a row here. The rows drive the app's ``BINDINGS`` (with a
stable ``id`` per row, so keys can be remapped by id), the command palette (one provider, titles
in the form "area: verb") and the help screen, so the three can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding

KEY_NAMES = {"question_mark": "?", "ctrl+f": "ctrl+f", "ctrl+p": "ctrl+p", "ctrl+q": "ctrl+q"}
"""How key names that are not the character itself are shown to a person."""


@dataclass(frozen=True, slots=True)
class Action:
    """One operator action and every way to reach it."""

    id: str
    """Stable identifier, used as the binding id (``engine.halt``)."""
    keys: tuple[str, ...]
    """Textual key names, first one shown in the footer."""
    action: str
    """The app action it runs (``halt`` runs ``PerpdeckApp.action_halt``)."""
    description: str
    """Short footer label."""
    title: str
    """Command-palette title, "area: verb"."""
    help: str
    """One sentence for the help screen and the palette."""
    show: bool = True
    """Shown in the footer."""
    in_palette: bool = True
    """Offered by the command palette."""

    @property
    def key_label(self) -> str:
        """All keys for a person: ``F / ctrl+f``."""
        return " / ".join(KEY_NAMES.get(k, k) for k in self.keys)

    def binding(self) -> Binding:
        """The Textual binding for this row."""
        return Binding(
            ",".join(self.keys),
            self.action,
            self.description,
            show=self.show,
            key_display=KEY_NAMES.get(self.keys[0], self.keys[0]),
            tooltip=self.help,
            id=self.id,
        )


ACTIONS: tuple[Action, ...] = (
    Action(
        id="engine.halt",
        keys=("h",),
        action="halt",
        description="Halt",
        title="engine: halt",
        help="Stop opening new positions; open positions keep their stops.",
    ),
    Action(
        id="engine.resume",
        keys=("r",),
        action="resume",
        description="Resume",
        title="engine: resume",
        help="Allow new entries again after a halt.",
    ),
    Action(
        id="engine.flatten",
        keys=("F", "ctrl+f"),
        action="flatten",
        description="Flatten",
        title="engine: flatten all",
        help="Emergency: halt, cancel all orders, close all positions (asks first).",
    ),
    Action(
        id="strategy.switch",
        keys=("s",),
        action="switch_strategy",
        description="Strategy",
        title="strategy: switch",
        help="Pick the active strategy; it applies on the next closed candle.",
    ),
    Action(
        id="view.dashboard",
        keys=("1",),
        action="show_dashboard",
        description="Dashboard",
        title="view: dashboard",
        help="Back to the dashboard from the strategies or training view (or esc).",
        show=False,
    ),
    Action(
        id="view.strategies",
        keys=("2",),
        action="show_strategies",
        description="Strategies",
        title="view: strategies",
        help="Stats per strategy, regimes or ensemble weights, external signals.",
        show=False,
    ),
    Action(
        id="view.training",
        keys=("3",),
        action="show_training",
        description="Training",
        title="view: training",
        help="The RL trainer: progress, speed, ETA, reward, losses, checkpoint.",
        show=False,
    ),
    Action(
        id="training.start",
        keys=("t",),
        action="start_training",
        description="Train",
        title="training: start",
        help="Start the background RL trainer, or resume it from its checkpoint.",
        show=False,
    ),
    Action(
        id="training.stop",
        keys=("T",),
        action="stop_training",
        description="Stop training",
        title="training: stop",
        help="Stop the RL trainer after its current step; a checkpoint is saved.",
        show=False,
    ),
    Action(
        id="log.level",
        keys=("l",),
        action="cycle_log_level",
        description="Log",
        title="log: cycle level",
        help="Show ALL levels, or only INFO, WARNING or ERROR and above.",
    ),
    Action(
        id="app.help",
        keys=("question_mark",),
        action="show_help",
        description="Help",
        title="help: show keys",
        help="List every key and command.",
    ),
    Action(
        id="app.palette",
        keys=("ctrl+p",),
        action="command_palette",
        description="Palette",
        title="palette: open",
        help="Search every command by name.",
        show=False,
        in_palette=False,
    ),
    Action(
        id="app.quit",
        keys=("q",),
        action="quit",
        description="Quit",
        title="app: quit",
        help="Quit; asks first while positions are open (ctrl+q works anywhere).",
    ),
)
"""Every operator action, in the order the footer, help and palette show them."""


def bindings() -> list[Binding]:
    """The app's key bindings, one per action."""
    return [action.binding() for action in ACTIONS]


def palette_actions() -> tuple[Action, ...]:
    """The actions the command palette offers."""
    return tuple(a for a in ACTIONS if a.in_palette)
