"""``perpdeck train`` and ``perpdeck optimize`` (called by ``engine.cli``; output is log lines on
stderr and the gate table on stdout)."""

from __future__ import annotations

import logging
import sys
import time

from rl.worker import TrainerWorker

__all__ = ["train_command", "optimize_command"]

log = logging.getLogger("perpdeck.rl")
EXIT_OK, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 2, 130


def _logging() -> None:
    root = logging.getLogger()
    if not any(getattr(h, "_perpdeck_rl", False) for h in root.handlers):
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        h._perpdeck_rl = True  # type: ignore[attr-defined]
        root.addHandler(h)
    root.setLevel(logging.INFO)
    logging.getLogger("engine").setLevel(logging.ERROR)  # the gate's backtests would log every halt


def _fail(msg: str) -> int:
    print(f"perpdeck: {msg}", file=sys.stderr)
    return EXIT_BAD_INPUT


def train_command(settings, *, steps: int | None = None, resume: bool = False, seed: int | None = None,
                  gate: bool = True, gate_only: bool = False, progress_every_s: float = 10.0) -> int:
    """Train in the foreground (the same worker thread the console uses), then gate the best checkpoint."""
    from rl.gate import format_report
    from rl.promote import gate_checkpoint
    from rl.train import fmt_eta

    _logging()
    upd = {}
    if steps is not None:
        if steps < 1:
            return _fail(f"--steps: expected a whole number >= 1, got {steps}")
        upd["total_steps"] = steps
    if seed is not None:
        if seed < 0:
            return _fail(f"--seed: expected a whole number >= 0, got {seed}")
        upd["seed"] = seed
    if upd:
        settings = settings.model_copy(update={"rl": settings.rl.model_copy(update=upd)})
    if not gate_only:
        worker = TrainerWorker(settings, resume_first=resume)
        worker.start()
        try:
            while not worker.join(progress_every_s):
                v = worker.view()
                if v.state == "running":
                    log.info("rl: step %s/%s  %s steps/s  episode reward %s  actor %s critic %s ent %s  best val %s  ETA %s",
                             f"{v.steps:,}", f"{v.total_steps:,}", _f(v.steps_per_s, ".0f"), _f(v.episode_reward, ".3f"),
                             _f(v.actor_loss, ".3f"), _f(v.critic_loss, ".4f"), _f(v.ent_coef, ".4f"),
                             _f(v.best_val_return_pct, "+.2f", "%"), fmt_eta(v.eta_s))
        except KeyboardInterrupt:
            log.info("rl: stopping (Ctrl-C): saving a checkpoint; resume with perpdeck train --resume")
            worker.stop()
            try:
                while not worker.join(1.0):
                    pass
            except KeyboardInterrupt:
                print("perpdeck: forced exit (no checkpoint)", file=sys.stderr)
                return EXIT_INTERRUPTED
        v = worker.view()
        if v.state == "failed":
            return _fail(f"training failed: {v.detail}")
        print(f"training {v.state} at step {v.steps:,} of {v.total_steps:,} on {v.device}; "
              f"{_f(v.steps_per_s, '.0f')} steps/s; best validation return {_f(v.best_val_return_pct, '+.2f', '%')}; "
              f"checkpoint {v.checkpoint}")
        if v.state != "finished":
            return EXIT_INTERRUPTED if v.state == "stopped" else EXIT_OK
    if not gate:
        return EXIT_OK
    t0 = time.monotonic()
    try:
        report, out = gate_checkpoint(settings)
    except (FileNotFoundError, ValueError) as exc:
        return _fail(str(exc))
    print(format_report(report))
    print(f"promoted: {out} (strategy rl-sac is offered from the next start)" if out else
          "not promoted: the current strategy stays")
    log.info("rl: gate took %.1f s", time.monotonic() - t0)
    return EXIT_OK


def optimize_command(settings, *, strategy: str, trials: int = 30, folds: int = 3, seed: int = 0) -> int:
    from engine.data import DataError
    from engine.strategies.base import StrategyError
    from rl.gate import format_report
    from rl.optimize import optimize

    _logging()
    if trials < 1:
        return _fail(f"--trials: expected a whole number >= 1, got {trials}")
    if folds < 1:
        return _fail(f"--folds: expected a whole number >= 1, got {folds}")
    t0 = time.monotonic()
    try:
        res = optimize(settings, strategy, trials=trials, folds=folds, seed=seed)
    except (StrategyError, DataError, ValueError) as exc:
        return _fail(str(exc))
    print(f"walk-forward for {strategy}: {res.trials} trials in {time.monotonic() - t0:.0f} s")
    print(f"  {'fold':<5} {'train Sharpe':>12} {'next window':>12} {'current params':>15}")
    for f in res.folds:
        print(f"  {f.fold:<5} {f.train_sharpe:>12.2f} {f.test_sharpe:>12.2f} {f.current_test_sharpe:>15.2f}")
    changed = {k: v for k, v in res.candidate.items() if res.current.get(k) != v}
    print("candidate parameters: " + (", ".join(f"{k}={v}" for k, v in changed.items()) or "(unchanged)"))
    print(format_report(res.report))
    print(f"promoted: parameters written to {res.written} — paste the [strategies.{strategy}] table into config.toml"
          if res.written else "not promoted: keep the current parameters")
    return EXIT_OK


def _f(x, fmt: str, unit: str = "") -> str:
    return "n/a" if x is None else f"{format(x, fmt)}{unit}"
