"""``FuturesTargetEnv``: a gymnasium environment over historical 1m klines of one USDⓈ-M perpetual,
booked with the sim exchange's own fill, fee, margin, funding and liquidation model.

Action
    ``Box(-1, 1, (1,), float32)``: the target position as a fraction of ``max_notional`` USDT
    (negative = short), decided after every ``decision_every`` (k) closed candles and held in
    between. Dead-band: when ``|target − current fraction| < deadband`` (current fraction = position
    notional at the decision candle's close / ``max_notional``) nothing is sent. Otherwise the target
    quantity ``trunc(target · max_notional / close / step)`` steps is reached with one MARKET order
    for the difference (capped at the MARKET_LOT_SIZE max qty); an order that only shrinks the
    position is sent ``reduceOnly`` (exempt from MIN_NOTIONAL and the margin check, as on Binance),
    any other order below min qty / MIN_NOTIONAL is not sent (``ORDER_SKIPPED``), and one the sim
    would refuse (-2019 margin insufficient, -2027 above the leverage bracket's cap) is refused here
    too (``ORDER_REJECTED``; the position stays as it was).

Fill timing (what the sim does)
    The decision is taken when candle ``t`` has closed, and the order goes to the exchange before
    candle ``t+1`` is fed. ``SimExchange`` fills a MARKET order at once as taker at its *last
    contract price*, which after ``on_candle(t)`` is ``close[t]``, moved against the taker by
    ``slippage_bps`` and rounded to the tick (BUY up, SELL down) — exactly as the perpdeck backtest
    enters "at the candle's close". This env therefore fills at that price too, so that a policy is
    trained on the very fills it gets in sim mode. On Binance 1m data ``close[t]`` is the last
    trade before ``open[t+1]``; on the bundled sample they differ in ~half the candles by ~one
    tick (mean |open[t+1] − close[t]| < 0.31 bp on BTC/ETH/SOL), well under the configured
    slippage. The observation at ``t`` uses candles ``≤ t`` only (:mod:`rl.features`), so no
    later price is seen before deciding.

Costs, reproduced from ``engine/exchange/sim/matching.py`` (one-way mode, one symbol, no resting
orders) in float64, with every booked amount rounded to 8 decimals as the sim's ``_q8`` does:
    * fill price: ``SymbolRules.round_price_up/down(close · (1 ± slippage_bps/10⁴))`` — the sim's own
      rounding, precomputed once per distinct close (Decimal, exact);
    * commission ``price · qty · taker_fee_rate``; realised PnL on the closed part; new entry price
      as ``SimExchange._project`` (average on increase, fill price on flip); isolated wallet bookkeeping;
    * margin check ``SimExchange._check_fill_margin`` (cross: wallet + uPnL − initial margin; isolated:
      wallet − isolated wallet; plus realised PnL, minus fee; and the bracket cap at the leverage);
    * funding at every multiple of ``funding_interval_ms`` (00/08/16 UTC) crossed by the clock, booked
      when the first candle at or after the instant is fed, at the previous candle's close (the sim's
      mark then), ``−qty · mark · rate``; the rate from the symbol's history within ±60 s of the
      instant, else ``default_funding_rate`` (``SimExchange._rate_at``); none while flat;
    * liquidation with the sim's one-position liquidation price (brackets, cross wallet or isolated
      wallet): a long is liquidated in the first candle whose low reaches it (a short: high), at the
      liquidation price rounded against the trader (cross: the open instead when the candle gapped
      through it) with the sim's clearance fee (isolated: the rest of the isolated wallet; cross: the
      maintenance margin). The episode then terminates.
    ``tests/rl/test_sim_equivalence.py`` drives a real ``SimExchange`` with the same orders on the same
    candles and checks the equity (its ``totalMarginBalance``) at every decision to 5e-8 USDT, and
    that it refuses exactly the orders refused or not sent here. Scope: one symbol, one-way mode,
    MARKET orders only (no resting or algo orders, so nothing else can fire inside a candle).

Observation
    ``Box(-obs_clip, obs_clip, (len(OBS_NAMES),), float32)``: the market features of candle ``t``
    (:data:`rl.features.FEATURE_NAMES`, precomputed once, causal) followed by the account:
    ``position`` (position notional at close / max_notional), ``upnl`` (10 · unrealised PnL /
    equity), ``drawdown`` (10 · drawdown from the episode's peak equity), ``equity_ret``
    (10 · log(equity / starting equity)) and ``progress`` (steps taken / episode_steps).

Reward
    ``reward_scale · (log(E_t / E_{t−1}) − drawdown_penalty · max(0, DD_t − DD_{t−1}))`` with ``E``
    the equity (wallet + unrealised PnL at the close) after the k candles of the step — so net of
    fees, slippage and funding — and ``DD`` the drawdown from the episode's peak step-end equity.
    A non-positive equity counts as ``1e-9 ·`` the starting balance in the log.

Episodes
    Start at a uniformly random candle ``s ≥ warmup`` (``reset(seed=…)`` reproducible;
    ``reset(options={"start": s})`` pins it), flat, with ``starting_balance``. Truncated after
    ``episode_steps`` steps; terminated early on liquidation, on step-end drawdown ≥
    ``max_drawdown``, or on non-positive equity. ``info["reason"]`` says which.

``step()`` does no pandas and allocates one small array and dict: a few list lookups and float math
(candles between decisions are skipped with precomputed k-candle low/high extremes; candles with a
funding instant are handled one by one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from decimal import Decimal
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from numpy.lib.stride_tricks import sliding_window_view

from engine.exchange.filters import SymbolRules, fmt
from engine.exchange.sim.matching import load_default_rules
from rl.data import MarketData
from rl.features import FEATURE_NAMES, FUNDING_INTERVAL_MS, WARMUP, compute_features, rates_at

__all__ = [
    "EnvConfig", "FuturesTargetEnv", "OBS_NAMES", "ACCOUNT_NAMES",
    "ORDER_NONE", "ORDER_FILLED", "ORDER_SKIPPED", "ORDER_REJECTED",
]

ACCOUNT_NAMES = ("position", "upnl", "drawdown", "equity_ret", "progress")
OBS_NAMES: tuple[str, ...] = (*FEATURE_NAMES, *ACCOUNT_NAMES)

ORDER_NONE, ORDER_FILLED, ORDER_SKIPPED, ORDER_REJECTED = 0, 1, 2, 3
_NO_ORDER = (ORDER_NONE, 0, 0, False)


def _q8(x: float, mag: float = 0.0) -> float:
    """The sim's ``_q8`` (quantize to 8 decimals, ROUND_HALF_UP: ties away from zero) on a float.

    The sim's amounts are exact decimals, so a tie (…5 in the 9th decimal, common for fees and
    realised PnL) is exact there but lands a few ulps either side of it in float64. A nudge of a few
    ulps of ``mag`` (the operands' magnitude: ``|x|`` for a product, price × qty for a price
    difference times a quantity) puts it on the sim's side.
    """
    y = abs(x) * 1e8
    m = abs(x) if abs(x) > mag else mag
    r = math.floor(y + 0.5 + m * 5e-8) / 1e8
    return r if x >= 0.0 else -r


def _dec(x: Any) -> Decimal:
    return x if isinstance(x, Decimal) else Decimal(str(x))


@dataclass(frozen=True)
class EnvConfig:
    """Settings of :class:`FuturesTargetEnv` (money settings mirror ``[sim]`` and the account)."""

    decision_every: int = 5  #: k: candles per step
    episode_steps: int = 576  #: steps per episode (576 × 5 min = 2 days)
    max_notional: float = 10_000.0  #: USDT notional of action ±1
    deadband: float = 0.05  #: no order while |target − current fraction| is below this
    starting_balance: Decimal = Decimal("10000")
    leverage: int = 3
    margin_type: str = "ISOLATED"  #: ISOLATED or CROSSED
    taker_fee_rate: Decimal = Decimal("0.0005")
    slippage_bps: Decimal = Decimal("1")
    default_funding_rate: Decimal = Decimal("0.0001")
    funding_interval_ms: int = FUNDING_INTERVAL_MS
    drawdown_penalty: float = 0.1  #: λ on drawdown increases (fraction of peak equity)
    max_drawdown: float = 0.3  #: terminate when step-end drawdown reaches this fraction
    reward_scale: float = 100.0
    obs_clip: float = 10.0
    warmup: int = WARMUP  #: earliest random start (full feature windows)

    def __post_init__(self) -> None:
        for name in ("starting_balance", "taker_fee_rate", "slippage_bps", "default_funding_rate"):
            object.__setattr__(self, name, _dec(getattr(self, name)))
        object.__setattr__(self, "margin_type", str(getattr(self.margin_type, "value", self.margin_type)).upper())
        if self.decision_every < 1:
            raise ValueError("decision_every must be >= 1")
        if self.episode_steps < 1:
            raise ValueError("episode_steps must be >= 1")
        if not self.max_notional > 0:
            raise ValueError("max_notional must be > 0")
        if not 0 <= self.deadband < 2:
            raise ValueError("deadband must be in [0, 2)")
        if self.starting_balance <= 0:
            raise ValueError("starting_balance must be > 0")
        if self.leverage < 1:
            raise ValueError("leverage must be >= 1")
        if self.margin_type not in ("ISOLATED", "CROSSED"):
            raise ValueError("margin_type must be ISOLATED or CROSSED")
        if self.taker_fee_rate < 0 or self.slippage_bps < 0:
            raise ValueError("taker_fee_rate and slippage_bps must be >= 0")
        if self.funding_interval_ms <= 0 or self.funding_interval_ms % 60_000:
            raise ValueError("funding_interval_ms must be a positive whole number of minutes")
        if not 0 < self.max_drawdown <= 1:
            raise ValueError("max_drawdown must be in (0, 1]")
        if self.drawdown_penalty < 0 or not self.reward_scale > 0 or not self.obs_clip > 0 or self.warmup < 0:
            raise ValueError("drawdown_penalty >= 0, reward_scale > 0, obs_clip > 0, warmup >= 0")

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> "EnvConfig":
        """Fees, slippage, funding, balance, leverage and margin type from perpdeck ``Settings``."""
        base = dict(
            starting_balance=settings.sim.starting_balance,
            taker_fee_rate=settings.sim.taker_fee_rate,
            slippage_bps=settings.sim.slippage_bps,
            default_funding_rate=settings.sim.default_funding_rate,
            leverage=int(settings.leverage),
            margin_type=settings.margin_type,
        )
        base.update(overrides)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in base.items() if k in known})

    def with_(self, **changes: Any) -> "EnvConfig":
        return replace(self, **changes)


class FuturesTargetEnv(gym.Env):
    """Target-position env over one symbol's 1m klines; see the module docstring."""

    metadata = {"render_modes": []}

    def __init__(self, data: MarketData, config: EnvConfig | None = None, rules: SymbolRules | None = None) -> None:
        super().__init__()
        cfg = config or EnvConfig()
        self.config = cfg
        self.data = data
        if rules is None:
            all_rules = load_default_rules()
            if data.symbol not in all_rules:
                raise ValueError(f"no sim exchange rules for {data.symbol}; known: {sorted(all_rules)}")
            rules = all_rules[data.symbol]
        self.rules = rules
        n = len(data)
        k = cfg.decision_every
        self._k = k
        self._len = cfg.episode_steps
        self._hi_start = n - 1 - cfg.episode_steps * k
        if self._hi_start < 0:
            raise ValueError(f"{n} candles cannot hold an episode of {cfg.episode_steps} × {k} candles")
        self._lo_start = min(cfg.warmup, self._hi_start)

        # -- market arrays (python lists: scalar indexing is ~3× faster than numpy) --------------
        self._o = data.open.tolist()
        self._h = data.high.tolist()
        self._l = data.low.tolist()
        self._c = data.close.tolist()
        self._minlow = sliding_window_view(data.low, k).min(axis=1).tolist()  # [i] = min low[i:i+k]
        self._maxhigh = sliding_window_view(data.high, k).max(axis=1).tolist()
        self._buy_px, self._sell_px = self._taker_prices(np.asarray(data.close), rules, cfg.slippage_bps)

        # -- funding: candle index -> rates of the instants booked when that candle is fed -------
        interval = cfg.funding_interval_ms
        ot = np.asarray(data.open_time, dtype=np.int64)
        kcur = ot // interval
        fidx = (np.nonzero(kcur[1:] > kcur[:-1])[0] + 1).tolist()
        self._fund: dict[int, tuple[float, ...]] = {}
        for i in fidx:
            instants = np.arange(int(kcur[i - 1]) + 1, int(kcur[i]) + 1, dtype=np.int64) * interval
            self._fund[i] = tuple(rates_at(instants, data.funding, float(cfg.default_funding_rate)).tolist())
        nxt = np.full(n + 1, n + 1, dtype=np.int64)  # [i] = first funding candle > i
        if fidx:
            f = np.asarray(fidx, dtype=np.int64)
            pos = np.searchsorted(f, np.arange(n), side="right")
            has = pos < f.size
            nxt[:n][has] = f[pos[has]]
        self._next_fund = nxt.tolist()

        # -- symbol rules as floats -----------------------------------------------------------------
        ms = rules.market_lot_size
        step = ms.step_size
        if step <= 0:
            raise ValueError(f"{data.symbol}: MARKET_LOT_SIZE stepSize must be > 0")
        if ms.min_qty % step:
            raise ValueError(f"{data.symbol}: minQty {ms.min_qty} is not a multiple of stepSize {step}")
        self._step_dec = step
        self._stepf = float(step)
        self._min_steps = max(1, int(ms.min_qty / step))
        self._max_steps = int(ms.max_qty / step) if ms.max_qty > 0 else 1 << 62
        self._min_notional = float(rules.min_notional)
        max_lev = rules.brackets[0].initial_leverage if rules.brackets else 125
        self._lev = float(max(1, min(cfg.leverage, max_lev)))
        cap = rules.max_notional_for_leverage(int(self._lev))
        self._max_not_lev = math.inf if cap is None else float(cap)
        self._brackets = [(float(b.notional_floor), float(b.notional_cap), float(b.maint_margin_ratio), float(b.cum))
                          for b in rules.brackets]
        self._iso = cfg.margin_type == "ISOLATED"
        self._taker = float(cfg.taker_fee_rate)
        self._maxn = float(cfg.max_notional)
        self._deadband = float(cfg.deadband)
        self._e0 = float(cfg.starting_balance)
        self._floor = 1e-9 * self._e0
        self._scale = float(cfg.reward_scale)
        self._pen = float(cfg.drawdown_penalty)
        self._maxdd = float(cfg.max_drawdown)
        self._clip = float(cfg.obs_clip)

        # -- observation rows: market features with room for the account block --------------------
        feats = compute_features(data, default_funding_rate=float(cfg.default_funding_rate),
                                 funding_interval_ms=interval, clip=cfg.obs_clip)
        self._nf = feats.shape[1]
        rows = np.zeros((n, self._nf + len(ACCOUNT_NAMES)), dtype=np.float32)
        rows[:, : self._nf] = feats
        self._rows = rows
        self.features = feats  # read-only use (tests, analysis)

        self.action_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.observation_space = spaces.Box(-cfg.obs_clip, cfg.obs_clip, shape=(rows.shape[1],), dtype=np.float32)
        self._reset_state(self._lo_start)

    # -- precomputation -----------------------------------------------------------------------------

    @staticmethod
    def _taker_prices(close: np.ndarray, rules: SymbolRules, slippage_bps: Decimal) -> tuple[list, list]:
        """``SimExchange._taker_price`` for every close: BUY and SELL fill prices (exact, on the tick)."""
        slip = _dec(slippage_bps) / Decimal(10000)
        one = Decimal(1)
        uniq, inv = np.unique(close, return_inverse=True)
        buy = np.empty(uniq.shape[0])
        sell = np.empty(uniq.shape[0])
        tick = rules.price_filter.tick_size
        for i, x in enumerate(uniq.tolist()):
            base = Decimal(repr(x))  # the shortest repr is the CSV's decimal string
            b = rules.round_price_up(base * (one + slip) if slip else base)
            s = rules.round_price_down(base * (one - slip) if slip else base)
            if s <= 0:
                s = tick or base
            buy[i] = float(b)
            sell[i] = float(s)
        return buy[inv].tolist(), sell[inv].tolist()

    # -- gymnasium API --------------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if options and options.get("start") is not None:
            s = int(options["start"])
            if not 0 <= s <= self._hi_start:
                raise ValueError(f"start must be in [0, {self._hi_start}]")
        else:
            s = int(self.np_random.integers(self._lo_start, self._hi_start + 1))
        self._reset_state(s)
        return self._obs(s, self._e0, 0.0), {"equity": self._e0, "start": s}

    def step(self, action):
        try:
            a = float(action[0])
        except (TypeError, IndexError):
            a = float(action)
        if a != a:
            raise ValueError("action is NaN")
        if a > 1.0:
            a = 1.0
        elif a < -1.0:
            a = -1.0
        if self._over:
            raise RuntimeError("the episode is over: call reset()")
        t = self._t
        c = self._c[t]
        steps = self._steps
        self.last_order = _NO_ORDER
        if abs(a - self._amt * c / self._maxn) >= self._deadband:
            tgt = int(a * self._maxn / (c * self._stepf))
            if tgt != steps:
                self._trade(t, c, tgt - steps)
        t1 = t + self._k
        liq = False
        if self._steps:
            if self._next_fund[t] <= t1:
                liq = self._advance_slow(t, t1)
            elif self._lp > 0.0:
                if self._steps > 0:
                    if self._minlow[t + 1] <= self._lp:
                        liq = self._liq_scan(t + 1, t1)
                elif self._maxhigh[t + 1] >= self._lp:
                    liq = self._liq_scan(t + 1, t1)
        self._t = t1
        c1 = self._c[t1]
        eq = self._wallet + (c1 - self._entry) * self._amt
        prev = self._equity
        if eq > self._peak:
            self._peak = eq
        dd = 1.0 - eq / self._peak
        lr = math.log((eq if eq > self._floor else self._floor) / prev)
        inc = dd - self._dd
        reward = self._scale * (lr - self._pen * inc if inc > 0.0 else lr)
        self._dd = dd
        self._equity = eq if eq > self._floor else self._floor
        self._n += 1
        terminated = liq or dd >= self._maxdd or eq <= 0.0
        truncated = self._n >= self._len
        self._over = terminated or truncated
        info = {"equity": eq}
        if terminated:
            info["reason"] = "liquidation" if liq else ("bankrupt" if eq <= 0.0 else "max_drawdown")
        return self._obs(t1, eq, dd), reward, terminated, truncated, info

    # -- internals ------------------------------------------------------------------------------------

    def _reset_state(self, s: int) -> None:
        self._t = s
        self._start = s
        self._n = 0
        self._over = False
        self._steps = 0
        self._amt = 0.0
        self._entry = 0.0
        self._iw = 0.0
        self._lp = 0.0
        self._wallet = self._e0
        self._equity = self._e0
        self._peak = self._e0
        self._dd = 0.0
        self.last_order = _NO_ORDER
        self.fees_paid = 0.0
        self.funding_paid = 0.0  # signed: positive = paid
        self.orders_filled = 0
        self.orders_skipped = 0
        self.orders_rejected = 0
        self.liquidations = 0

    def _obs(self, t: int, eq: float, dd: float) -> np.ndarray:
        o = self._rows[t].copy()
        nf = self._nf
        clip = self._clip
        c = self._c[t]
        x = self._amt * c / self._maxn
        o[nf] = x if -clip < x < clip else (clip if x > 0 else -clip)
        if eq > 0.0:
            x = 10.0 * (c - self._entry) * self._amt / eq
            o[nf + 1] = x if -clip < x < clip else (clip if x > 0 else -clip)
            x = 10.0 * math.log(eq / self._e0)
            o[nf + 3] = x if -clip < x < clip else (clip if x > 0 else -clip)
        else:
            o[nf + 3] = -clip
        x = 10.0 * dd
        o[nf + 2] = x if x < clip else clip
        o[nf + 4] = self._n / self._len
        return o

    def _trade(self, t: int, c: float, delta: int) -> None:
        """One MARKET order of ``delta`` steps at the close of candle ``t`` (``SimExchange.new_order``)."""
        buy = delta > 0
        q = delta if buy else -delta
        if q > self._max_steps:
            q = self._max_steps
        old = self._steps
        reduce = old != 0 and (old > 0) != buy and q <= (old if old > 0 else -old)
        stepf = self._stepf
        qty = q * stepf
        if q < self._min_steps or (not reduce and qty * c < self._min_notional and self._below_min_notional(q, c)):
            self.orders_skipped += 1
            self.last_order = (ORDER_SKIPPED, 1 if buy else -1, q, reduce)
            return
        price = self._buy_px[t] if buy else self._sell_px[t]
        aold = old if old > 0 else -old
        close_q = 0 if (old == 0 or (old > 0) == buy) else (q if q < aold else aold)
        open_q = q - close_q
        entry = self._entry
        rp = 0.0
        if close_q:
            cq = close_q * stepf
            rp = _q8(((price - entry) if old > 0 else (entry - price)) * cq, (price if price > entry else entry) * cq)
        new = old + q if buy else old - q
        new_amt = new * stepf
        if new == 0:
            new_entry = 0.0
        elif open_q == 0:
            new_entry = entry
        elif close_q:
            new_entry = price
        else:
            new_entry = (aold * stepf * entry + qty * price) / abs(new_amt)
        iw = self._iw
        if self._iso:
            if close_q:
                iw = 0.0 if close_q == aold else _q8(iw * (aold - close_q) / aold)
            if open_q:
                iw += _q8(open_q * stepf * price / self._lev)
        fee = _q8(price * qty * self._taker)
        if open_q and not reduce:
            anew = abs(new_amt)
            if anew * c > self._max_not_lev:
                after = -1.0
            elif self._iso:
                after = self._wallet - iw + rp - fee
            else:
                after = self._wallet + (c - new_entry) * new_amt - anew * c / self._lev + rp - fee
            if after < 0.0:
                self.orders_rejected += 1
                self.last_order = (ORDER_REJECTED, 1 if buy else -1, q, reduce)
                return
        self._wallet += rp - fee
        self.fees_paid += fee
        self.orders_filled += 1
        self._steps = new
        self._amt = new_amt
        self._entry = new_entry
        self._iw = iw if new else 0.0
        self.last_order = (ORDER_FILLED, 1 if buy else -1, q, reduce)
        self._update_lp()

    def _below_min_notional(self, q: int, c: float) -> bool:
        """The sim's MIN_NOTIONAL test (``qty × mark < notional``), in Decimal when float is too close to call."""
        x = q * self._stepf * c
        if abs(x - self._min_notional) > 1e-9 * self._min_notional:
            return x < self._min_notional
        return self.quantity(q) * Decimal(repr(c)) < self.rules.min_notional

    def _bracket(self, notional: float):
        for b in self._brackets:
            if b[0] <= notional < b[1]:
                return b
        return self._brackets[-1] if self._brackets else None

    def _update_lp(self) -> None:
        """``SimExchange._liq_price`` (one-position approximation); 0 when there is none."""
        amt = self._amt
        if not self._steps:
            self._lp = 0.0
            return
        q = abs(amt)
        s = 1.0 if amt > 0 else -1.0
        e = self._entry
        wb = self._iw if self._iso else self._wallet
        b = self._bracket(q * e)
        lp = 0.0
        for _ in range(4):
            mmr, cum = (b[2], b[3]) if b is not None else (0.0, 0.0)
            denom = q * mmr - s * q
            if denom == 0.0:
                lp = 0.0
                break
            lp = (wb + cum - s * q * e) / denom
            if lp <= 0.0:
                lp = 0.0
                break
            nb = self._bracket(q * lp)
            if nb is b:
                break
            b = nb
        self._lp = lp

    def _advance_slow(self, t: int, t1: int) -> bool:
        """Candles t+1..t1 when a funding instant falls among them; True if liquidated."""
        j = t + 1
        f = self._next_fund[t]
        c = self._c
        while f <= t1:
            if self._steps and self._lp > 0.0 and j < f and self._liq_scan(j, f - 1):
                return True
            if self._steps:
                mark = c[f - 1]
                amt = self._amt
                for rate in self._fund[f]:
                    amount = _q8(-amt * mark * rate)
                    self._wallet += amount
                    self.funding_paid -= amount
                    if self._iso:
                        self._iw += amount
                self._update_lp()
            j = f
            f = self._next_fund[f]
        if self._steps and self._lp > 0.0:
            return self._liq_scan(j, t1)
        return False

    def _liq_scan(self, j0: int, j1: int) -> bool:
        lp = self._lp
        if self._steps > 0:
            lows = self._l
            for j in range(j0, j1 + 1):
                if lows[j] <= lp:
                    self._liquidate(j)
                    return True
        else:
            highs = self._h
            for j in range(j0, j1 + 1):
                if highs[j] >= lp:
                    self._liquidate(j)
                    return True
        return False

    def _liquidate(self, j: int) -> None:
        """``SimExchange._liquidate`` in candle ``j`` (the path meets the liquidation price)."""
        lp = self._lp
        long = self._steps > 0
        o = self._o[j]
        gapped = o <= lp if long else o >= lp
        level = o if gapped else lp
        if not self._iso:
            lp = min(lp, level) if long else max(lp, level)
        rules = self.rules
        px = rules.round_price_down(Decimal(repr(lp))) if long else rules.round_price_up(Decimal(repr(lp)))
        if px <= 0:
            px = rules.price_filter.min_price or rules.price_filter.tick_size
        price = float(px)
        q = abs(self._amt)
        rp = _q8(((price - self._entry) if long else (self._entry - price)) * q, max(price, self._entry) * q)
        if self._iso:
            commission = max(0.0, self._iw + rp)
        else:
            left = max(0.0, self._wallet + rp)
            mm = float(rules.maint_margin(_dec(repr(q * price))))
            commission = min(max(0.0, _q8(mm)), left)
        self._wallet += rp - commission
        self.fees_paid += commission
        self.liquidations += 1
        self._steps = 0
        self._amt = 0.0
        self._entry = 0.0
        self._iw = 0.0
        self._lp = 0.0

    # -- introspection (tests, evaluation) ------------------------------------------------------------

    @property
    def candle_index(self) -> int:
        """Index of the last closed candle (the decision candle of the next step)."""
        return self._t

    @property
    def equity(self) -> float:
        return self._wallet + (self._c[self._t] - self._entry) * self._amt

    @property
    def wallet(self) -> float:
        return self._wallet

    @property
    def position_qty(self) -> float:
        return self._amt

    def quantity(self, steps: int) -> Decimal:
        """``steps`` lot steps as the exact Decimal quantity sent to the exchange."""
        return steps * self._step_dec

    def last_order_params(self) -> dict[str, str] | None:
        """The Binance ``POST /fapi/v1/order`` parameters of the last order, unless none was sent."""
        status, side, q, reduce = self.last_order
        if status in (ORDER_NONE, ORDER_SKIPPED):
            return None
        p = {"symbol": self.data.symbol, "side": "BUY" if side > 0 else "SELL", "type": "MARKET",
             "quantity": fmt(self.quantity(q))}
        if reduce:
            p["reduceOnly"] = "true"
        return p
