"""SAC training of :class:`rl.env.FuturesTargetEnv` on the train split, with checkpoint choice on
the validation split.

* **Data.** One symbol (``[rl] symbol``) from ``sim.data_files`` (else the bundled sample), split
  by time (:class:`rl.data.TimeSplit`): train = the oldest ``train_fraction``, validation = the
  next ``validation_fraction`` (used only to pick the checkpoint), holdout = the rest, which
  neither training nor checkpoint choice ever reads (only :mod:`rl.gate` does).
* **Learner.** stable-baselines3 SAC, ``MlpPolicy`` with ``net_arch``, seeded (``seed``). The
  device is chosen explicitly (:func:`pick_device`) and reported as chosen. On CPU torch is held
  to one intra-op and one inter-op thread so the engine keeps its core.
* **Evaluation.** Every ``eval_every_steps`` steps the current actor makes one deterministic pass
  over the whole validation period (:func:`evaluate`); the best return so far is kept as
  ``best.zip``.
* **Checkpoints** (in ``checkpoint_dir``, default ``<state_dir>/rl``), all written to a temp file in
  the same directory and then ``os.replace``d: ``last.zip`` + ``last.json`` (model with its step
  count and optimiser state; meta: steps, seed, best validation return), ``best.zip`` +
  ``best.json``, and at every stop or finish ``last_buffer.pkl`` (the replay buffer). Resume loads
  ``last.zip`` and, when its step count matches, the buffer; a checkpoint without a matching buffer
  (e.g. after a crash) resumes with an empty buffer and re-collects ``learning_starts`` steps
  before training again.
* **Quiet.** No progress bar and nothing printed: SB3 gets a logger with no outputs, progress goes
  to ``on_progress`` (the worker's training view) and to ``logging``.
* **Sharing the process.** The training step runs in a thread of the console process. After every
  environment step the callback sleeps ``yield_s`` (0 by default: ``time.sleep(0)`` just releases
  the GIL), so the event loop waits for the GIL at most one SAC step.
"""

from __future__ import annotations

import io
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from rl.data import MarketData, TimeSplit, load_market_data, sample_market_data
from rl.env import OBS_NAMES, EnvConfig, FuturesTargetEnv
from rl.features import WARMUP
from rl.files import atomic_write_bytes, atomic_write_json, read_json
from rl.policy import ActorNet, promoted_path

__all__ = [
    "Trainer", "TrainResult", "EvalResult", "pick_device", "limit_cpu_threads", "load_symbol_data",
    "env_config", "evaluate", "checkpoint_dir", "export_policy",
]

log = logging.getLogger("perpdeck.rl")


# -- data, env, device ----------------------------------------------------------------------------


def load_symbol_data(settings) -> MarketData:
    """``[rl] symbol``'s klines from ``sim.data_files`` (and its funding from ``sim.funding_files``),
    else the bundled sample."""
    from engine.data import symbol_from_filename

    sym = settings.rl.symbol
    files = [Path(p) for p in settings.sim.data_files if symbol_from_filename(Path(p)) == sym]
    if not settings.sim.data_files:
        return sample_market_data(sym)
    if not files:
        raise ValueError(f"rl.symbol: no file for {sym} among sim.data_files")
    if len(files) > 1:
        raise ValueError(f"rl.symbol: {len(files)} files for {sym} in sim.data_files; name one period")
    return load_market_data(files[0], [Path(p) for p in settings.sim.funding_files], symbol=sym)


def env_config(settings, **overrides: Any) -> EnvConfig:
    rl = settings.rl
    base = dict(decision_every=rl.decision_every, episode_steps=rl.episode_steps, max_notional=rl.max_notional,
                deadband=rl.deadband, drawdown_penalty=rl.drawdown_penalty, max_drawdown=rl.max_drawdown)
    base.update(overrides)
    return EnvConfig.from_settings(settings, **base)


def checkpoint_dir(settings) -> Path:
    return promoted_path(settings).parent


def pick_device(choice: str) -> tuple[str, str]:
    """``(torch device, label)`` for ``rl.device``: auto = CUDA when available, else CPU."""
    import torch

    if choice not in ("auto", "cpu", "cuda"):
        raise ValueError(f"rl.device: expected auto, cpu or cuda, got {choice!r}")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("rl.device: cuda was asked for but torch sees no CUDA device")
    if choice in ("auto", "cuda") and torch.cuda.is_available():
        return "cuda:0", f"cuda:0 ({torch.cuda.get_device_name(0)})"
    return "cpu", "cpu"


def limit_cpu_threads() -> None:
    """One intra-op and one inter-op torch thread (the engine keeps its core)."""
    import torch

    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # only settable before the first parallel work; already 1 or fixed
        pass


# -- evaluation -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalResult:
    return_pct: float
    max_drawdown_pct: float
    steps: int
    orders: int
    fees: float

    def as_dict(self) -> dict[str, float]:
        return {"return_pct": self.return_pct, "max_drawdown_pct": self.max_drawdown_pct, "eval_steps": self.steps,
                "orders": self.orders, "fees": self.fees}


def evaluate(act: Callable[[np.ndarray], float], data: MarketData, cfg: EnvConfig, *, context: int = WARMUP) -> EvalResult:
    """One deterministic pass of ``act`` over ``data`` from candle ``context`` (earlier candles only
    warm the features) to the end, booked by the env; no early end except liquidation/bankruptcy."""
    k = cfg.decision_every
    start = min(context, len(data) - 1 - k)
    steps = (len(data) - 1 - start) // k
    if steps < 1:
        raise ValueError(f"{len(data)} candles cannot hold one decision after {context} of warm-up")
    env = FuturesTargetEnv(data, cfg.with_(episode_steps=steps, max_drawdown=1.0, warmup=0))
    obs, _ = env.reset(options={"start": start})
    e0 = float(cfg.starting_balance)
    peak = e0
    mdd = 0.0
    n = 0
    eq = e0
    done = False
    while not done:
        obs, _, term, trunc, info = env.step(np.array([act(obs)], np.float32))
        eq = info["equity"]
        peak = max(peak, eq)
        mdd = max(mdd, 1.0 - eq / peak if peak > 0 else 1.0)
        n += 1
        done = term or trunc
    return EvalResult(100.0 * (eq / e0 - 1.0), 100.0 * mdd, n, env.orders_filled, env.fees_paid)


def policy_meta(cfg: EnvConfig, symbol: str, **extra: Any) -> dict[str, Any]:
    env = {
        "decision_every": cfg.decision_every, "episode_steps": cfg.episode_steps, "max_notional": cfg.max_notional,
        "deadband": cfg.deadband, "taker_fee_rate": float(cfg.taker_fee_rate), "slippage_bps": float(cfg.slippage_bps),
        "default_funding_rate": float(cfg.default_funding_rate), "funding_interval_ms": cfg.funding_interval_ms,
        "starting_balance": float(cfg.starting_balance), "obs_clip": cfg.obs_clip,
    }
    return {"obs_names": list(OBS_NAMES), "env": env, "symbol": symbol, **extra}


def export_policy(model_path: Path, out: Path, cfg: EnvConfig, symbol: str, **extra: Any) -> ActorNet:
    """Load a SAC checkpoint (on CPU) and write its actor as the numpy policy file ``out``."""
    from stable_baselines3 import SAC

    model = SAC.load(str(model_path), device="cpu")
    net = ActorNet.from_sb3(model, policy_meta(cfg, symbol, **extra))
    net.save(out)
    return net


# -- the trainer ----------------------------------------------------------------------------------


@dataclass
class TrainResult:
    state: str  # finished | stopped
    steps: int
    total_steps: int
    best_val_return_pct: float | None
    best_path: Path | None
    last_path: Path
    device: str
    steps_per_s: float | None = None
    evals: list[dict[str, Any]] = field(default_factory=list)


def _save_model(model, path: Path) -> None:
    buf = io.BytesIO()
    model.save(buf)
    atomic_write_bytes(path, buf.getvalue())


def _save_buffer(model, path: Path) -> None:
    buf = io.BytesIO()
    model.save_replay_buffer(buf)
    atomic_write_bytes(path, buf.getvalue())


class Trainer:
    """Trains SAC; see the module docstring. ``run()`` blocks; ``stop_event`` ends it after the
    current step with a checkpoint."""

    def __init__(self, settings, *, data: MarketData | None = None, stop_event: threading.Event | None = None,
                 on_progress: Callable[[dict[str, Any]], None] | None = None, total_steps: int | None = None,
                 seed: int | None = None, report_every_s: float = 0.5, yield_s: float = 0.0,
                 env_overrides: dict[str, Any] | None = None, sac_overrides: dict[str, Any] | None = None) -> None:
        rl = settings.rl
        self.settings = settings
        self.rl = rl
        self.total_steps = int(total_steps if total_steps is not None else rl.total_steps)
        self.seed = int(seed if seed is not None else rl.seed)
        self.stop_event = stop_event or threading.Event()
        self.on_progress = on_progress or (lambda _p: None)
        self.report_every_s = report_every_s
        self.yield_s = yield_s
        self.dir = checkpoint_dir(settings)
        self.cfg = env_config(settings, **(env_overrides or {}))
        self.sac_overrides = dict(sac_overrides or {})
        self._data = data
        self.device = ""
        self.device_label = ""

    # paths
    @property
    def last_path(self) -> Path:
        return self.dir / "last.zip"

    @property
    def best_path(self) -> Path:
        return self.dir / "best.zip"

    @property
    def buffer_path(self) -> Path:
        return self.dir / "last_buffer.pkl"

    def data(self) -> MarketData:
        if self._data is None:
            self._data = load_symbol_data(self.settings)
        return self._data

    def split(self) -> TimeSplit:
        return TimeSplit.of(len(self.data()), self.rl.train_fraction, self.rl.validation_fraction)

    def run(self, *, resume: bool = True) -> TrainResult:
        import torch
        from stable_baselines3 import SAC
        from stable_baselines3.common.callbacks import BaseCallback
        from stable_baselines3.common.logger import configure
        from stable_baselines3.common.monitor import Monitor

        rl = self.rl
        self.device, self.device_label = pick_device(rl.device)
        if self.device == "cpu":
            limit_cpu_threads()
        data = self.data()
        split = self.split()
        train = split.train(data)
        val = split.validation(data, context=WARMUP)
        env = Monitor(FuturesTargetEnv(train, self.cfg))
        meta = read_json(self.dir / "last.json") if resume else None
        model = None
        if resume and meta is not None and self.last_path.exists():
            model = SAC.load(str(self.last_path), env=env, device=self.device)
            model.set_random_seed(self.seed + int(model.num_timesteps))
            if meta.get("buffer_steps") == int(model.num_timesteps) and self.buffer_path.exists():
                model.load_replay_buffer(str(self.buffer_path))
            else:
                model.learning_starts = int(model.num_timesteps) + rl.learning_starts
            log.info("rl: resumed from %s at step %d", self.last_path, model.num_timesteps)
        if model is None:
            meta = {}
            kwargs: dict[str, Any] = dict(
                learning_rate=rl.learning_rate, buffer_size=min(rl.buffer_size, max(self.total_steps, 1)),
                learning_starts=rl.learning_starts, batch_size=rl.batch_size, gamma=rl.gamma,
                train_freq=rl.train_freq, gradient_steps=rl.gradient_steps,
                policy_kwargs={"net_arch": list(rl.net_arch)},
            )
            kwargs.update(self.sac_overrides)
            model = SAC("MlpPolicy", env, seed=self.seed, device=self.device, verbose=0, **kwargs)
        model.set_logger(configure(None, []))  # no stdout, no files: progress goes to on_progress/logging
        best = meta.get("best_val_return_pct")
        evals: list[dict[str, Any]] = list(meta.get("evals", []))[-50:]
        trainer = self
        start_steps = int(model.num_timesteps)
        t0 = time.monotonic()
        last_losses: dict[str, float | None] = {"actor_loss": None, "critic_loss": None, "ent_coef": None}
        self.on_progress({"state": "running", "device": self.device_label, "steps": start_steps,
                          "total_steps": self.total_steps, "best_val_return_pct": best,
                          "checkpoint": str(self.last_path) if self.last_path.exists() else "",
                          "detail": f"training {rl.symbol} on {self.device_label} from step {start_steps:,}"})

        def do_eval(m) -> dict[str, Any]:
            nonlocal best
            net = ActorNet.from_sb3(m, {})
            res = evaluate(net.action, val, self.cfg)
            rec = {"steps": int(m.num_timesteps), **res.as_dict()}
            evals.append(rec)
            improved = best is None or res.return_pct > best
            if improved:
                best = res.return_pct
                _save_model(m, self.best_path)
                atomic_write_json(self.dir / "best.json", {**rec, "seed": self.seed, "symbol": rl.symbol})
            log.info("rl: step %d validation return %.2f%% (max drawdown %.2f%%, %d orders)%s", m.num_timesteps,
                     res.return_pct, res.max_drawdown_pct, res.orders, " — new best" if improved else "")
            return rec

        def save_last(m, with_buffer: bool) -> None:
            _save_model(m, self.last_path)
            if with_buffer:
                _save_buffer(m, self.buffer_path)
            atomic_write_json(self.dir / "last.json", {
                "steps": int(m.num_timesteps), "total_steps": self.total_steps, "seed": self.seed,
                "symbol": rl.symbol, "best_val_return_pct": best, "evals": evals[-50:],
                "buffer_steps": int(m.num_timesteps) if with_buffer else None, "device": self.device_label,
            })

        class Progress(BaseCallback):
            def __init__(self) -> None:
                super().__init__(verbose=0)
                self.next_report = 0.0
                self.next_eval = (start_steps // rl.eval_every_steps + 1) * rl.eval_every_steps
                self.sps: float | None = None

            def _on_step(self) -> bool:
                m = self.model
                n = int(m.num_timesteps)
                vals = m.logger.name_to_value
                for key in last_losses:
                    v = vals.get(f"train/{key}")
                    if v is not None:
                        last_losses[key] = float(v)
                if n >= self.next_eval:
                    self.next_eval += rl.eval_every_steps
                    do_eval(m)
                    save_last(m, with_buffer=False)
                    self.report(n, m, detail=f"step {n}: checkpoint saved")
                now = time.monotonic()
                if now >= self.next_report:
                    self.next_report = now + trainer.report_every_s
                    self.report(n, m)
                if trainer.stop_event.is_set():
                    return False
                time.sleep(trainer.yield_s)  # releases the GIL: the event loop never waits more than a step
                return True

            def report(self, n: int, m, detail: str = "") -> None:
                dt = time.monotonic() - t0
                done = n - start_steps
                self.sps = done / dt if dt > 0 and done > 0 else None
                eps = [e["r"] for e in m_ep_infos(m)]
                trainer.on_progress({
                    "state": "running", "steps": n, "total_steps": trainer.total_steps, "steps_per_s": self.sps,
                    "eta_s": (trainer.total_steps - n) / self.sps if self.sps else None,
                    "episode_reward": float(np.mean(eps)) if eps else None, **last_losses,
                    "best_val_return_pct": best,
                    "checkpoint": str(trainer.last_path) if trainer.last_path.exists() else "",
                    **({"detail": detail} if detail else {}),
                })

        cb = Progress()
        remaining = self.total_steps - start_steps
        if remaining > 0 and not self.stop_event.is_set():
            log.info("rl: training SAC on %s (%d train candles, %s) on %s: steps %d -> %d, seed %d", rl.symbol,
                     len(train), _period(train), self.device_label, start_steps, self.total_steps, self.seed)
            model.learn(total_timesteps=remaining, callback=cb, reset_num_timesteps=False, progress_bar=False,
                        log_interval=10**9)
        n = int(model.num_timesteps)
        if not evals or evals[-1]["steps"] != n:
            do_eval(model)
        save_last(model, with_buffer=True)
        state = "finished" if n >= self.total_steps else "stopped"
        cb.report(n, model, detail=f"{state} at step {n}")
        log.info("rl: %s at step %d of %d; best validation return %s; checkpoint %s", state, n, self.total_steps,
                 "n/a" if best is None else f"{best:.2f}%", self.last_path)
        env.close()
        del model
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()
        return TrainResult(state, n, self.total_steps, best, self.best_path if self.best_path.exists() else None,
                           self.last_path, self.device_label, cb.sps, evals)


def m_ep_infos(model) -> list[dict]:
    buf = getattr(model, "ep_info_buffer", None)
    return list(buf)[-20:] if buf else []


def _period(d: MarketData) -> str:
    import datetime as dt

    f = lambda ms: dt.datetime.fromtimestamp(int(ms) / 1000, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M")  # noqa: E731
    return f"{f(d.open_time[0])} → {f(d.close_time[-1])} UTC"


def fmt_eta(s: float | None) -> str:
    if s is None or not math.isfinite(s):
        return "?"
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
