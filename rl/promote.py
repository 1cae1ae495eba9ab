"""Gate a trained SAC checkpoint and, if it passes, promote it to the ``rl-sac`` strategy.

The checkpoint (``best.zip`` by default: the one the validation split chose) is exported to a
numpy policy file ``candidate.npz``; the gate (:mod:`rl.gate`) runs that file as an ``rl-sac``
strategy — the very object a live run would build — on the holdout of ``[rl] symbol``, against
the incumbent. On PROMOTE the candidate file is moved over ``rl-sac.npz`` (``os.replace``: atomic)
and the report is written next to it as ``rl-sac.gate.json``; perpdeck registers ``rl-sac`` at its
next start (``perpdeck strategies`` lists it; select it with ``--strategy rl-sac`` or the console's
strategy picker).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from engine.data import KlineFile
from rl.data import MarketData, TimeSplit
from rl.files import atomic_write_json
from rl.gate import GateReport, run_gate
from rl.policy import NAME, ActorNet, RlSacParams, RlSacStrategy, promoted_path

__all__ = ["gate_checkpoint"]


def gate_checkpoint(settings, *, model_path: Path | None = None, data: MarketData | None = None,
                    incumbent: Any = None, promote: bool = True) -> tuple[GateReport, Path | None]:
    """``(report, promoted policy path or None)``."""
    from rl.train import checkpoint_dir, env_config, export_policy, load_symbol_data

    d = checkpoint_dir(settings)
    src = Path(model_path) if model_path else d / "best.zip"
    if not src.exists():
        raise FileNotFoundError(f"no checkpoint at {src}: train first (perpdeck train)")
    data = data if data is not None else load_symbol_data(settings)
    if data.candles is None:
        raise ValueError("the market data must keep its candles for the gate")
    rl = settings.rl
    split = TimeSplit.of(len(data), rl.train_fraction, rl.validation_fraction)
    cfg = env_config(settings)
    cand_path = d / "candidate.npz"
    export_policy(src, cand_path, cfg, data.symbol, source=str(src))
    hold = KlineFile(data.symbol, Path(f"{data.symbol}-holdout"), tuple(data.candles[split.holdout_start:]))
    funding = {data.symbol: dict(data.funding)}
    params = RlSacParams(model=str(cand_path), entry_threshold=float(rl.entry_threshold))

    def candidate() -> RlSacStrategy:
        return RlSacStrategy(ActorNet.load(cand_path), params, funding=funding)

    report = run_gate(settings, [hold], funding, candidate=(NAME, candidate), incumbent=incumbent)
    out = None
    if promote and report.promote:
        out = promoted_path(settings)
        os.replace(cand_path, out)
        atomic_write_json(out.with_name("rl-sac.gate.json"), {**report.as_dict(), "checkpoint": str(src)})
    return report, out
