"""Chaos harness: the engine as a real subprocess, killed and restarted at random moments, against
the local exchange (run in this process) under a seeded, randomised fault schedule; then the
invariants are checked. Used by ``bench/chaos.py`` (many runs, a summary table) and by
``tests/chaos`` (one short run in CI).

One run (``run_once(seed, config)``):

* a slice of the bundled 1m klines (``config.minutes`` minutes of BTCUSDT/ETHUSDT/SOLUSDT, the
  start chosen by the seed) is replayed by a :class:`LocalExchange` paced by this harness at
  ``config.speed``× real time (one minute of data every ``60/speed`` s);
* ``python -m engine.cli --no-ui --state-dir DIR`` trades on it through the sim's REST/WS URLs,
  tuned to trade often (fast EMA cross, tight stop and take-profits, no funding blackout, no
  halts); one state directory for every restart, so every start is a new run in one database;
* the schedule (drawn from the seed before the run starts) injects REST faults (5xx, dropped
  connections, timeouts where the order was placed, requests lost before the engine, 503 unknown
  status, 429 + Retry-After, 418 bans, clock skew causing -1021, slow REST), fills split in two,
  duplicated / delayed / reordered user-data events, dropped market and user streams and listenKey
  expiry, and SIGKILLs the engine at random moments and right after an entry fill (from the
  exchange's side, before the engine has even read the order's answer, i.e. between the fill and
  its stop), restarting it after a short random pause;
* after the replay ends the faults are cleared, the last engine is given time to settle, the
  database (opened read-only) is compared with the exchange, and the engine is stopped with SIGINT.

Invariants (violations carry the seed and the moment, in wall seconds since the replay started and
replay time):

1. never more than one entry per signal (entries grouped by signal id, across restarts: the client
   ids are decoded with ``engine.orders.ids``), never a second entry filled while a position of
   another entry is open on the symbol (per side in hedge mode);
2. no position without a resting closing stop (STOP_MARKET/STOP/TRAILING, closePosition or
   reduce-only) for more than ``protect_limit_s`` on the request clock (wall), measured by a
   :class:`ProtectionMonitor` inside the exchange after every change; time in which an injected
   ban or an injected 429's Retry-After made the exchange refuse every request is not counted (no
   client can place a stop then; both figures are reported), a ban the engine earns is;
3. every fill on the exchange is in the database exactly once (across runs), with the same price,
   quantity, commission and realised PnL, and the database has no fill the exchange does not;
4. after the final restart the database's open orders, open algo orders and positions (the latest
   row of each across runs) equal the exchange's;
5. the engine never exits except by our SIGKILLs (or the final SIGINT, which must exit 0/130
   without a traceback).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.data import (  # noqa: E402
    load_funding,
    load_klines,
    merged_candles,
    sample_funding_files,
    sample_kline_files,
)
from engine.exchange.sim.matching import SimExchange, load_default_rules  # noqa: E402
from engine.exchange.sim.server import LocalExchange, ProtectionMonitor, RateLimits  # noqa: E402
from engine.model import Candle, PositionMode  # noqa: E402
from engine.orders.ids import client_id, role_of  # noqa: E402

MIN_MS = 60_000

INVARIANTS = {
    1: "one entry per signal, one position per symbol",
    2: "no position without a stop for more than the limit",
    3: "every exchange fill in the DB exactly once, same fees/PnL",
    4: "DB open orders, algo orders, positions == exchange",
    5: "no engine exit except our SIGKILLs",
}

#: every fault kind the schedule can draw (kills are drawn separately)
FAULT_KINDS = (
    "rest_5xx", "rest_drop", "rest_timeout", "rest_lost", "unknown_503", "rate_limit_429", "ban_418",
    "clock_skew", "slow_rest", "partial_fill", "dup_events", "delay_events", "reorder_events",
    "drop_market", "drop_user", "listen_key_expiry",
)
#: the server's ``Faults.fired`` kinds behind each schedule kind (what "took effect" counts)
_FIRED_KIND = {
    "rest_5xx": "fail", "rest_drop": "drop", "rest_timeout": "stall_response", "rest_lost": "stall",
    "unknown_503": "unknown", "rate_limit_429": "ratelimit", "partial_fill": "split_fill",
    "dup_events": "duplicate_event", "delay_events": "delay_event", "reorder_events": "reorder_event",
}
_ORDER_PATHS = ("/fapi/v1/order", "/fapi/v1/algoOrder")
_EVENT_TYPES = (None, "ORDER_TRADE_UPDATE", "ACCOUNT_UPDATE", "ALGO_UPDATE")

#: engine settings that make it trade often on 1m data (env overrides; see config.toml)
ENGINE_ENV = {
    "PERPDECK_STRATEGIES": json.dumps({"ema_trend": {"fast": 3, "slow": 8, "trend": 8, "min_atr_pct": 0,
                                                     "cooldown_bars": 0}}),
    "PERPDECK_ACTIVE_STRATEGY": "ema_trend",
    "PERPDECK_AUTO_TRADING_ENABLED": "true",
    "PERPDECK_HEARTBEAT_INTERVAL_S": "0.5",
    "PERPDECK_RISK__FUNDING_BLACKOUT_MIN": "0",
    "PERPDECK_RISK__STOP_LOSS_PCT": "0.25",
    "PERPDECK_RISK__TAKE_PROFIT_1_PCT": "0.2",
    "PERPDECK_RISK__TAKE_PROFIT_2_PCT": "0.4",
    "PERPDECK_RISK__MAX_DAILY_TRADES": "10000",
    "PERPDECK_RISK__MAX_POSITIONS_PER_DAY": "10000",
    "PERPDECK_RISK__MAX_CONSECUTIVE_LOSSES": "0",
    "PERPDECK_RISK__STRATEGY_LOSS_LIMIT_PCT": "0",
    "PERPDECK_RISK__MAX_DAILY_LOSS_PCT": "50",
    "PERPDECK_RISK__SHOCK_MOVE_PCT": "0",
    "PERPDECK_RISK__ATR_MAX_PCT": "0",
    "PERPDECK_EXITS__BREAK_EVEN_TRIGGER_PCT": "0.15",
    "PERPDECK_EXITS__BREAK_EVEN_TIMEOUT_S": "600",
}


# ---------------------------------------------------------------------------------------------
# configuration and results
# ---------------------------------------------------------------------------------------------


@dataclass
class ChaosConfig:
    minutes: int = 90  # replay minutes per run (3 symbols)
    speed: float = 120.0  # replay pace: one minute of data per 60/speed s
    kills: int = 2  # SIGKILLs at random moments
    entry_kills: int = 1  # SIGKILLs right after an entry fill (before its stop)
    faults_per_min: float = 12.0  # timed faults per minute of wall time
    fault_kinds: tuple[str, ...] = FAULT_KINDS
    restart_delay_s: tuple[float, float] = (0.2, 1.0)
    protect_limit_s: float = 5.0
    hedge: bool = False  # hedge position mode (account and engine)
    ban_seconds: float = 10.0  # the 418 earned by a request sent during a 429's Retry-After
    ready_timeout_s: float = 30.0  # an engine start until its streams are connected
    final_grace_s: float = 3.0  # the last engine runs at least this long (ready) before the check
    settle_s: float = 3.0  # ... and exchange and database were quiet this long (no request in flight)
    settle_timeout_s: float = 20.0
    stop_timeout_s: float = 20.0
    workdir: Path | None = None  # state directories go here (default: a temp dir)
    keep: bool = False  # keep the state directories (always kept when a run has violations)
    python: str = sys.executable
    extra_env: dict[str, str] = field(default_factory=dict)
    log: Callable[[str], None] | None = None  # progress lines

    @property
    def replay_s(self) -> float:
        return self.minutes * 60.0 / self.speed


@dataclass
class Violation:
    invariant: int
    seed: int
    at_s: float | None  # wall seconds since the replay started
    replay_ms: int | None
    detail: str

    def format(self) -> str:
        when = f"{self.at_s:7.2f}s" if self.at_s is not None else "      - "
        rt = _iso(self.replay_ms) if self.replay_ms else "-"
        return f"seed {self.seed} inv {self.invariant} at {when} (replay {rt}): {self.detail}"


@dataclass
class Action:
    at_s: float
    kind: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class Incarnation:
    n: int
    pid: int
    started_s: float
    ready_s: float | None = None
    ended_s: float | None = None
    started_epoch_ms: int = 0
    run_id: str | None = None
    how: str = ""  # "sigkill" | "sigkill-after-entry" | "exit <rc>" | "final <rc>"


@dataclass
class RunResult:
    seed: int
    schedule: list[Action]
    injected: Counter = field(default_factory=Counter)  # schedule kinds armed
    took_effect: Counter = field(default_factory=Counter)  # schedule kinds that fired
    kills: Counter = field(default_factory=Counter)  # "random" / "after_entry"
    restarts: int = 0
    unexpected_exits: int = 0
    violations: list[Violation] = field(default_factory=list)
    incarnations: list[Incarnation] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    state_dir: str = ""
    wall_s: float = 0.0

    def by_invariant(self) -> Counter:
        return Counter(v.invariant for v in self.violations)


def _iso(ms: int | None) -> str:
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


# ---------------------------------------------------------------------------------------------
# market data
# ---------------------------------------------------------------------------------------------

_DATA: tuple[list[Candle], dict[str, dict[int, Decimal]]] | None = None


def market_data() -> tuple[list[Candle], dict[str, dict[int, Decimal]]]:
    """The bundled sample (3 symbols × 14 days), loaded once per process."""
    global _DATA
    if _DATA is None:
        candles = merged_candles([load_klines(p) for p in sample_kline_files(None)])
        funding: dict[str, dict[int, Decimal]] = {}
        for p in sample_funding_files(None):
            for sym, rates in load_funding(p).items():
                funding.setdefault(sym, {}).update(rates)
        _DATA = (candles, funding)
    return _DATA


def replay_slice(rng: random.Random, minutes: int) -> list[Candle]:
    candles, _ = market_data()
    opens = sorted({c.open_time_ms for c in candles})
    start = rng.randrange(0, max(1, len(opens) - minutes))
    lo, hi = opens[start], opens[min(len(opens) - 1, start + minutes - 1)]
    return [c for c in candles if lo <= c.open_time_ms <= hi]


# ---------------------------------------------------------------------------------------------
# the schedule
# ---------------------------------------------------------------------------------------------


def make_schedule(seed: int, cfg: ChaosConfig) -> list[Action]:
    """Every timed action of one run, from the seed alone (reproducible)."""
    rng = random.Random(f"chaos-schedule-{seed}")
    d = cfg.replay_s
    out: list[Action] = []
    for _ in range(cfg.kills):
        out.append(Action(rng.uniform(0.15 * d, 0.85 * d), "kill",
                          {"restart_after_s": rng.uniform(*cfg.restart_delay_s)}))
    for _ in range(cfg.entry_kills):
        out.append(Action(rng.uniform(0.1 * d, 0.7 * d), "arm_entry_kill",
                          {"restart_after_s": rng.uniform(*cfg.restart_delay_s)}))
    n = int(round(cfg.faults_per_min * d / 60.0))
    kinds = list(cfg.fault_kinds)
    for _ in range(n if kinds else 0):
        kind = rng.choice(kinds)
        out.append(Action(rng.uniform(0.1 * d, 0.95 * d), kind, _fault_args(rng, kind)))
    out.sort(key=lambda a: a.at_s)
    return out


def _fault_args(rng: random.Random, kind: str) -> dict[str, Any]:
    if kind == "rest_5xx":
        return {"n": rng.randint(1, 2), "status": rng.choice((500, 502, 503, 504)),
                "path": rng.choice((None,) + _ORDER_PATHS)}
    if kind == "rest_drop":
        return {"n": 1, "status": 0, "path": rng.choice((None,) + _ORDER_PATHS)}
    if kind == "rest_timeout":  # applied, the answer lost past the client's 10 s timeout
        return {"seconds": 10.5, "path": rng.choice(_ORDER_PATHS)}
    if kind == "rest_lost":  # never reached the engine; the connection resets after a while
        return {"seconds": round(rng.uniform(0.3, 2.0), 2), "path": rng.choice((None,) + _ORDER_PATHS)}
    if kind == "unknown_503":
        return {"path": rng.choice(_ORDER_PATHS)}
    if kind == "rate_limit_429":
        return {"retry_after_s": rng.choice((1, 2))}
    if kind == "ban_418":
        return {"seconds": round(rng.uniform(1.0, 3.0), 2)}
    if kind == "clock_skew":
        return {"ms": rng.choice((-1, 1)) * rng.randint(6_000, 20_000), "for_s": round(rng.uniform(3, 12), 2)}
    if kind == "slow_rest":
        return {"delay_s": round(rng.uniform(0.2, 0.8), 2), "for_s": round(rng.uniform(2, 5), 2)}
    if kind == "partial_fill":
        return {"n": rng.randint(1, 2)}
    if kind == "dup_events":
        return {"n": rng.randint(1, 4), "events": rng.choice(_EVENT_TYPES),
                "after_s": rng.choice((0.0, round(rng.uniform(0.1, 1.5), 2)))}
    if kind == "delay_events":
        return {"n": rng.randint(1, 3), "seconds": round(rng.uniform(0.5, 3.0), 2),
                "events": rng.choice(_EVENT_TYPES)}
    if kind == "reorder_events":
        return {"n": rng.randint(2, 4), "events": rng.choice(_EVENT_TYPES), "max_hold_s": 1.0}
    if kind in ("drop_market", "drop_user"):
        return {"code": rng.choice((None, 1011))}
    return {}


# ---------------------------------------------------------------------------------------------
# the engine subprocess
# ---------------------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGKILL it when the harness dies, so no engine outlives
    an interrupted or crashed harness. Elsewhere a no-op (cleanup() still kills it)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001
        pass


class EngineProcess:
    """``python -m engine.cli --no-ui`` on one state directory; each start is one incarnation."""

    def __init__(self, cfg: ChaosConfig, state_dir: Path, env: dict[str, str], t0: float,
                 on_unexpected_exit: Callable[[Incarnation, str], None]) -> None:
        self.cfg = cfg
        self.state_dir = state_dir
        self.env = env
        self.t0 = t0
        self.on_unexpected_exit = on_unexpected_exit
        self.proc: asyncio.subprocess.Process | None = None
        self.current: Incarnation | None = None
        self.incarnations: list[Incarnation] = []
        self._expected_end: str | None = None
        self._watch: asyncio.Task | None = None
        self._known_runs: set[str] = set()

    def now(self) -> float:
        return time.monotonic() - self.t0

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    @property
    def ready(self) -> bool:
        return self.alive and self.current is not None and self.current.ready_s is not None

    def _paths(self, n: int) -> tuple[Path, Path]:
        return self.state_dir / f"engine-{n}.out", self.state_dir / f"engine-{n}.err"

    async def start(self) -> Incarnation:
        n = len(self.incarnations) + 1
        out, err = self._paths(n)
        with open(out, "wb") as fo, open(err, "wb") as fe:
            self.proc = await asyncio.create_subprocess_exec(
                self.cfg.python, "-m", "engine.cli", "--no-ui", "--state-dir", str(self.state_dir),
                "--env-file", str(self.state_dir / "none.env"),
                cwd=str(ROOT), env=self.env, stdout=fo, stderr=fe, stdin=asyncio.subprocess.DEVNULL,
                start_new_session=True, preexec_fn=_die_with_parent)
        inc = Incarnation(n, self.proc.pid, self.now(), started_epoch_ms=int(time.time() * 1000))
        self.incarnations.append(inc)
        self.current = inc
        self._expected_end = None
        self._watch = asyncio.create_task(self._watch_exit(self.proc, inc), name=f"engine-{n}-watch")
        return inc

    async def _watch_exit(self, proc: asyncio.subprocess.Process, inc: Incarnation) -> None:
        rc = await proc.wait()
        inc.ended_s = self.now()
        if self._expected_end is not None and proc is self.proc:
            inc.how = f"{self._expected_end} rc={rc}"
            return
        inc.how = f"exit rc={rc}"
        self.on_unexpected_exit(inc, self.stderr_tail(inc.n))

    def stderr_tail(self, n: int, lines: int = 12) -> str:
        try:
            text = self._paths(n)[1].read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def kill(self, how: str = "sigkill") -> bool:
        """SIGKILL now (synchronous: callable from inside the exchange's event tap)."""
        if not self.alive:
            return False
        assert self.proc is not None
        self._expected_end = how
        try:
            os.kill(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return False
        return True

    async def wait_exit(self, timeout_s: float) -> int | None:
        if self.proc is None:
            return None
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout_s)
        except asyncio.TimeoutError:
            return None

    async def interrupt(self, timeout_s: float) -> int | None:
        """SIGINT (a clean stop); the exit code, or None when it did not exit in time (then killed)."""
        if not self.alive:
            return self.proc.returncode if self.proc else None
        assert self.proc is not None
        self._expected_end = "final"
        self.proc.send_signal(signal.SIGINT)
        rc = await self.wait_exit(timeout_s)
        if rc is None:
            self.kill("final-timeout")
            await self.wait_exit(5)
        if self._watch is not None:
            await asyncio.gather(self._watch, return_exceptions=True)
        return rc

    def heartbeat(self) -> dict | None:
        try:
            return json.loads((self.state_dir / "status" / "heartbeat.json").read_text())
        except (OSError, ValueError):
            return None

    async def wait_ready(self, inc: Incarnation, timeout_s: float) -> bool:
        """Until the incarnation's heartbeat shows a new run with both streams connected."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.current is not inc or not self.alive:
                return False
            hb = self.heartbeat()
            if hb and hb.get("run_id") and hb["run_id"] not in self._known_runs \
                    and int(hb.get("wall_time_ms") or 0) >= inc.started_epoch_ms:
                streams = hb.get("streams") or {}
                if all((streams.get(s) or {}).get("state") == "connected" for s in ("market", "user")):
                    inc.run_id = hb["run_id"]
                    inc.ready_s = self.now()
                    self._known_runs.add(hb["run_id"])
                    return True
            await asyncio.sleep(0.05)
        return False

    async def cleanup(self) -> None:
        if self.alive:
            self.kill("cleanup")
            await self.wait_exit(5)
        if self._watch is not None:
            await asyncio.gather(self._watch, return_exceptions=True)


# ---------------------------------------------------------------------------------------------
# exchange-side recording
# ---------------------------------------------------------------------------------------------


@dataclass
class Recorded:
    """What the exchange produced, as it produced it (the user-event tap)."""

    events: list[tuple[float, dict]] = field(default_factory=list)  # (wall s since t0, event)
    order_cid: dict[int, str] = field(default_factory=dict)  # orderId -> client id
    trade_wall: dict[tuple[str, int], float] = field(default_factory=dict)  # (symbol, trade id) -> wall s
    last_status: dict[str, tuple[str, float]] = field(default_factory=dict)  # client (algo) id -> (X, wall s)


def _event_entry_fill(ev: dict) -> bool:
    if ev.get("e") != "ORDER_TRADE_UPDATE":
        return False
    o = ev["o"]
    return o.get("x") == "TRADE" and role_of(o.get("c", "")) == "entry"


# ---------------------------------------------------------------------------------------------
# the database (read-only)
# ---------------------------------------------------------------------------------------------


@dataclass
class DbState:
    runs: list[str]
    orders: dict[str, dict]  # client id -> latest row (across runs)
    algos: dict[str, dict]
    positions: dict[tuple[str, str], dict]  # (symbol, side) -> latest row
    fills: list[dict]
    order_signal: dict[str, str]  # client id -> signal id
    signal_ids: set[str]


_OPEN_ORDER = frozenset({"PENDING_NEW", "NEW", "PARTIALLY_FILLED"})
_OPEN_ALGO = frozenset({"PENDING_NEW", "NEW"})


def read_db(path: Path) -> DbState:
    uri = f"file:{path}?mode=ro"
    con = sqlite3.connect(uri, uri=True, timeout=10)
    con.row_factory = sqlite3.Row
    try:
        runs = [r["run_id"] for r in con.execute("SELECT run_id FROM runs ORDER BY rowid")]
        rank = {r: i for i, r in enumerate(runs)}

        def latest(rows: Iterable[sqlite3.Row], key: Callable[[sqlite3.Row], Any], when: str) -> dict:
            out: dict[Any, dict] = {}
            for r in rows:
                d = dict(r)
                k = key(r)
                order = (rank.get(d["run_id"], -1), d[when] or 0)
                if k not in out or order >= out[k]["_order"]:
                    d["_order"] = order
                    out[k] = d
            return out

        orders = latest(con.execute("SELECT * FROM orders"), lambda r: r["client_order_id"], "updated_ms")
        algos = latest(con.execute("SELECT * FROM algo_orders"), lambda r: r["client_algo_id"], "updated_ms")
        positions = latest(con.execute("SELECT * FROM positions"), lambda r: (r["symbol"], r["position_side"]),
                           "update_time_ms")
        fills = [dict(r) for r in con.execute("SELECT * FROM fills")]
        order_signal = {r["client_order_id"]: r["signal_id"]
                        for r in con.execute("SELECT client_order_id, signal_id FROM orders") if r["signal_id"]}
        signal_ids = {r[0] for r in con.execute("SELECT DISTINCT signal_id FROM signals")}
    finally:
        con.close()
    return DbState(runs, orders, algos, positions, fills, order_signal, signal_ids)


def db_fingerprint(state_dir: Path) -> tuple:
    out = []
    for name in ("perpdeck.db", "perpdeck.db-wal"):
        try:
            st = (state_dir / name).stat()
            out.append((st.st_size, st.st_mtime_ns))
        except OSError:
            out.append(None)
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# invariant checks (pure functions over plain data)
# ---------------------------------------------------------------------------------------------


def _digest(cid: str) -> str:
    return cid.split("-", 1)[1] if "-" in cid else cid


def namespaces(db: DbState, rest_url: str, ws_url: str) -> list[str]:
    """Candidate client-id namespaces: every run id (the engine's namespace per run) and the
    account key a restart-safe engine uses (``engine.restart.account_key``, if it exists)."""
    out = list(db.runs)
    try:
        from engine.exchange.binance.endpoints import Credentials, Endpoints
        from engine.exchange.sim.server import DEFAULT_API_KEY, DEFAULT_API_SECRET
        from engine.restart import account_key

        creds = Credentials(DEFAULT_API_KEY, secret=DEFAULT_API_SECRET)
        out.append(account_key(Endpoints.local(rest_url, ws_url), creds))
    except Exception:  # noqa: BLE001 - an engine without it names ids per run
        pass
    return out


def resolve_signal(cid: str, symbol: str, replay_ms: int, db: DbState, strategies: Iterable[str],
                   spaces: Iterable[str], max_back_min: int = 30) -> str | None:
    """The signal behind one of our entry ids: from the database, else by recomputing the id for
    every namespace × candidate signal (the database's signals, and any candle of the last
    ``max_back_min`` minutes of ``symbol`` in either direction)."""
    sid = db.order_signal.get(cid)
    if sid:
        return sid
    want = _digest(cid)
    candidates = {s for s in db.signal_ids if f":{symbol}:" in s}
    base = replay_ms - replay_ms % MIN_MS
    for strat in strategies:
        for k in range(max_back_min + 1):
            for d in ("LONG", "SHORT"):
                candidates.add(f"{strat}:{symbol}:{base - k * MIN_MS}:{d}")
    for ns in spaces:
        for s in candidates:
            if _digest(client_id(ns, s, "entry")) == want:
                return s
    return None


def check_entries(seed: int, events: list[tuple[float, dict]], db: DbState, strategies: Iterable[str],
                  spaces: Iterable[str], hedge: bool = False) -> list[Violation]:
    """Invariant 1 from the exchange's event log (in production order): per signal, one entry
    (its slices share one id digest and differ in the attempt number; the same id placed twice is
    two entries), and no entry fill while another entry's position is open on the symbol (side)."""
    out: list[Violation] = []
    strategies, spaces = list(strategies), list(spaces)
    by_signal: dict[str, dict[str, list[tuple[float, int, int]]]] = {}  # sid -> cid -> [(wall, T, orderId)]
    positions: dict[tuple[str, str], Decimal] = {}
    owner: dict[tuple[str, str], str | None] = {}
    for wall, ev in events:
        e = ev.get("e")
        if e == "ACCOUNT_UPDATE":
            for p in (ev.get("a") or {}).get("P") or ():
                key = (p["s"], p["ps"])
                amt = Decimal(p["pa"])
                positions[key] = amt
                if amt == 0:
                    owner[key] = None
            continue
        if e != "ORDER_TRADE_UPDATE":
            continue
        o = ev["o"]
        cid = o.get("c", "")
        if role_of(cid) != "entry":
            continue
        if o.get("x") == "NEW":
            t = int(o.get("T") or ev.get("E") or 0)
            sid = resolve_signal(cid, o["s"], t, db, strategies, spaces)
            if sid is None:
                out.append(Violation(1, seed, wall, t,
                                     f"entry {cid} on {o['s']}: no signal found for it (cannot show it is the "
                                     "only entry of its signal)"))
                continue
            seen = by_signal.setdefault(sid, {}).setdefault(cid, [])
            if all(oid != o["i"] for _, _, oid in seen):
                seen.append((wall, t, o["i"]))
        elif o.get("x") == "TRADE":
            key = (o["s"], o.get("ps", "BOTH"))
            before = positions.get(key, Decimal(0))
            mine = _digest(cid)
            if before == 0:
                owner[key] = mine
            elif owner.get(key) != mine:
                side = f" {key[1]}" if hedge or key[1] != "BOTH" else ""
                out.append(Violation(1, seed, wall, o.get("T"),
                                     f"second position on {key[0]}{side}: entry {cid} filled {o.get('l')} while a "
                                     f"position of {owner.get(key) or 'another order'} was open ({before})"))
    for sid, by_cid in by_signal.items():
        digests = {_digest(c) for c in by_cid}
        twice = {c: v for c, v in by_cid.items() if len(v) > 1}
        if len(digests) > 1 or twice:
            first = min(x for v in by_cid.values() for x in v)
            orders = ", ".join(f"{c} (order {oid}, {w:.2f} s)" for c, v in sorted(by_cid.items()) for w, _, oid in v)
            n = sum(len(v) for v in by_cid.values()) if twice else len(digests)
            out.append(Violation(1, seed, first[0], first[1], f"signal {sid} entered {n} times: {orders}"))
    return out


def refused_s(start: float, end: float, refusals: Iterable[tuple[float, float, str]]) -> float:
    """Seconds of [start, end] covered by the union of the refusal windows."""
    spans = sorted((max(a, start), min(b, end)) for a, b, _k in refusals if b > start and a < end)
    total, cur_a, cur_b = 0.0, None, None
    for a, b in spans:
        if cur_b is None or a > cur_b:
            if cur_b is not None:
                total += cur_b - cur_a
            cur_a, cur_b = a, b
        else:
            cur_b = max(cur_b, b)
    if cur_b is not None:
        total += cur_b - cur_a
    return total


def check_protection(seed: int, intervals: Iterable[Any], limit_s: float, t0: float,
                     refusals: Iterable[tuple[float, float, str]] = ()) -> list[Violation]:
    """Invariant 2 from the ProtectionMonitor's stretches (its clock = time.monotonic). Time in
    which an injected fault made the exchange refuse every request (a ban, an injected 429's
    Retry-After: ``Faults.refusals``) is not counted: no client can place a stop then. Bans the
    engine earns itself (requests during a back-off) are counted."""
    out = []
    refusals = list(refusals)
    now = time.monotonic()
    for u in intervals:
        d = u.duration_s(now)
        refused = refused_s(u.start_s, u.start_s + d, refusals)
        if d - refused > limit_s:
            part = f", {refused:.1f} s of it while the exchange refused every request" if refused else ""
            out.append(Violation(2, seed, u.start_s - t0, u.replay_start_ms,
                                 f"{u.symbol} {u.position_side} position {u.amount} without a stop for "
                                 f"{d:.1f} s{part} (> {limit_s:g} s; ended: {u.ended_by or 'still bare'})"))
    return out


_FILL_FIELDS = (("price", "price", "price"), ("qty", "quantity", "quantity"),
                ("commission", "commission", "commission"), ("realizedPnl", "realized_pnl", "realized PnL"))


def check_fills(seed: int, exchange_fills: list[dict], db_fills: list[dict], order_cid: dict[int, str],
                describe_time: Callable[[tuple[str, int], int], tuple[float | None, str]]) -> list[Violation]:
    """Invariant 3: exchange ``userTrades`` rows vs the database's ``fills`` rows (all runs)."""
    out: list[Violation] = []
    db_by: dict[tuple[str, int], list[dict]] = {}
    for f in db_fills:
        db_by.setdefault((f["symbol"], int(f["trade_id"])), []).append(f)
    seen = set()
    for x in exchange_fills:
        key = (x["symbol"], int(x["id"]))
        seen.add(key)
        rows = db_by.get(key, [])
        cid = order_cid.get(int(x["orderId"]), f"order {x['orderId']}")
        wall, when = describe_time(key, int(x["time"]))
        what = f"fill {key[0]} #{key[1]} of {cid} ({role_of(cid) or 'not ours'}, {x['side']} {x['qty']} @ {x['price']})"
        if not rows:
            out.append(Violation(3, seed, wall, int(x["time"]), f"{what} is not in the database ({when})"))
            continue
        if len(rows) > 1:
            runs = ", ".join(r["run_id"] for r in rows)
            out.append(Violation(3, seed, wall, int(x["time"]), f"{what} is in the database {len(rows)} times "
                                                                 f"(runs {runs})"))
        r = rows[0]
        bad = [f"{label} {r[dbk]} != {x[exk]}" for exk, dbk, label in _FILL_FIELDS
               if Decimal(str(r[dbk])) != Decimal(str(x[exk]))]
        if bad:
            out.append(Violation(3, seed, wall, int(x["time"]), f"{what}: database has " + "; ".join(bad)))
    for key, rows in db_by.items():
        if key not in seen:
            out.append(Violation(3, seed, None, rows[0].get("time_ms"),
                                 f"database fill {key[0]} #{key[1]} ({rows[0].get('client_order_id')}) is not on "
                                 "the exchange"))
    return out


def check_open_state(seed: int, at_s: float, replay_ms: int, exchange: dict[str, Any], db: DbState,
                     describe: Callable[[str], str] = lambda cid: "") -> list[Violation]:
    """Invariant 4: open orders, open algo orders and positions, exchange vs database.
    ``describe(client id)`` says what became of an order on the exchange (for the report)."""
    out: list[Violation] = []

    def v(detail: str) -> None:
        out.append(Violation(4, seed, at_s, replay_ms, detail))

    ex_orders = {o["clientOrderId"]: o for o in exchange["orders"]}
    db_orders = {k: r for k, r in db.orders.items() if r["status"] in _OPEN_ORDER}
    for cid in sorted(set(ex_orders) - set(db_orders)):
        row = db.orders.get(cid)
        v(f"open order {cid} ({ex_orders[cid]['symbol']} {ex_orders[cid]['type']}) on the exchange; database: "
          + (f"{row['status']} (run {row['run_id']})" if row else "no row"))
    for cid in sorted(set(db_orders) - set(ex_orders)):
        r = db_orders[cid]
        v(f"database shows order {cid} ({r['symbol']} {r['purpose']}) {r['status']} (run {r['run_id']}); "
          f"not open on the exchange: {describe(cid)}")

    ex_algos = {a["clientAlgoId"]: a for a in exchange["algos"]}
    db_algos = {k: r for k, r in db.algos.items() if r["status"] in _OPEN_ALGO}
    for cid in sorted(set(ex_algos) - set(db_algos)):
        row = db.algos.get(cid)
        a = ex_algos[cid]
        v(f"open algo order {cid} ({a['symbol']} {a['orderType']} {a['side']} @ {a['triggerPrice']}) on the "
          "exchange; database: " + (f"{row['status']} (run {row['run_id']})" if row else "no row"))
    for cid in sorted(set(db_algos) - set(ex_algos)):
        r = db_algos[cid]
        v(f"database shows algo order {cid} ({r['symbol']} {r['purpose']}) {r['status']} (run {r['run_id']}); "
          f"not open on the exchange: {describe(cid)}")

    ex_pos = {k: Decimal(a) for k, a in exchange["positions"].items() if Decimal(a) != 0}
    db_pos = {k: Decimal(r["amount"]) for k, r in db.positions.items() if Decimal(r["amount"]) != 0}
    for key in sorted(set(ex_pos) | set(db_pos)):
        e, d = ex_pos.get(key, Decimal(0)), db_pos.get(key, Decimal(0))
        if e != d:
            run = db.positions[key]["run_id"] if key in db.positions else "-"
            v(f"position {key[0]} {key[1]}: exchange {e}, database {d} (latest row: run {run})")
    return out


# ---------------------------------------------------------------------------------------------
# one run
# ---------------------------------------------------------------------------------------------


def engine_env(ex: LocalExchange, cfg: ChaosConfig) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERPDECK_", "BINANCE_"))}
    env.update(ENGINE_ENV)
    env.update({
        "PERPDECK_MODE": "sim",
        "PERPDECK_POSITION_MODE": "HEDGE" if cfg.hedge else "ONEWAY",
        "PERPDECK_SIM__EXCHANGE_REST_URL": ex.rest_url,
        "PERPDECK_SIM__EXCHANGE_WS_URL": ex.ws_url,
        "PYTHONUNBUFFERED": "1",
    })
    env.update(cfg.extra_env)
    return env


async def run_once(seed: int, cfg: ChaosConfig | None = None) -> RunResult:
    cfg = cfg or ChaosConfig()
    say = cfg.log or (lambda s: None)
    rng = random.Random(f"chaos-run-{seed}")
    schedule = make_schedule(seed, cfg)
    res = RunResult(seed, schedule)
    candles = replay_slice(rng, cfg.minutes)
    _, funding = market_data()
    base = Path(cfg.workdir) if cfg.workdir else Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    state_dir = Path(tempfile.mkdtemp(prefix=f"chaos-{seed}-", dir=base))
    res.state_dir = str(state_dir)
    strategies = [ENGINE_ENV["PERPDECK_ACTIVE_STRATEGY"]]

    sim = SimExchange(load_default_rules(), funding_rates=funding, start_time_ms=candles[0].open_time_ms,
                      position_mode=PositionMode.HEDGE if cfg.hedge else PositionMode.ONEWAY)
    ex = LocalExchange(sim, candles, speed=0, limits=RateLimits(ban_seconds=cfg.ban_seconds))
    await ex.start()
    t0 = time.monotonic()
    rec = Recorded()
    mon: ProtectionMonitor | None = None
    eng: EngineProcess | None = None
    bg: list[asyncio.Task] = []
    pending_entry_kill: list[float] = []  # restart delays of armed entry kills
    restarts: list[asyncio.Task] = []
    replay_started = False
    replay_done = asyncio.Event()

    def now() -> float:
        return time.monotonic() - t0

    def on_unexpected_exit(inc: Incarnation, tail: str) -> None:
        res.unexpected_exits += 1
        phase = "while starting" if inc.ready_s is None else "while running"
        res.violations.append(Violation(5, seed, inc.ended_s, sim.now_ms,
                                        f"engine #{inc.n} (pid {inc.pid}, run {inc.run_id or '?'}) exited by itself "
                                        f"{phase}: {inc.how}; stderr tail:\n      " + tail.replace("\n", "\n      ")))
        if replay_started and not replay_done.is_set():
            schedule_restart(random.Random(f"{seed}-{inc.n}").uniform(*cfg.restart_delay_s), "after exit")

    async def restart(after_s: float, why: str) -> None:
        assert eng is not None
        await eng.wait_exit(10)
        await asyncio.sleep(after_s)
        inc = await eng.start()
        res.restarts += 1
        say(f"  seed {seed}: {now():6.2f}s restart #{inc.n} ({why})")
        if not await eng.wait_ready(inc, cfg.ready_timeout_s) and inc.ended_s is None:
            res.notes.append(f"engine #{inc.n} not ready within {cfg.ready_timeout_s:g} s of its start")

    def schedule_restart(after_s: float, why: str) -> None:
        restarts.append(asyncio.create_task(restart(after_s, why), name="chaos-restart"))

    def tap(events: list[dict]) -> None:
        w = now()
        for ev in events:
            rec.events.append((w, ev))
            e = ev.get("e")
            if e == "ORDER_TRADE_UPDATE":
                o = ev["o"]
                rec.order_cid.setdefault(int(o["i"]), o.get("c", ""))
                rec.last_status[o.get("c", "")] = (o.get("X", ""), w)
                if o.get("x") == "TRADE":
                    rec.trade_wall[(o["s"], int(o["t"]))] = w
            elif e == "ALGO_UPDATE":
                rec.last_status[ev["o"].get("caid", "")] = (ev["o"].get("X", ""), w)
        if pending_entry_kill and eng is not None and eng.ready and any(_event_entry_fill(e) for e in events):
            delay = pending_entry_kill.pop(0)
            if eng.kill("sigkill-after-entry"):  # before the engine has even read the order's answer
                res.kills["after_entry"] += 1
                say(f"  seed {seed}: {w:6.2f}s SIGKILL right after an entry fill")
                schedule_restart(delay, "after entry kill")

    ex.add_user_event_tap(tap)
    try:
        mon = ProtectionMonitor(ex)
        eng = EngineProcess(cfg, state_dir, engine_env(ex, cfg), t0, on_unexpected_exit)
        first = await eng.start()
        if not await eng.wait_ready(first, cfg.ready_timeout_s):
            if eng.alive:  # (an exit was recorded by the watcher)
                res.violations.append(Violation(5, seed, None, None, "the engine did not get ready within "
                                                f"{cfg.ready_timeout_s:g} s:\n      " + eng.stderr_tail(first.n)))
            return res
        replay_started = True
        t0 = time.monotonic()  # the replay starts now: every time below is relative to it
        eng.t0 = t0
        for inc in eng.incarnations:
            inc.started_s = inc.ready_s = 0.0
        say(f"  seed {seed}: engine ready; replaying {cfg.minutes} min from {_iso(candles[0].open_time_ms)} "
            f"at {cfg.speed:g}x ({cfg.replay_s:.0f} s), {len(schedule)} scheduled actions")

        async def replay() -> None:
            groups = Counter(c.open_time_ms for c in candles)
            for i, t in enumerate(sorted(groups)):
                due = t0 + (i + 1) * 60.0 / cfg.speed
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                for _ in range(groups[t]):
                    await ex.advance()
            replay_done.set()

        async def run_schedule() -> None:
            f = ex.faults
            for a in schedule:
                delay = t0 + a.at_s - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if replay_done.is_set():
                    return
                k, g = a.kind, a.args
                res.injected[k] += 1
                if k == "kill":
                    if eng.kill("sigkill"):
                        res.kills["random"] += 1
                        say(f"  seed {seed}: {now():6.2f}s SIGKILL")
                        schedule_restart(g["restart_after_s"], "after kill")
                    else:
                        res.injected[k] -= 1
                    continue
                if k == "arm_entry_kill":
                    pending_entry_kill.append(g["restart_after_s"])
                    continue
                if inject(f, k, g, lambda delay, fn: bg.append(asyncio.create_task(_reset_later(delay, fn)))):
                    res.took_effect[k] += 1

        sched_task = asyncio.create_task(run_schedule(), name="chaos-schedule")
        await replay()
        sched_task.cancel()
        await asyncio.gather(sched_task, return_exceptions=True)
        pending_entry_kill.clear()
        # the end: no more faults; the last engine must be up and settled
        fired = ex.faults.fired_counts
        ex.faults.clear()
        ex.faults.clock_skew_ms = 0
        ex.faults.delay_rest_s = 0.0
        _count_fired(res, fired)
        end_s = now()
        say(f"  seed {seed}: {end_s:6.2f}s replay done; settling")
        while restarts:  # a restart may still be on its way (none is scheduled from now on)
            await asyncio.gather(*list(restarts), return_exceptions=True)
            restarts[:] = [t for t in restarts if not t.done()]
        if eng.alive and eng.current and eng.current.ready_s is None:
            await eng.wait_ready(eng.current, cfg.ready_timeout_s)
        if eng.ready:
            if not await _settle(eng, ex, rec, cfg, now):
                res.notes.append(f"not settled within {cfg.settle_timeout_s:g} s (requests in flight: "
                                 f"{ex.rest_in_flight}); compared anyway")
        else:
            res.notes.append("no engine running at the end: the final comparison is against a dead engine's database")
        # invariants 1, 3, 4 on the settled state
        check_s = now()
        db = read_db(state_dir / "perpdeck.db")
        exch = {"orders": sim.open_orders({}), "algos": sim.open_algo_orders({}),
                "positions": {(r["symbol"], r["positionSide"]): r["positionAmt"] for r in sim.position_risk({})}}

        def describe_time(key: tuple[str, int], replay_ms: int) -> tuple[float | None, str]:
            w = rec.trade_wall.get(key)
            if w is None:
                return None, "time unknown"
            return w, _engine_state_at(eng.incarnations, w)

        res.violations += check_entries(seed, rec.events, db, strategies, namespaces(db, ex.rest_url, ex.ws_url),
                                        hedge=cfg.hedge)
        res.violations += check_fills(seed, sim.all_fills(), db.fills, rec.order_cid, describe_time)
        def describe_cid(cid: str) -> str:
            st = rec.last_status.get(cid)
            if st is None:
                return "never seen on the exchange"
            return f"{st[0]} at {st[1]:.2f} s, {_engine_state_at(eng.incarnations, st[1])}"

        res.violations += check_open_state(seed, check_s, sim.now_ms, exch, db, describe_cid)
        # invariant 5: the final stop must be clean
        if eng.alive:
            inc = eng.current
            rc = await eng.interrupt(cfg.stop_timeout_s)
            tail = eng.stderr_tail(inc.n) if inc else ""
            if rc is None:
                res.violations.append(Violation(5, seed, now(), sim.now_ms,
                                                f"engine #{inc.n} did not stop within {cfg.stop_timeout_s:g} s of "
                                                "SIGINT"))
            elif rc not in (0, 130) or "Traceback" in tail:
                res.violations.append(Violation(5, seed, now(), sim.now_ms,
                                                f"engine #{inc.n} ended with exit code {rc} on SIGINT; stderr tail:\n"
                                                "      " + tail.replace("\n", "\n      ")))
        # invariant 2: everything the monitor saw, up to now
        mon.stop()
        res.violations += check_protection(seed, mon.intervals(), cfg.protect_limit_s, t0, ex.faults.refusals)
        res.stats.update(_stats(rec, sim, db, mon, cfg.protect_limit_s))
        for line in logged_exceptions(state_dir):
            res.notes.append("logged (not fatal): " + line)
    finally:
        for t in bg + restarts:
            t.cancel()
        await asyncio.gather(*bg, *restarts, return_exceptions=True)
        if eng is not None:
            await eng.cleanup()
            res.incarnations = list(eng.incarnations)
            _name_runs(eng, res)
        if mon is not None:
            mon.stop()
        ex.remove_user_event_tap(tap)
        await ex.stop()
        res.wall_s = time.monotonic() - t0
        if not cfg.keep and not res.violations:
            shutil.rmtree(state_dir, ignore_errors=True)
        else:
            _dump(state_dir, res, rec, ex, t0)
    res.violations.sort(key=lambda v: (v.invariant, v.at_s if v.at_s is not None else 1e9))
    return res


def _dump(state_dir: Path, res: RunResult, rec: Recorded, ex: LocalExchange, t0: float) -> None:
    """Beside a kept run's database: what the exchange produced (``exchange-events.jsonl``, wall s
    since the replay start + event), the faults as they took effect (``faults.jsonl``) and the
    schedule, engine starts and violations (``chaos.json``)."""
    try:
        with open(state_dir / "exchange-events.jsonl", "w") as fh:
            for w, ev in rec.events:
                fh.write(json.dumps({"wall_s": round(w, 3), "event": ev}, separators=(",", ":")) + "\n")
        with open(state_dir / "faults.jsonl", "w") as fh:
            for mono, kind, what in ex.faults.history:
                fh.write(json.dumps({"wall_s": round(mono - t0, 3), "kind": kind, "what": what}) + "\n")
        (state_dir / "chaos.json").write_text(json.dumps({
            "seed": res.seed,
            "schedule": [{"at_s": round(a.at_s, 3), "kind": a.kind, "args": a.args} for a in res.schedule],
            "incarnations": [vars(i) for i in res.incarnations],
            "violations": [vars(v) for v in res.violations],
        }, indent=1, default=str))
    except OSError:
        pass


_RUN_RE = re.compile(r"\brun ([0-9a-f]{8,32}): mode ")


def _name_runs(eng: EngineProcess, res: RunResult) -> None:
    """Fill in run ids the heartbeat did not show (from each start's log) and tag run ids in the
    violations with the engine start they belong to (``run abc/#2``)."""
    for inc in eng.incarnations:
        if inc.run_id is None:
            m = _RUN_RE.search(eng.stderr_tail(inc.n, lines=1000))
            inc.run_id = m.group(1) if m else None
    names = {inc.run_id: f"{inc.run_id}/#{inc.n}" for inc in eng.incarnations if inc.run_id}
    for v in res.violations:
        for rid, name in names.items():
            v.detail = re.sub(rf"\b{rid}\b(?!/#)", name, v.detail)


def inject(f: Any, kind: str, g: dict[str, Any], later: Callable[[float, Callable[[], None]], None]) -> bool:
    """Arm one scheduled fault on ``f`` (a :class:`Faults`). True when it took effect at once
    (bans, clock skew, slow REST, dropped sockets, an expired key); one-shot faults are counted
    from the server's ``fired`` counts at the end. ``later(delay, fn)`` undoes timed ones."""
    if kind in ("rest_5xx", "rest_drop"):
        f.fail_next(g["n"], status=g["status"], path=g["path"])
    elif kind == "rest_timeout":
        f.stall_response_next(g["seconds"], path=g["path"])
    elif kind == "rest_lost":
        f.stall_next(g["seconds"], path=g["path"])
    elif kind == "unknown_503":
        f.unknown_next(g["path"])
    elif kind == "rate_limit_429":
        f.rate_limit_next(g["retry_after_s"])
    elif kind == "ban_418":
        f.ban_for(g["seconds"])
        return True
    elif kind == "clock_skew":
        f.clock_skew_ms = ms = g["ms"]
        later(g["for_s"], lambda: setattr(f, "clock_skew_ms", 0) if f.clock_skew_ms == ms else None)
        return True
    elif kind == "slow_rest":
        f.delay_rest_s = d = g["delay_s"]
        later(g["for_s"], lambda: setattr(f, "delay_rest_s", 0.0) if f.delay_rest_s == d else None)
        return True
    elif kind == "partial_fill":
        f.split_next_fill(g["n"])
    elif kind == "dup_events":
        f.duplicate_user_events(g["n"], events=g["events"], after_s=g["after_s"])
    elif kind == "delay_events":
        f.delay_user_events(g["n"], g["seconds"], events=g["events"])
    elif kind == "reorder_events":
        f.reorder_user_events(g["n"], events=g["events"], max_hold_s=g["max_hold_s"])
    elif kind in ("drop_market", "drop_user"):
        return bool(f.drop_streams("market" if kind == "drop_market" else "private", code=g["code"]))
    elif kind == "listen_key_expiry":
        return f.expire_listen_key() is not None
    else:
        raise ValueError(f"unknown fault kind {kind!r}")
    return False


async def _reset_later(delay_s: float, fn: Callable[[], None]) -> None:
    await asyncio.sleep(delay_s)
    fn()


def _count_fired(res: RunResult, fired: dict[str, int]) -> None:
    """The server's fired counts, attributed to the schedule kinds that arm them."""
    for kind, fk in _FIRED_KIND.items():
        if res.injected.get(kind):
            res.took_effect[kind] += fired.get(fk, 0)


def _engine_state_at(incs: list[Incarnation], w: float) -> str:
    for inc in incs:
        end = inc.ended_s if inc.ended_s is not None else float("inf")
        if inc.started_s <= w <= end:
            if inc.ready_s is None or w < inc.ready_s:
                return f"engine #{inc.n} was starting"
            return f"engine #{inc.n} was running"
    prev = [i for i in incs if i.ended_s is not None and i.ended_s <= w]
    if prev:
        p = prev[-1]
        nxt = next((i for i in incs if i.started_s > w), None)
        return (f"engine down: #{p.n} {p.how} at {p.ended_s:.2f} s"
                + (f", #{nxt.n} started {nxt.started_s:.2f} s" if nxt else ""))
    return "before the engine started"


async def _settle(eng: EngineProcess, ex: LocalExchange, rec: Recorded, cfg: ChaosConfig,
                  now: Callable[[], float]) -> bool:
    """Until the last engine ran ``final_grace_s`` and for ``settle_s`` no REST request was in
    flight, no user-data event was held back, and neither exchange nor database changed (bounded
    by ``settle_timeout_s``; False when that ran out)."""
    inc = eng.current
    assert inc is not None and inc.ready_s is not None
    deadline = time.monotonic() + cfg.settle_timeout_s
    fp = db_fingerprint(eng.state_dir)
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        cur = db_fingerprint(eng.state_dir)
        if cur != fp or ex.rest_in_flight or ex.held_user_events:
            fp, quiet_since = cur, time.monotonic()
        last_event = rec.events[-1][0] if rec.events else 0.0
        quiet_for = min(time.monotonic() - quiet_since, now() - last_event)
        if quiet_for >= cfg.settle_s and now() - inc.ready_s >= cfg.final_grace_s and eng.alive:
            return True
    return False


def logged_exceptions(state_dir: Path, limit: int = 10) -> list[str]:
    """Exceptions the engines logged (JSON log records with a traceback) and survived: not an
    invariant, but worth a look. One line each: run, logger, message, the exception's last line."""
    out: list[str] = []
    for f in sorted((state_dir / "logs").glob("*.jsonl")):
        try:
            lines = f.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for ln in lines:
            try:
                doc = json.loads(ln)
            except ValueError:
                continue
            if doc.get("exc"):
                last = doc["exc"].strip().splitlines()[-1]
                out.append(f"{f.stem.removeprefix('perpdeck-')} {doc.get('logger')}: {doc.get('msg')} [{last}]")
    if len(out) > limit:
        out = out[:limit] + [f"... and {len(out) - limit} more"]
    return out


def _stats(rec: Recorded, sim: SimExchange, db: DbState, mon: ProtectionMonitor,
           limit_s: float) -> dict[str, Any]:
    entries = {ev["o"]["i"] for _, ev in rec.events if ev.get("e") == "ORDER_TRADE_UPDATE"
               and ev["o"].get("x") == "NEW" and role_of(ev["o"]["c"]) == "entry"}
    refusals = mon.ex.faults.refusals
    spans = [(u.duration_s(), refused_s(u.start_s, u.start_s + u.duration_s(), refusals)) for u in mon.intervals()]
    return {"entries": len(entries), "fills": len(sim.all_fills()), "db_fills": len(db.fills),
            "runs": len(db.runs), "longest_unprotected_s": round(max((d for d, _r in spans), default=0.0), 2),
            "longest_counted_s": round(max((d - r for d, r in spans), default=0.0), 2),
            "over_limit_refused": sum(1 for d, r in spans if d > limit_s >= d - r)}
