"""Walk-forward Bayesian search of a strategy's parameters (note 003), adopted only through the gate.

* **Search space** — from the strategy's own frozen params dataclass (``strategy.params``, built
  with the configured ``[strategies.NAME]`` values): every int parameter ``d`` is searched in
  ``[max(1, d/3), 3d]`` (``[0, 60]`` when the default is 0), every positive float in
  ``[d/3, 3d]`` on a log scale, every bool in ``{true, false}``; text parameters (member lists)
  and non-positive floats stay as configured. A combination the dataclass refuses (e.g. ``fast >=
  slow``) is pruned.
* **Objective** — the Sharpe ratio of hourly equity of one run of the engine's own backtest
  (:func:`rl.gate.backtest`) over the window.
* **Walk-forward** — the data before the holdout (the same time split as the RL trainer:
  ``train_fraction + validation_fraction``) is cut into ``folds + 1`` equal time segments. Fold
  ``i`` runs an optuna TPE study (seeded) on segment ``i`` and scores its best parameters, and the
  current ones, on segment ``i + 1`` — out of sample. The candidate is then searched on the most
  recent segment (the latest rolling window) with the same budget.
* **Adoption** — the candidate and the current parameters go through :func:`rl.gate.run_gate` on
  the holdout, which no study has seen. On PROMOTE the parameters are written to
  ``<state_dir>/optimize/<NAME>.toml`` as a ``[strategies.NAME]`` table to paste into
  ``config.toml``; nothing is changed on its own.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Mapping, Sequence

from engine.data import KlineFile
from engine.strategies.base import StrategyError, build_strategy
from rl.files import atomic_write_bytes
from rl.gate import GateConfig, GateReport, backtest, holdout_files, run_gate

__all__ = ["search_space", "walk_forward", "FoldResult", "OptimizeResult", "optimize", "params_toml"]

log = logging.getLogger("perpdeck.rl")


@dataclass(frozen=True)
class Dim:
    name: str
    kind: str  # int | float | bool
    low: float = 0.0
    high: float = 0.0
    log: bool = False


def search_space(strategy_name: str, configured: Mapping[str, Any] | None = None) -> tuple[list[Dim], dict[str, Any]]:
    """``(dimensions, current parameter values)`` of a registered strategy."""
    strat = build_strategy(strategy_name, dict(configured or {}))
    params = getattr(strat, "params", None)
    if params is None or not dataclasses.is_dataclass(params):
        raise StrategyError(f"--strategy: {strategy_name} has no parameter dataclass to search")
    dims: list[Dim] = []
    current: dict[str, Any] = {}
    for f in dataclasses.fields(params):
        v = getattr(params, f.name)
        current[f.name] = v
        if isinstance(v, bool):
            dims.append(Dim(f.name, "bool"))
        elif isinstance(v, int):
            lo, hi = (0, 60) if v == 0 else (max(1, v // 3), max(v * 3, 2))
            dims.append(Dim(f.name, "int", lo, hi))
        elif isinstance(v, float) and v > 0:
            dims.append(Dim(f.name, "float", v / 3, v * 3, log=True))
    if not dims:
        raise StrategyError(f"--strategy: {strategy_name} has no numeric or boolean parameter to search")
    return dims, current


def _suggest(trial, dims: Sequence[Dim]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for d in dims:
        if d.kind == "bool":
            out[d.name] = trial.suggest_categorical(d.name, [True, False])
        elif d.kind == "int":
            out[d.name] = trial.suggest_int(d.name, int(d.low), int(d.high))
        else:
            out[d.name] = float(f"{trial.suggest_float(d.name, d.low, d.high, log=d.log):.6g}")
    return out


def _score(settings, files, funding, name: str, params: Mapping[str, Any]) -> float:
    m = backtest(settings, files, funding, name, build_strategy(name, dict(params)))
    return m.sharpe if math.isfinite(m.sharpe) else 0.0


def _study(settings, files, funding, name: str, dims, fixed: Mapping[str, Any], trials: int, seed: int):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial) -> float:
        params = {**fixed, **_suggest(trial, dims)}
        try:
            return _score(settings, files, funding, name, params)
        except StrategyError:
            raise optuna.TrialPruned() from None

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=trials, catch=())
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        raise StrategyError(f"--strategy: no valid parameter combination found for {name} in {trials} trials")
    best = {k: float(f"{v:.6g}") if isinstance(v, float) else v for k, v in study.best_trial.params.items()}
    return {**fixed, **best}, float(study.best_value), len(study.trials)  # the values the objective scored


def _segments(files: Sequence[KlineFile], n: int) -> list[list[KlineFile]]:
    lo = min(f.candles[0].open_time_ms for f in files)
    hi = max(f.candles[-1].close_time_ms for f in files) + 1
    edges = [lo + (hi - lo) * i // n for i in range(n + 1)]
    out = []
    for a, b in zip(edges, edges[1:]):
        seg = []
        for f in files:
            cs = tuple(c for c in f.candles if a <= c.open_time_ms < b)
            if cs:
                seg.append(KlineFile(f.symbol, Path(f.path), cs))
        out.append(seg)
    return out


@dataclass(frozen=True)
class FoldResult:
    fold: int
    train_sharpe: float
    test_sharpe: float
    current_test_sharpe: float
    params: dict[str, Any]


@dataclass(frozen=True)
class OptimizeResult:
    strategy: str
    current: dict[str, Any]
    candidate: dict[str, Any]
    folds: tuple[FoldResult, ...]
    trials: int
    report: GateReport
    written: Path | None


def walk_forward(settings, files: Sequence[KlineFile], funding, name: str, *, folds: int, trials: int,
                 seed: int) -> tuple[list[FoldResult], dict[str, Any], int]:
    """Run the folds and the final search on the latest segment: ``(folds, candidate params, trials)``."""
    if folds < 1 or trials < 1:
        raise ValueError("--folds and --trials must be at least 1")
    dims, current = search_space(name, settings.strategies.get(name, {}))
    searched = {d.name for d in dims}
    fixed = {k: v for k, v in current.items() if k not in searched}
    segs = _segments(files, folds + 1)
    if any(not s for s in segs):
        raise ValueError(f"the data before the holdout is too short for {folds} folds")
    results = []
    total = 0
    for i in range(folds):
        best, train_sharpe, n = _study(settings, segs[i], funding, name, dims, fixed, trials, seed + i)
        total += n
        test = _score(settings, segs[i + 1], funding, name, best)
        cur = _score(settings, segs[i + 1], funding, name, current)
        results.append(FoldResult(i + 1, train_sharpe, test, cur, best))
        log.info("optimize %s: fold %d: train Sharpe %.2f, next window %.2f (current params %.2f)", name, i + 1,
                 train_sharpe, test, cur)
    cand, _, n = _study(settings, segs[-1], funding, name, dims, fixed, trials, seed + folds)
    return results, cand, total + n


def params_toml(name: str, params: Mapping[str, Any]) -> str:
    def val(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = [f"# perpdeck optimize --strategy {name}: promoted by the gate; paste into config.toml",
             f"[strategies.{name}]"]
    lines += [f"{k} = {val(v)}" for k, v in params.items()]
    return "\n".join(lines) + "\n"


def optimize(settings, name: str, *, trials: int = 30, folds: int = 3, seed: int = 0,
             files: Sequence[KlineFile] | None = None, funding: Mapping[str, Mapping[int, Decimal]] | None = None,
             gate: GateConfig | None = None, out_dir: Path | None = None) -> OptimizeResult:
    if files is None:
        from engine.backtest import load_market_data

        files, funding = load_market_data(settings)
    funding = funding or {}
    rl = settings.rl
    before, hold, _cut = holdout_files(files, rl.train_fraction, rl.validation_fraction)
    if not before or not hold:
        raise ValueError("not enough data for a holdout")
    fold_results, cand, n = walk_forward(settings, before, funding, name, folds=folds, trials=trials, seed=seed)
    _dims, current = search_space(name, settings.strategies.get(name, {}))
    report = run_gate(settings, hold, funding,
                      candidate=(f"{name} optimised", lambda: build_strategy(name, dict(cand))),
                      incumbent=(f"{name} current", lambda: build_strategy(name, dict(current))), config=gate)
    written = None
    if report.promote:
        written = Path(out_dir or Path(settings.state_dir) / "optimize") / f"{name}.toml"
        atomic_write_bytes(written, params_toml(name, cand).encode())
    return OptimizeResult(name, current, cand, tuple(fold_results), n, report, written)
