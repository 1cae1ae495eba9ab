"""The env books exactly what the real SimExchange books for the same orders on the same candles.

Each case runs ``FuturesTargetEnv`` over a fixed action sequence and, in lockstep, a real
``SimExchange`` fed the same candles (``on_candle``) and sent the env's orders through its
REST-shaped ``new_order`` right after the decision candle closed (as the perpdeck backtest does).
After every step the sim's ``totalMarginBalance`` (wallet + unrealised PnL at the close) must equal
the env's equity within ``TOL`` USDT and the position quantities must match exactly. Orders the
env refuses or does not send must be refused by the sim too.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("gymnasium")

from engine.exchange.sim.matching import SimApiError, SimExchange, load_default_rules  # noqa: E402
from engine.model import MarginType  # noqa: E402
from rl.env import ORDER_FILLED, ORDER_REJECTED, ORDER_SKIPPED, EnvConfig, FuturesTargetEnv  # noqa: E402
from tests.rl.conftest import sample  # noqa: E402

#: absolute equity tolerance in USDT on a 10,000 USDT account. The sim books in Decimal and reports
#: totalMarginBalance rounded to 8 decimals (±5e-9); the env books in float64 with the sim's 8-decimal
#: ROUND_HALF_UP of every booked amount. Observed worst over 120 random configs × 400 steps: 1.0e-8
#: (one realised-PnL rounding off by 1e-8 when the average entry is a non-terminating decimal).
#: A wrong fee, slippage tick, funding instant or fill price moves equity by cents or more.
TOL = 5e-8


def actions(seed: int, n: int) -> np.ndarray:
    """Persistent targets with jumps, flips, flat spells and small in-dead-band jitter."""
    rng = np.random.default_rng(seed)
    out = np.empty(n)
    a = 0.0
    for i in range(n):
        u = rng.random()
        if u < 0.15:
            a = float(rng.uniform(-1.2, 1.2))  # beyond ±1 is clipped
        elif u < 0.22:
            a = 0.0
        elif u < 0.27:
            a = -a
        elif u < 0.6:
            a = a + float(rng.normal(0, 0.04))
        out[i] = a
    return out


def run_pair(symbol: str, cfg: EnvConfig, acts, start: int, *, funding: bool = True, rules=None, data=None):
    """Env and SimExchange in lockstep; ``rules`` overrides the symbol's exchange rules in both."""
    all_rules = load_default_rules()
    if rules is not None:
        all_rules[symbol] = rules
    data = sample(symbol) if data is None else data
    if not funding:
        from dataclasses import replace

        data = replace(data, funding={})
    candles = data.candles
    env = FuturesTargetEnv(data, cfg, rules=all_rules[symbol])
    env.reset(options={"start": start})
    sim = SimExchange(
        all_rules,
        starting_balance=cfg.starting_balance,
        taker_fee_rate=cfg.taker_fee_rate,
        slippage_bps=cfg.slippage_bps,
        funding_rates={symbol: dict(data.funding)},
        default_funding_rate=cfg.default_funding_rate,
        funding_interval_ms=cfg.funding_interval_ms,
        default_leverage=cfg.leverage,
        default_margin_type=MarginType(cfg.margin_type),
        start_time_ms=candles[start].open_time_ms,
    )
    sim.on_candle(candles[start])
    k = cfg.decision_every
    worst = 0.0
    seen = {ORDER_FILLED: 0, ORDER_REJECTED: 0, ORDER_SKIPPED: 0}
    steps = 0
    info: dict = {}
    for a in acts:
        t = env.candle_index
        _, _, terminated, truncated, info = env.step(np.array([a], dtype=np.float32))
        steps += 1
        status, side, q, reduce = env.last_order
        if status != 0:
            seen[status] += 1
        if status == ORDER_FILLED:
            sim.new_order(env.last_order_params())
        elif status in (ORDER_REJECTED, ORDER_SKIPPED):
            params = {"symbol": symbol, "side": "BUY" if side > 0 else "SELL", "type": "MARKET",
                      "quantity": str(env.quantity(q))}
            if reduce:
                params["reduceOnly"] = "true"
            with pytest.raises(SimApiError):
                sim.new_order(params)
        for c in candles[t + 1: t + k + 1]:
            sim.on_candle(c)
        acct = sim.account({})
        sim_eq = float(Decimal(acct["totalMarginBalance"]))
        worst = max(worst, abs(sim_eq - info["equity"]))
        assert abs(sim_eq - info["equity"]) <= TOL, (steps, sim_eq, info["equity"])
        sim_qty = sum((Decimal(p["positionAmt"]) for p in acct["positions"] if p["symbol"] == symbol), Decimal(0))
        assert float(sim_qty) == pytest.approx(env.position_qty, abs=1e-12), steps
        if terminated or truncated:
            break
    return env, sim, seen, worst, info


CASES = [
    # symbol, config, seed, start, steps
    ("BTCUSDT", EnvConfig(decision_every=5, max_notional=20_000, leverage=3, margin_type="ISOLATED"), 1, 300, 400),
    ("ETHUSDT", EnvConfig(decision_every=3, max_notional=50_000, leverage=10, margin_type="CROSSED",
                          slippage_bps="2.5", deadband=0.02), 2, 5000, 700),
    ("SOLUSDT", EnvConfig(decision_every=1, max_notional=8_000, leverage=2, margin_type="ISOLATED",
                          slippage_bps=0, taker_fee_rate="0.0004"), 3, 12000, 1500),
]


@pytest.mark.parametrize("symbol,cfg,seed,start,n", CASES, ids=[c[0] for c in CASES])
def test_equity_matches_sim_exchange(symbol, cfg, seed, start, n):
    cfg = cfg.with_(episode_steps=n, max_drawdown=1.0)
    env, sim, seen, worst, _ = run_pair(symbol, cfg, actions(seed, n), start)
    # the case really exercised trading, flips and funding (else it would prove little)
    assert seen[ORDER_FILLED] >= 50
    assert len(sim.funding_history()) >= 2
    assert env.funding_paid == pytest.approx(-sum(float(r["amount"]) for r in sim.funding_history()), abs=TOL)
    assert env.fees_paid == pytest.approx(sum(float(f["commission"]) for f in sim.all_fills()), abs=TOL)
    assert env.orders_filled == len(sim.all_fills())


def test_default_funding_rate_without_history():
    cfg = EnvConfig(decision_every=4, max_notional=15_000, leverage=5, margin_type="CROSSED",
                    default_funding_rate="0.0003", episode_steps=600, max_drawdown=1.0)
    env, sim, seen, _, _ = run_pair("BTCUSDT", cfg, actions(7, 600), 2000, funding=False)
    assert {r["rate"] for r in sim.funding_history()} == {Decimal("0.0003")}
    assert env.funding_paid != 0


def test_rejections_match_sim_margin_check():
    # 3× isolated with up to 4× the balance in notional: large targets fail the margin check (-2019)
    cfg = EnvConfig(decision_every=5, max_notional=40_000, leverage=3, margin_type="ISOLATED",
                    episode_steps=300, max_drawdown=1.0)
    env, _, seen, _, _ = run_pair("BTCUSDT", cfg, actions(11, 300), 1000)
    assert seen[ORDER_REJECTED] >= 3 and seen[ORDER_FILLED] >= 20


@pytest.mark.parametrize("symbol,margin_type,side,start", [
    ("SOLUSDT", "ISOLATED", 1.0, 8800),
    ("SOLUSDT", "CROSSED", -1.0, 2300),
    ("ETHUSDT", "ISOLATED", -1.0, 2300),
    ("ETHUSDT", "CROSSED", 1.0, 6300),
])
def test_liquidation_matches_sim(symbol, margin_type, side, start):
    # 20× leverage at 19× the balance: a ~5% adverse move liquidates; hold one side until it does.
    # One candle per step, so a liquidation booked a candle late (or early) shows in the equity.
    cfg = EnvConfig(decision_every=1, max_notional=190_000, leverage=20, margin_type=margin_type,
                    episode_steps=5000, max_drawdown=1.0)
    env, sim, _, _, info = run_pair(symbol, cfg, np.full(5000, side), start)
    assert info.get("reason") == "liquidation"
    assert env.liquidations == 1
    last = sim.all_fills()[-1]  # the sim's LIQUIDATION fill closed the position in the same step
    assert last["side"] == ("SELL" if side > 0 else "BUY")
    assert env.position_qty == 0.0


def test_orders_below_min_notional_are_not_sent_and_sim_refuses_them():
    # ETH's MIN_NOTIONAL is 20 USDT: with 1,500 USDT at ±1 and no dead-band, small moves fall below it
    cfg = EnvConfig(decision_every=2, max_notional=1_500, deadband=0.0, leverage=2, margin_type="CROSSED",
                    episode_steps=400, max_drawdown=1.0)
    env, _, seen, _, _ = run_pair("ETHUSDT", cfg, actions(5, 400), 700)
    assert seen[ORDER_SKIPPED] >= 10 and seen[ORDER_FILLED] >= 20


@pytest.mark.parametrize("max_notional,status", [(29_990, ORDER_REJECTED), (29_900, ORDER_FILLED)])
def test_margin_check_counts_the_fee(max_notional, status):
    # 3× isolated, 10,000 USDT: ~29,990 notional needs ~9,997 margin + ~15 fee > wallet -> -2019;
    # ~29,900 needs ~9,967 + ~15 < wallet -> filled
    cfg = EnvConfig(decision_every=5, max_notional=max_notional, leverage=3, margin_type="ISOLATED",
                    episode_steps=1, max_drawdown=1.0)
    env, _, _, _, _ = run_pair("ETHUSDT", cfg, [1.0], 4000)
    assert env.last_order[0] == status


def test_leverage_bracket_cap_rejects_like_sim():
    # a bracket table that caps 20× at 30,000 notional: larger targets get -2027 from the sim
    from dataclasses import replace as dc_replace

    from engine.exchange.filters import Bracket

    rules = load_default_rules()["SOLUSDT"]
    rules = dc_replace(rules, brackets=(
        Bracket(1, 20, Decimal(30_000), Decimal(0), Decimal("0.005"), Decimal(0)),
        Bracket(2, 10, Decimal(10_000_000), Decimal(30_000), Decimal("0.01"), Decimal(150)),
    ))
    cfg = EnvConfig(decision_every=5, max_notional=45_000, leverage=20, margin_type="CROSSED",
                    episode_steps=300, max_drawdown=1.0)
    env, _, seen, _, _ = run_pair("SOLUSDT", cfg, actions(13, 300), 3000, rules=rules)
    assert seen[ORDER_REJECTED] >= 3 and seen[ORDER_FILLED] >= 20


def test_reductions_below_min_notional_go_reduce_only():
    # ETH: 30 USDT long, then 15 (a 15 USDT sell < MIN_NOTIONAL 20: only allowed reduce-only), then flat
    cfg = EnvConfig(decision_every=2, max_notional=1_500, deadband=0.0, episode_steps=3, max_drawdown=1.0)
    statuses = []
    for n in (1, 2, 3):
        env, _, _, _, _ = run_pair("ETHUSDT", cfg, [0.02, 0.01, 0.0][:n], 700)
        statuses.append(env.last_order)
    assert statuses[0][0] == ORDER_FILLED and statuses[0][3] is False
    assert statuses[1][0] == ORDER_FILLED and statuses[1][3] is True
    assert statuses[2][0] == ORDER_FILLED and statuses[2][3] is True
    assert env.position_qty == 0.0


def _synthetic(symbol: str, n: int, special: dict[int, tuple[str, str, str, str]]):
    """Flat 100.00 candles, with (open, high, low, close) overrides at some indices."""
    from engine.data import KlineFile
    from engine.model import Candle
    from rl.data import from_kline_file

    t0 = 1_747_000_000_000 // 60_000 * 60_000
    cs = []
    for i in range(n):
        o, h, lo, c = (Decimal(x) for x in special.get(i, ("100", "100", "100", "100")))
        t = t0 + i * 60_000
        cs.append(Candle(symbol, t, t + 59_999, o, h, lo, c, Decimal(1), True))
    return from_kline_file(KlineFile(symbol, Path("synthetic"), tuple(cs)))


@pytest.mark.parametrize("margin_type", ["ISOLATED", "CROSSED"])
@pytest.mark.parametrize("side", [1.0, -1.0])
@pytest.mark.parametrize("case", ["miss", "touch", "gap"])
def test_liquidation_boundary_and_gap(margin_type, side, case):
    """A candle that stops one tick short of the liquidation price, one that touches it, and one
    that gaps through it: both books must liquidate (or not) in the same candle at the same price."""
    sym, s = "SOLUSDT", 10
    cfg = EnvConfig(decision_every=1, max_notional=1_900, starting_balance=100, leverage=20,
                    margin_type=margin_type, episode_steps=6, max_drawdown=1.0, slippage_bps=0)
    probe = FuturesTargetEnv(_synthetic(sym, 300, {}), cfg)
    probe.reset(options={"start": s})
    probe.step(np.array([side], dtype=np.float32))
    lp = Decimal(repr(probe._lp))
    tick = Decimal("0.01")
    down = (lp / tick).to_integral_value(rounding="ROUND_FLOOR") * tick  # <= lp
    up = (lp / tick).to_integral_value(rounding="ROUND_CEILING") * tick  # >= lp
    if side > 0:  # a long dies when the low reaches lp
        lvl = {"miss": up + tick if up == lp else up, "touch": down, "gap": down - 1}[case]
        bar = ("100", "100", str(lvl), "100") if case != "gap" else (str(lvl), "100", str(lvl), "100")
    else:
        lvl = {"miss": down - tick if down == lp else down, "touch": up, "gap": up + 1}[case]
        bar = ("100", str(lvl), "100", "100") if case != "gap" else (str(lvl), str(lvl), "100", "100")
    data = _synthetic(sym, 300, {s + 3: bar})
    env, sim, _, _, info = run_pair(sym, cfg, [side] * 6, s, data=data)
    assert env.liquidations == (0 if case == "miss" else 1)
    assert (info.get("reason") == "liquidation") == (case != "miss")
