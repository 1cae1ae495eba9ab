"""The background RL trainer inside the console process: ``engine.facade.TrainingControl``.

``TrainerWorker.start()`` runs :class:`rl.train.Trainer` in one daemon thread (resuming from the
last checkpoint when there is one); ``stop()`` asks it to stop after the current step — the thread
then saves a checkpoint (model, step count, replay buffer) and ends, so a later ``start()`` resumes
where it stopped. Neither call blocks the caller (the console's event loop).

``view()`` returns the latest frozen :class:`engine.facade.TrainingView`. The training thread
builds a new view and publishes it by rebinding one attribute under a lock; ``view()`` only reads
that reference, so it is O(1) and safe to call ten times a second from another thread. Nothing
here prints: progress goes to the view and to ``logging`` (the console's log pane / log file).

Importing this module imports neither torch nor stable-baselines3: the thread imports them when it
starts, so attaching a worker costs the console nothing until training is asked for.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Any, Callable

from engine.facade import TrainingView

__all__ = ["TrainerWorker", "build_trainer", "rl_available"]

log = logging.getLogger("perpdeck.rl")


def rl_available() -> bool:
    """Whether the rl extra (torch, stable-baselines3, gymnasium) is installed — without importing it."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("torch", "stable_baselines3", "gymnasium"))


class TrainerWorker:
    """``TrainingControl`` over :class:`rl.train.Trainer` in a background thread."""

    def __init__(self, settings, *, trainer_factory: Callable[..., Any] | None = None,
                 on_finished: Callable[[Any], None] | None = None, resume_first: bool = True) -> None:
        self.settings = settings
        self._factory = trainer_factory
        self._on_finished = on_finished
        self._resume = resume_first  # later starts always resume
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._view = TrainingView(state="idle", total_steps=int(settings.rl.total_steps))
        self.result: Any = None
        self.error: BaseException | None = None

    # -- TrainingControl ------------------------------------------------------------------------------

    def view(self) -> TrainingView:
        return self._view

    def start(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                if self._view.state == "stopping":
                    log.info("rl: trainer is still stopping; start again once it has stopped")
                return
            self._stop = threading.Event()
            self.error = None
            self._publish(state="starting", detail="starting (loading data and torch)")
            self._thread = threading.Thread(target=self._run, name="rl-trainer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                return
            self._stop.set()
            self._publish(state="stopping", detail="stopping after the current step (saving a checkpoint)")

    # -- for the CLI and tests --------------------------------------------------------------------------

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread; True when it has ended."""
        t = self._thread
        if t is None:
            return True
        t.join(timeout)
        return not t.is_alive()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- internals --------------------------------------------------------------------------------------

    def _publish(self, **changes: Any) -> None:
        """Rebind the view (callers may hold ``_lock``; the training thread takes it here)."""
        known = {f.name for f in dataclasses.fields(TrainingView)}
        v = dataclasses.replace(self._view, **{k: v for k, v in changes.items() if k in known})
        self._view = v

    def _progress(self, p: dict[str, Any]) -> None:
        with self._lock:
            if self._stop.is_set() and p.get("state") == "running":
                p = {**p, "state": "stopping"}
            self._publish(**p)

    def _run(self) -> None:
        try:
            if self._factory is not None:
                trainer = self._factory(self.settings, stop_event=self._stop, on_progress=self._progress)
            else:
                from rl.train import Trainer

                trainer = Trainer(self.settings, stop_event=self._stop, on_progress=self._progress)
            resume, self._resume = self._resume, True
            result = trainer.run(resume=resume)
            self.result = result
            with self._lock:
                self._publish(state=result.state, steps=result.steps, best_val_return_pct=result.best_val_return_pct,
                              checkpoint=str(result.last_path),
                              detail=(f"{result.state} at step {result.steps:,}; best validation return "
                                      + ("n/a" if result.best_val_return_pct is None
                                         else f"{result.best_val_return_pct:+.2f}%")))
            if self._on_finished is not None:
                try:
                    self._on_finished(result)
                except Exception as exc:  # noqa: BLE001 - the training itself succeeded
                    log.exception("rl: after-training step failed")
                    with self._lock:
                        self._publish(detail=f"gate failed: {type(exc).__name__}: {exc}"[:200])
        except BaseException as exc:  # noqa: BLE001 - reported in the view, never raised into the console
            self.error = exc
            log.exception("rl: trainer failed")
            with self._lock:
                self._publish(state="failed", detail=f"{type(exc).__name__}: {exc}"[:200])


def gate_when_finished(settings) -> Callable[[Any], None]:
    """After a run reaches ``total_steps``: gate the best checkpoint and promote it if it passes
    (the table and the decision go to the log)."""

    def run(result: Any) -> None:
        if getattr(result, "state", "") != "finished":
            return
        from rl.gate import format_report
        from rl.promote import gate_checkpoint

        report, out = gate_checkpoint(settings)
        for line in format_report(report).splitlines():
            log.info("rl gate: %s", line)
        if out is not None:
            log.info("rl: promoted to %s; rl-sac is offered at the next start", out)

    return run


def build_trainer(settings) -> TrainerWorker:
    """The console's trainer (the composition root calls this when ``[rl] enabled`` and the rl extra
    is installed). It resumes from the last checkpoint and gates the result when it finishes."""
    worker = TrainerWorker(settings)
    gate = gate_when_finished(settings)

    def finished(result: Any) -> None:
        with worker._lock:
            worker._publish(detail="finished; running the promotion gate on the holdout")
        gate(result)
        with worker._lock:
            worker._publish(detail="finished; gate report in the log")

    worker._on_finished = finished
    return worker
