"""Run the console with the engine inside the app's own event loop.

The engine session (sim replay, or the live adapter) runs as a Textual worker; the app reads it
through the same facade as always. Quitting asks the session to stop (journal flushed, protective
orders left resting), waits for it, then exits.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any, Awaitable, Callable

from engine.events import StartTraining, StopTraining
from engine.facade import EngineSnapshot, StreamView, TrainingControl, route_training, training_view
from tui.app import PerpdeckApp

SessionFactory = Callable[[Callable[[Any], None]], Awaitable[Any]]


def starting_snapshot(mode: str) -> EngineSnapshot:
    zero = Decimal(0)
    down = StreamView("starting", None)
    return EngineSnapshot(
        mode=mode, run_id="", state="STARTING", halt_reason="", strategy="", strategies=(),
        exchange_time_ms=0, equity=zero, wallet_balance=zero, available_balance=zero, unrealized_pnl=zero,
        today_pnl=zero, trades_today=0, max_daily_trades=None, market_stream=down, user_stream=down,
        positions=(), signals=(), timers=(), orders=(), algo_orders=(), log=(),
    )


class SessionFacade:
    """The runtime's facade once the session is up; a 'starting' snapshot until then.

    With a ``trainer`` (``rl.worker``'s :class:`~engine.facade.TrainingControl`), StartTraining and
    StopTraining go to it at once (the engine session need not be up) and every snapshot carries its
    :class:`~engine.facade.TrainingView`; without one those commands raise
    :class:`~engine.facade.TrainingUnavailable` and ``snapshot().training`` stays None.
    """

    def __init__(self, mode: str, *, trainer: TrainingControl | None = None) -> None:
        self.mode = mode
        self.trainer = trainer
        self.target = None
        self.pending: list[object] = []

    def attach(self, facade) -> None:
        self.target = facade
        for cmd in self.pending:
            facade.submit(cmd)
        self.pending.clear()

    def snapshot(self) -> EngineSnapshot:
        snap = self.target.snapshot() if self.target is not None else starting_snapshot(self.mode)
        if self.trainer is not None:
            snap = replace(snap, training=training_view(self.trainer))
        return snap

    def submit(self, command: object) -> None:
        training = isinstance(command, StartTraining | StopTraining)
        if training and (self.trainer is not None or self.target is None):
            route_training(self.trainer, command)  # raises TrainingUnavailable without a trainer
        elif self.target is None:
            self.pending.append(command)
        else:
            self.target.submit(command)


class ConsoleApp(PerpdeckApp):
    """The console plus the engine session running in its loop."""

    def __init__(self, facade: SessionFacade, session: SessionFactory, **kwargs: Any) -> None:
        super().__init__(facade, **kwargs)
        self.session_facade = facade
        self.session = session
        self.runtime = None
        self.summary: Any = None
        self.session_error: BaseException | None = None
        self._exit_requested: tuple | None = None
        self._worker = None

    def on_mount(self) -> None:
        super().on_mount()
        self._worker = self.run_worker(self._run_session(), name="engine-session", exclusive=True,
                                       exit_on_error=False)

    def _attach(self, rt) -> None:
        self.runtime = rt
        self.session_facade.attach(rt.facade)

    async def _run_session(self) -> None:
        try:
            self.summary = await self.session(self._attach)
            if self._exit_requested is None:
                self.notify("replay finished: positions closed at the end of the data", title="engine")
        except BaseException as exc:  # noqa: BLE001 - shown, and the exit code says so
            self.session_error = exc
            if self._exit_requested is None:
                self.notify(f"engine stopped: {type(exc).__name__}: {exc}", title="engine", severity="error",
                            timeout=30)
            raise
        finally:
            if self._exit_requested is not None:
                args, kwargs = self._exit_requested
                super().exit(*args, **kwargs)

    def exit(self, *args: Any, **kwargs: Any) -> None:
        """Stop the engine session first (flushed, stops resting), then leave."""
        worker = self._worker
        if worker is not None and worker.is_running and self._exit_requested is None:
            self._exit_requested = (args, kwargs)
            if self.runtime is not None:
                self.runtime.request_stop()
            else:
                worker.cancel()
            return
        super().exit(*args, **kwargs)
