"""The ``rl-sac`` strategy: a promoted SAC policy trading through the engine like any other strategy.

The policy file
    Promotion exports the SAC actor of the chosen checkpoint to ``<checkpoint_dir>/rl-sac.npz``:
    its layer weights (float32), the observation layout (:data:`rl.env.OBS_NAMES`) and the env
    settings it was trained with (k, max notional, dead-band, costs, episode length, clip). The
    strategy loads **its own copy** of that file with numpy — never the object being trained, and
    without torch: the deterministic SAC action is ``tanh(mu(relu(… relu(W1·obs + b1) …)))``, which
    ``tests/rl/test_policy.py`` checks against stable-baselines3's ``predict(deterministic=True)``.
    This module imports numpy only, so registering the strategy keeps the engine torch-free.

Observation (the same as in training)
    The market block is :func:`rl.features.compute_features` over the symbol's last
    ``WARMUP + 1`` closed candles (every look-back of the feature set is then full, so the last row
    equals the row computed on the whole history; tested). ``funding_bps`` uses the funding history
    passed in (the gate passes the holdout's), else the default rate. The account block cannot come
    from the account — a strategy never reads it — so the strategy keeps a **virtual book**: the
    position it would hold if each target had filled at the decision close (same dead-band and
    taker fee + slippage as the env), its unrealised PnL, equity, drawdown and the progress through
    a virtual episode of ``episode_steps`` decisions (the book restarts flat after each, as the
    training episodes did).

Signals (how a target in [-1, 1] becomes engine signals)
    Every ``decision_every`` closed candles of a symbol (after the warm-up) the policy gives a
    target ``a``. Its zone is LONG when ``a >= entry_threshold``, SHORT when ``a <=
    -entry_threshold``, else FLAT. A ``Signal`` is emitted only when the zone *enters* LONG or
    SHORT (strength ``|a|``); staying in a zone emits nothing. FLAT emits nothing: the engine's
    signals open positions only, so a position is closed by the engine's own exits (stop loss,
    take-profits, break-even and its time limit, trailing) — the guard sizes and protects every
    entry as for any strategy, and an opposite signal while a position is open is denied
    ("position already open"). The policy therefore chooses entries and their direction; exits are
    the engine's. The promotion gate measures exactly this, through the engine's backtest.
"""

from __future__ import annotations

import json
import logging
import math
from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Mapping

import numpy as np

from engine.model import Candle, Direction, Signal
from rl.features import FEATURE_NAMES, FUNDING_INTERVAL_MS, WARMUP, compute_features
from rl.files import POLICY_FILE, policy_file, promoted_path

__all__ = ["NAME", "POLICY_FILE", "ActorNet", "RlSacParams", "RlSacStrategy", "register", "promoted_path"]

log = logging.getLogger(__name__)

NAME = "rl-sac"
_N_ACCOUNT = 5


class PolicyFileError(ValueError):
    """A policy file that is missing, unreadable or of another layout."""


class ActorNet:
    """The deterministic SAC actor as numpy: ``tanh(mu(relu-MLP(obs)))``."""

    def __init__(self, layers: list[tuple[np.ndarray, np.ndarray]], mu: tuple[np.ndarray, np.ndarray],
                 meta: dict[str, Any]) -> None:
        self.layers = [(np.asarray(w, np.float32), np.asarray(b, np.float32)) for w, b in layers]
        self.mu = (np.asarray(mu[0], np.float32), np.asarray(mu[1], np.float32))
        self.meta = dict(meta)
        n_in = self.layers[0][0].shape[1] if self.layers else self.mu[0].shape[1]
        self.n_obs = int(n_in)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Actions for one observation ``(n_obs,)`` or a batch ``(n, n_obs)``."""
        x = np.asarray(obs, np.float32)
        for w, b in self.layers:
            x = x @ w.T + b
            np.maximum(x, 0.0, out=x)
        w, b = self.mu
        return np.tanh(x @ w.T + b)

    def action(self, obs: np.ndarray) -> float:
        return float(self(obs).reshape(-1)[0])

    # -- files ----------------------------------------------------------------------------------------

    @classmethod
    def from_sb3(cls, model: Any, meta: dict[str, Any]) -> "ActorNet":
        """From a stable-baselines3 SAC model (imports nothing itself; the model brings torch)."""
        actor = model.policy.actor
        if getattr(actor, "use_sde", False):
            raise PolicyFileError("gSDE actors are not supported")
        layers = []
        acts = []
        for mod in actor.latent_pi:
            kind = type(mod).__name__
            if kind == "Linear":
                layers.append((mod.weight.detach().cpu().numpy(), mod.bias.detach().cpu().numpy()))
            else:
                acts.append(kind)
        if any(a != "ReLU" for a in acts):
            raise PolicyFileError(f"only ReLU actors can be exported, got {sorted(set(acts))}")
        mu = (actor.mu.weight.detach().cpu().numpy(), actor.mu.bias.detach().cpu().numpy())
        return cls(layers, mu, meta)

    def save(self, path: Path) -> None:
        """Write the ``.npz`` atomically (temp file in the same directory, then ``os.replace``)."""
        import io

        from rl.files import atomic_write_bytes

        arrays: dict[str, np.ndarray] = {"meta": np.frombuffer(json.dumps(self.meta).encode(), dtype=np.uint8)}
        for i, (w, b) in enumerate(self.layers):
            arrays[f"w{i}"] = w
            arrays[f"b{i}"] = b
        arrays["mu_w"], arrays["mu_b"] = self.mu
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write_bytes(Path(path), buf.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> "ActorNet":
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(bytes(z["meta"]).decode())
                layers = []
                i = 0
                while f"w{i}" in z:
                    layers.append((z[f"w{i}"], z[f"b{i}"]))
                    i += 1
                mu = (z["mu_w"], z["mu_b"])
        except FileNotFoundError:
            raise PolicyFileError(f"strategies.{NAME}.model: no policy file at {path}") from None
        except (OSError, KeyError, ValueError) as exc:
            raise PolicyFileError(f"strategies.{NAME}.model: {path} is not a policy file ({exc})") from None
        net = cls(layers, mu, meta)
        names = tuple(meta.get("obs_names", ()))
        if names[: len(FEATURE_NAMES)] != FEATURE_NAMES or net.n_obs != len(FEATURE_NAMES) + _N_ACCOUNT:
            raise PolicyFileError(f"strategies.{NAME}.model: {path} was trained on another observation layout")
        return net


@dataclass(frozen=True)
class RlSacParams:
    model: str = ""
    """Path of the promoted policy file (``.npz``); empty = ``<checkpoint_dir>/rl-sac.npz``."""
    entry_threshold: float = 0.25
    """A target >= this is a LONG zone, <= minus this a SHORT zone."""

    def __post_init__(self) -> None:
        if not 0 < self.entry_threshold <= 1:
            raise ValueError(f"entry_threshold must be in (0, 1], got {self.entry_threshold}")


class _Book:
    """Per-symbol state: the candle window and the virtual account the observation describes."""

    __slots__ = ("o", "h", "l", "c", "v", "ct", "seen", "qty", "entry", "wallet", "peak", "n", "zone")

    def __init__(self, size: int, e0: float) -> None:
        self.o: deque[float] = deque(maxlen=size)
        self.h: deque[float] = deque(maxlen=size)
        self.l: deque[float] = deque(maxlen=size)
        self.c: deque[float] = deque(maxlen=size)
        self.v: deque[float] = deque(maxlen=size)
        self.ct: deque[int] = deque(maxlen=size)
        self.seen = 0
        self.zone = 0
        self.restart(e0)

    def restart(self, e0: float) -> None:
        self.qty = 0.0
        self.entry = 0.0
        self.wallet = e0
        self.peak = e0
        self.n = 0


class RlSacStrategy:
    """``rl-sac``: see the module docstring."""

    def __init__(self, net: ActorNet, params: RlSacParams | None = None, *,
                 funding: Mapping[str, Mapping[int, Decimal]] | None = None) -> None:
        self.name = NAME
        self.params = params or RlSacParams()
        self.net = net
        env = net.meta.get("env", {})
        self.k = int(env.get("decision_every", 5))
        self.max_notional = float(env.get("max_notional", 10_000.0))
        self.deadband = float(env.get("deadband", 0.05))
        self.cost = float(env.get("taker_fee_rate", 0.0005)) + float(env.get("slippage_bps", 1.0)) / 1e4
        self.e0 = float(env.get("starting_balance", 10_000.0))
        self.episode_steps = int(env.get("episode_steps", 576))
        self.clip = float(env.get("obs_clip", 10.0))
        self.default_funding = float(env.get("default_funding_rate", 0.0001))
        self.funding_interval_ms = int(env.get("funding_interval_ms", FUNDING_INTERVAL_MS))
        self.funding = {k.upper(): dict(v) for k, v in (funding or {}).items()}
        self._books: dict[str, _Book] = {}
        self.decisions = 0
        self.signals = 0

    # -- the Strategy protocol ------------------------------------------------------------------------

    def on_candle(self, candle: Candle) -> Signal | None:
        if not candle.closed:
            return None
        b = self._books.get(candle.symbol)
        if b is None:
            b = self._books[candle.symbol] = _Book(WARMUP + 1, self.e0)
        b.o.append(float(candle.open))
        b.h.append(candle.high_f)
        b.l.append(candle.low_f)
        b.c.append(candle.close_f)
        b.v.append(float(candle.volume))
        b.ct.append(candle.close_time_ms)
        b.seen += 1
        if b.seen <= WARMUP or (b.seen - WARMUP - 1) % self.k:
            return None
        return self._decide(candle, b)

    # -- internals ------------------------------------------------------------------------------------

    def features(self, symbol: str) -> np.ndarray:
        """The market block of the observation for the symbol's latest candle."""
        b = self._books[symbol]
        data = SimpleNamespace(
            open=np.fromiter(b.o, np.float64), high=np.fromiter(b.h, np.float64), low=np.fromiter(b.l, np.float64),
            close=np.fromiter(b.c, np.float64), volume=np.fromiter(b.v, np.float64),
            close_time=np.fromiter(b.ct, np.int64), funding=self.funding.get(symbol, {}),
        )
        rows = compute_features(data, default_funding_rate=self.default_funding,
                                funding_interval_ms=self.funding_interval_ms, clip=self.clip)
        return rows[-1]

    def _decide(self, candle: Candle, b: _Book) -> Signal | None:
        c = candle.close_f
        if b.n >= self.episode_steps:
            b.restart(self.e0)
        eq = b.wallet + (c - b.entry) * b.qty
        if eq > b.peak:
            b.peak = eq
        dd = 1.0 - eq / b.peak if b.peak > 0 else 0.0
        clip = self.clip
        obs = np.empty(self.net.n_obs, np.float32)
        obs[: len(FEATURE_NAMES)] = self.features(candle.symbol)
        acc = (
            b.qty * c / self.max_notional,
            10.0 * (c - b.entry) * b.qty / eq if eq > 0 else 0.0,
            10.0 * dd,
            10.0 * math.log(eq / self.e0) if eq > 0 else -clip,
            b.n / self.episode_steps,
        )
        obs[len(FEATURE_NAMES):] = np.clip(acc, -clip, clip)
        a = self.net.action(obs)
        self.decisions += 1
        b.n += 1
        # the virtual fill: the env's dead-band, at this close, paying taker fee + slippage
        if abs(a - b.qty * c / self.max_notional) >= self.deadband:
            new_qty = a * self.max_notional / c
            delta = new_qty - b.qty
            if b.qty and (b.qty > 0) != (new_qty > 0) or new_qty == 0:
                b.wallet += (c - b.entry) * b.qty
                b.entry = c if new_qty else 0.0
            elif abs(new_qty) > abs(b.qty):
                b.entry = (b.entry * b.qty + c * delta) / new_qty
            else:
                b.wallet += (c - b.entry) * (b.qty - new_qty)
            b.wallet -= abs(delta) * c * self.cost
            b.qty = new_qty
            if b.qty and not b.entry:
                b.entry = c
        thr = self.params.entry_threshold
        zone = 1 if a >= thr else (-1 if a <= -thr else 0)
        entered = zone != 0 and zone != b.zone
        b.zone = zone
        if not entered:
            return None
        self.signals += 1
        direction = Direction.LONG if zone > 0 else Direction.SHORT
        return Signal(
            strategy=NAME,
            symbol=candle.symbol,
            direction=direction,
            strength=round(min(1.0, abs(a)), 4),
            reason=f"SAC target {a:+.2f} entered the {direction.value} zone (|target| >= {thr:g})",
            candle_open_time_ms=candle.open_time_ms,
            price=candle.close,
            time_ms=candle.close_time_ms,
        )


# -- registration (called by the composition root, never by engine/ itself) ------------------------


def build(raw: Mapping[str, Any] | None, default_model: Path, default_threshold: float = 0.25) -> RlSacStrategy:
    from engine.strategies.params import parse_params

    raw = dict(raw or {})
    raw.setdefault("entry_threshold", default_threshold)
    params = parse_params(RlSacParams, NAME, raw)
    path = Path(params.model).expanduser() if params.model else default_model
    return RlSacStrategy(ActorNet.load(path), params)


def register(settings: Any) -> bool:
    """Register ``rl-sac`` in the strategy registry when a promoted policy exists (or
    ``[strategies.rl-sac] model`` names one). Returns whether it was registered.

    Every registered strategy is built at start-up, so registering without a policy file would
    make every run fail; until a policy is promoted ``rl-sac`` is simply not offered.
    """
    from engine.strategies.base import StrategyError, register as reg

    default = promoted_path(settings)
    path = policy_file(settings, NAME)
    if not path.exists():
        return False
    threshold = float(settings.rl.entry_threshold)

    def factory(params: dict) -> RlSacStrategy:
        try:
            return build(params, default, threshold)
        except PolicyFileError as exc:
            raise StrategyError(str(exc)) from None

    reg(NAME, "promoted SAC policy (rl/): target position in [-1, 1] -> LONG/SHORT entries")(factory)
    return True
