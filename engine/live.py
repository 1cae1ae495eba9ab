"""The live runtime: the engine driven by the Binance adapter over real sockets.

The same sans-I/O engine as the backtest: closed candles from the market stream go to
``Engine.on_candle``, user-data events to ``Engine.on_exchange_event``, and one executor task
carries the engine's exchange commands out through the adapter (REST, off the event loop) and
reports the outcomes back. Testnet and mainnet run exactly this, against Binance's URLs.

In sim mode the adapter talks to the local Binance-compatible server. When the replay runs as
fast as possible, the runtime keeps the server in **lockstep**: it asks for one candle at a time
on the server's sim-only control socket, waits until every user-data event that candle caused has
arrived, settles the engine's commands, and only then lets the engine see the candle — the same
order as the in-process backtest, so both produce the same result on the same data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Any

from engine.backtest import SimRun
from engine.core import Engine, execute_async
from engine.exchange.binance.rest import gather_or_cancel
from engine.model import Candle, MarkPrice
from engine.restart import (
    account_key,
    exchange_now_ms,
    read_startup,
    reconcile_at_startup,
    resolve_managed,
    sync_rows,
)
from engine.runtime import RunPaths, RuntimeBase

log = logging.getLogger("engine.live")


class LiveRuntime(RuntimeBase):
    def __init__(
        self,
        run: SimRun,
        adapter,
        store,
        paths: RunPaths,
        *,
        control=None,
        heartbeat_interval_s: float = 5.0,
        flush_interval_s: float = 0.5,
        event_timeout_s: float = 30.0,
        close_at_end: bool = True,
        replay_finished=None,
    ) -> None:
        super().__init__(run, store, paths, heartbeat_interval_s=heartbeat_interval_s,
                         flush_interval_s=flush_interval_s)
        self.adapter = adapter
        self.control = control  # SimControl in lockstep sim mode, else None
        self.event_timeout_s = event_timeout_s
        self.close_at_end = close_at_end
        self.has_replay = replay_finished is not None or control is not None
        self.replay_finished = replay_finished or (lambda: False)  # a paced sim replay can end; live never does
        self.engine: Engine = run.engine
        self._pending_candles: deque[Candle] = deque()
        self._candle_arrived = asyncio.Event()
        self._queues: dict[str, deque] = {}
        self._workers: dict[str, asyncio.Task] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self.candles_received = 0
        self.stream_events: list[tuple[str, str]] = []
        self.account: str | None = None  # set when plans and intents are kept (a restart can continue)
        self._reconcile_now = asyncio.Event()
        self._reconcile_why = ""
        self._round_skipped = False
        self.busy_retry_s = 2.0
        """A round that left symbols out (a request in flight) is followed by another this soon."""
        self.reconcile_delay_s = 0.5
        """A reconnect's reconciliation waits this long so the events it brings come first."""
        self.reconcile_settings = None  # [reconcile] settings; None = no timer reconciliation
        self._intents_sent: set[str] = set()
        self._activity = 0  # user events + executed commands: a reconciliation spanning one is retried
        self.reconciliations = 0
        self._down_since: dict[str, int | None] = {}

    # -- adapter callbacks (called on the event loop by the adapter's stream tasks) ----------------

    def on_candle(self, candle: Candle) -> None:
        self.candles_received += 1
        if self.control is not None:
            self._pending_candles.append(candle)  # lockstep: the driver decides when it is processed
            self._candle_arrived.set()
            return
        self.engine.on_candle(candle)
        self._kick()

    def on_mark(self, mark: MarkPrice) -> None:
        self.engine.on_mark(mark.symbol, mark.mark_price, mark.event_time_ms)
        if self.engine.has_commands():
            self._kick()

    def on_user_event(self, fact: object) -> None:
        self._activity += 1
        self.engine.on_exchange_event(fact)
        self._kick()

    def on_stream_status(self, stream: str, state: str) -> None:
        self.stream_events.append((stream, state))
        log.info("%s stream: %s", stream, state)
        if stream == "user" and state in ("connected", "gap"):
            # The first connect: what was placed at startup may have filled before anyone listened.
            # A reconnect (dropped socket, expired listenKey): events may have been missed.
            self.reconcile_soon(f"user stream {state}")

    def reconcile_soon(self, why: str) -> None:
        """Run a reconciliation round now instead of at the next interval."""
        self._reconcile_why = why
        self._reconcile_now.set()

    def streams_status(self) -> dict[str, Any]:
        try:
            return self.adapter.stream_status()
        except Exception:  # the heartbeat must never die on a status read
            return {"market": "unknown", "user": "unknown"}

    def _tick(self) -> None:
        """Let exchange time run on between events (timers, TTLs, slices, retries). Live, the
        exchange's time is the server clock estimate; a replay's time only moves with its data."""
        if self.has_replay:
            return
        try:
            now = self.adapter.rest.server_now_ms()
        except Exception:  # noqa: BLE001 - no estimate yet: events still move the clock
            return
        self.engine.on_tick(now)
        if self.engine.has_commands():
            self._kick()

    # -- health: no new entries on a deaf engine -----------------------------------------------------

    HEALTH_HALT = "stream_health"
    _unhealthy_since_ms: int | None = None

    def health_problem(self, now_wall_ms: int) -> str | None:
        """Why new entries must wait, or None. A stream down (or, live, the market stream silent)
        for ``stream_silence_s``, or a heartbeat that could not be written, is a problem."""
        if self.reconcile_settings is None:
            return None
        limit_ms = float(self.reconcile_settings.stream_silence_s) * 1000
        st = self.streams_status()
        problems = []
        for name in ("market", "user"):
            h = st.get(name)
            if not isinstance(h, dict):
                continue
            since = self._down_since.setdefault(name, None)
            if h.get("state") != "connected":
                if since is None:
                    self._down_since[name] = since = now_wall_ms
                if now_wall_ms - since >= limit_ms:
                    problems.append(f"{name} stream {h.get('state')} for {(now_wall_ms - since) / 1000:.0f}s")
            else:
                self._down_since[name] = None
                last = int(h.get("last_message_ms") or 0)
                if name == "market" and not self.has_replay and last and now_wall_ms - last >= limit_ms:
                    problems.append(f"market stream silent for {(now_wall_ms - last) / 1000:.0f}s")
        if self.heartbeat_failed_since_ms is not None and \
                now_wall_ms - self.heartbeat_failed_since_ms >= 3 * self.heartbeat_interval_s * 1000:
            problems.append("heartbeat stale (cannot be written)")
        return "; ".join(problems) or None

    def _check_health(self) -> None:
        from engine.guard.base import EngineState

        eng = self.engine
        problem = self.health_problem(self.wall.now_ms())
        if problem is not None and eng.state is EngineState.ACTIVE:
            eng.halt_source = self.HEALTH_HALT
            eng.set_state(EngineState.HALTED, f"no new entries: {problem}")
        elif problem is None and eng.halt_source == self.HEALTH_HALT and eng.state is EngineState.HALTED:
            eng.halt_source = None
            eng.set_state(EngineState.ACTIVE, "streams healthy again")

    # -- executing the engine's commands ------------------------------------------------------------

    CLOSE_LANE = "!close"
    PROTECT_LANE = "!protect"

    def _lane(self, cmd) -> str:
        """Each symbol's commands go out in order within three lanes:

        - ``SYM``: entries and their cancels;
        - ``SYM!protect``: stops, take-profits and their moves and cancels, so a stop never waits
          behind an entry whose answer has stalled (the fill may already be known from the
          stream); an entry in turn waits until this lane is idle (see :meth:`_drain`);
        - ``SYM!close``: market closes the engine decided on, which never wait behind a stalled
          stop or cancel (reduce-only: whatever else is out, they cannot flip or open a position).
        """
        from engine.model import OrderPurpose
        from engine.orders.manager import CLOSE_PURPOSES, CancelOrder, SubmitOrder

        sym = cmd.req.symbol if hasattr(cmd, "req") else cmd.symbol
        if isinstance(cmd, SubmitOrder):
            if cmd.req.purpose in CLOSE_PURPOSES:
                return sym + self.CLOSE_LANE
            return sym if cmd.req.purpose is OrderPurpose.ENTRY else sym + self.PROTECT_LANE
        if isinstance(cmd, CancelOrder):
            st = self.engine.orders.orders.get(cmd.client_order_id)
            if st is not None and st.req.purpose in CLOSE_PURPOSES:
                return sym + self.CLOSE_LANE
            return sym if st is None or st.req.purpose is OrderPurpose.ENTRY else sym + self.PROTECT_LANE
        return sym + self.PROTECT_LANE  # conditional orders and their cancels

    def _busy_symbols(self) -> set[str]:
        """Symbols with a request out (their state is in motion)."""
        return {lane.split("!", 1)[0] for lane in self._workers}

    async def _protection_settled(self, lane: str) -> None:
        """Wait until the protection lane of ``lane``'s symbol has nothing out or queued."""
        guard = lane + self.PROTECT_LANE
        while (task := self._workers.get(guard)) is not None:
            await asyncio.wait([task])  # not ``await task``: cancelling this lane must not cancel that one

    def _kick(self) -> None:
        """Dispatch the engine's new commands at once, each symbol's in order in its lane; different
        symbols (and closes) go out concurrently."""
        for cmd in self.engine.take_commands():
            lane = self._lane(cmd)
            q = self._queues.get(lane)
            if q is None:
                q = self._queues[lane] = deque()
            q.append(cmd)
            if lane not in self._workers:
                self._workers[lane] = asyncio.get_running_loop().create_task(self._drain(lane),
                                                                               name=f"orders-{lane}")
        if self._workers:
            self._idle.clear()

    async def _drain(self, lane: str) -> None:
        q = self._queues[lane]
        try:
            while q:
                if "!" not in lane:
                    await self._protection_settled(lane)  # an entry never overtakes a stop
                cmd = q.popleft()
                self._activity += 1
                if self.account is not None and not await self._record_intent(cmd):
                    continue
                await execute_async(self.engine, self.adapter, cmd)
                self._activity += 1
                if self._status_unknown(cmd):
                    self.reconcile_soon(f"order {cmd.req.client_order_id}: status unknown")
                if self.account is not None:
                    await self._intent_outcome(cmd)
                self._kick()  # an outcome may call for more commands (e.g. the stop after a fill)
        finally:
            del self._workers[lane]
            if not q:
                self._queues.pop(lane, None)
            if not self._workers:
                self._idle.set()

    def _status_unknown(self, cmd) -> bool:
        from engine.orders.manager import SubmitOrder

        if not isinstance(cmd, SubmitOrder):
            return False
        st = self.engine.orders.orders.get(cmd.req.client_order_id)
        return st is not None and st.unknown

    # -- intents: stored before they are sent ------------------------------------------------------

    async def _record_intent(self, cmd) -> bool:
        """Store an order request before it goes out. False: an earlier process already sent an
        entry with this client id — it is not sent again (a restart resolves it by asking)."""
        from engine.exchange.errors import ExchangeError
        from engine.orders.ids import role_of
        from engine.orders.manager import SubmitAlgoOrder, SubmitOrder
        from engine.restart import intent_payload

        if isinstance(cmd, SubmitOrder):
            cid, kind = cmd.req.client_order_id, "order"
        elif isinstance(cmd, SubmitAlgoOrder):
            cid, kind = cmd.req.client_algo_id, "algo"
        else:
            return True
        if cid in self._intents_sent:
            return True  # a retry of this run's own request (same id: it cannot execute twice)
        self._intents_sent.add(cid)
        role = role_of(cid) or "external"
        try:
            new = await self.store.record_intent(self.account, self.run_.run_id, cid, symbol=cmd.req.symbol,
                                                 kind=kind, role=role, payload=intent_payload(self.engine, cmd.req, kind),
                                                 time_ms=self.engine.clock.now_ms())
        except Exception:  # noqa: BLE001 - the database is down: an entry waits, protection never does
            log.exception("could not store intent %s before sending it", cid)
            if role == "entry":
                self.engine.on_command_failed(cmd, ExchangeError(0, "not sent: the intent could not be stored"))
                return False
            return True
        if not new and role == "entry":
            log.warning("entry %s was already sent by an earlier run; not sending it again", cid)
            self.engine.on_command_failed(cmd, ExchangeError(-4015, "entry already sent by an earlier run "
                                                                    "(resolved at restart, never resent)"))
            return False
        return True

    async def _intent_outcome(self, cmd) -> None:
        from engine.model import AlgoStatus, OrderStatus
        from engine.orders.manager import SubmitAlgoOrder, SubmitOrder

        if isinstance(cmd, SubmitOrder):
            st = self.engine.orders.orders.get(cmd.req.client_order_id)
            cid, rejected = cmd.req.client_order_id, st is not None and st.status is OrderStatus.REJECTED
        elif isinstance(cmd, SubmitAlgoOrder):
            st = self.engine.orders.algos.get(cmd.req.client_algo_id)
            cid, rejected = cmd.req.client_algo_id, st is not None and st.status is AlgoStatus.REJECTED
        else:
            return
        if st is None or st.status in (OrderStatus.PENDING_NEW, AlgoStatus.PENDING_NEW):
            return  # a retry is queued: the outcome comes later
        try:
            await self.store.set_intent_state(self.account, cid, "rejected" if rejected else "acked",
                                              self.engine.clock.now_ms())
        except Exception:  # noqa: BLE001 - a restart resolves a pending intent by asking the exchange
            log.exception("could not record the outcome of intent %s", cid)

    # -- timer reconciliation ---------------------------------------------------------------------

    async def _reconciler(self) -> None:
        from engine.exchange.errors import ExchangeError

        interval = float(self.reconcile_settings.interval_s)
        while True:
            soon = self._round_skipped or any(st.unknown for st in self.engine.orders.orders.values())
            wait = min(interval, self.busy_retry_s) if soon else interval
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._reconcile_now.wait(), timeout=wait)
            if self._reconcile_now.is_set():
                self._reconcile_now.clear()
                await asyncio.sleep(self.reconcile_delay_s)  # let the events of a reconnect arrive first
                self._reconcile_now.clear()
                log.info("reconciliation now: %s", self._reconcile_why)
            try:
                await self.reconcile_once()
            except ExchangeError as exc:
                log.warning("reconciliation skipped: %s", exc)
                self._round_skipped = True  # asked again soon, not at the next interval
            except Exception:  # noqa: BLE001 - reconciliation must never kill the engine
                log.exception("reconciliation failed")

    async def reconcile_once(self, attempts: int = 3) -> bool:
        """Compare the engine with the exchange and correct it. A round during which events arrived
        or commands ran is retried (its snapshot may be older than what the engine knows)."""
        from engine.model import PositionMode
        from engine.restart import FILL_LOOKBACK_MS, FILL_MARK_SLACK_MS, fetch_missing_fills
        from engine.state.reconcile import diff_running

        eng = self.engine
        rs = self.reconcile_settings
        for _ in range(attempts):
            # exchange time now (right after a reconnect the engine's clock may still lag it)
            round_ms = max(eng.clock.now_ms(), await exchange_now_ms(self.adapter))
            before = self._activity
            busy = self._busy_symbols()  # symbols with a request out: their state is in motion
            positions = [p for p in await self.adapter.positions() if p.amount != 0]
            algos = await self.adapter.open_algo_orders()
            busy |= self._busy_symbols()
            if self._activity != before:
                await asyncio.sleep(0.05)
                continue
            # A symbol with a request in flight (a stalled POST can take the full timeout) is left
            # for the next round; every other symbol is reconciled now.
            free_pos = [p for p in positions if p.symbol not in busy]
            free_algos = [a for a in algos if str(a.get("symbol")) not in busy]
            inflight = [c for _s, c, is_algo in eng.orders.inflight(eng.clock.now_ms()) if is_algo]
            diff = diff_running(engine_amounts={k: p.amount for k, p in eng.positions.items()
                                                if p.amount and k[0] not in busy},
                                believed_stops={k: v for k, v in eng.believed_stops().items() if k[0] not in busy},
                                managed=[k for k in eng.orders.brackets if k[0] not in busy],
                                known_external=eng.external_keys, positions=free_pos, open_algos=free_algos,
                                inflight_algos=inflight, hedge=eng.params.position_mode is PositionMode.HEDGE)
            eng.apply_running_diff(diff, free_pos, external=rs.external_positions, as_of_ms=round_ms,
                                   symbols=(set(self.adapter.symbols) | {p.symbol for p in positions}) - busy)
            self._round_skipped = bool(busy)
            since = self._fill_watermark_ms
            if since is not None:
                symbols = set(self.adapter.symbols) | {p.symbol for p in positions}
                fills = await fetch_missing_fills(self.adapter, symbols, since, eng.seen_fills,
                                                  until_ms=round_ms + FILL_MARK_SLACK_MS)
                if fills:
                    eng.restore_fills(fills)
                if self.account is not None and self.run_.journal is not None:
                    self.run_.journal.fills_complete(self.account, round_ms - FILL_MARK_SLACK_MS, round_ms)
            # the next round fetches from just before this one: nothing falls between rounds,
            # however fast exchange time runs (a replay) or however long a round took
            self._fill_watermark_ms = max(self._fill_watermark_ms or 0, round_ms - FILL_LOOKBACK_MS)
            if self.account is not None:
                orders = await self.adapter.open_orders()
                busy |= self._busy_symbols()
                left: list[str] = []
                await resolve_managed(eng, self.adapter, open_orders=orders, open_algos=algos, skip_symbols=busy,
                                      left=left)
                await sync_rows(eng, self.adapter, self.store, self.account, open_orders=orders,
                                open_algos=algos, positions=positions, skip_symbols=busy, left=left)
                if left or busy:  # unanswered queries, or state in motion: the next round comes soon
                    if left:
                        log.info("reconciliation: %d item(s) left for the next round", len(left))
                    self._round_skipped = True
            self.reconciliations += 1
            self._kick()
            return True
        return False

    _fill_watermark_ms: int | None = None
    final_round_s = 5.0
    """A graceful stop ends with one reconciliation round (at most this long), so the database it
    leaves holds the exchange's last word on every order and position."""

    async def _last_round(self) -> None:
        try:
            await asyncio.wait_for(self.reconcile_once(attempts=2), timeout=self.final_round_s)
        except asyncio.TimeoutError:
            log.warning("stopping: the last reconciliation took over %.0f s; skipped", self.final_round_s)
        except Exception as exc:  # noqa: BLE001 - stopping goes on regardless
            log.warning("stopping: the last reconciliation failed (%s)", exc)

    async def _apply_operator_commands(self) -> None:
        await self._apply_commands()

    async def _settle(self) -> None:
        await self.settle()

    async def _exchange_open_state(self) -> tuple[list, list, list]:
        positions = [p for p in await self.adapter.positions() if p.amount != 0]
        return positions, await self.adapter.open_orders(), await self.adapter.open_algo_orders()

    async def settle(self) -> None:
        """Until the engine has no commands left and every event they caused has been applied."""
        for _ in range(10_000):
            self._kick()
            await self._idle.wait()
            if self.control is None:
                return
            status = await self.control.status()
            await self.adapter.wait_user_events(status["userEventSeq"], timeout_s=self.event_timeout_s)
            if not self.engine.has_commands():
                return
        raise RuntimeError("engine and exchange did not settle")

    # -- main loops -------------------------------------------------------------------------------

    async def _lockstep(self) -> None:
        """Sim at full speed: one candle at a time, in the backtest's order."""
        ctl = self.control
        while not self._stop.is_set():
            await self._apply_operator_commands()
            r = await ctl.advance()
            if r["finished"]:
                self.finished = True
                break
            # 1. every user-data event the candle caused (triggered stops …) is applied first
            await self.adapter.wait_user_events(r["userEventSeq"], timeout_s=self.event_timeout_s)
            await self.settle()
            # 2. then the closed candle itself reaches the engine
            candle = await self._take_candle(r["symbol"], r["openTime"])
            self.engine.on_candle(candle)
            await self.settle()
        if self.finished and self.close_at_end:
            self.engine.end_of_data()
            await self.settle()
        elif not self.finished:
            self._stopped()

    async def _take_candle(self, symbol: str, open_time_ms: int) -> Candle:
        deadline = asyncio.get_running_loop().time() + self.event_timeout_s
        while True:
            while self._pending_candles:
                c = self._pending_candles.popleft()
                if c.symbol == symbol and c.open_time_ms == open_time_ms:
                    return c
                log.warning("lockstep: unexpected candle %s %d while waiting for %s %d (processed in order)",
                            c.symbol, c.open_time_ms, symbol, open_time_ms)
                self.engine.on_candle(c)
                await self.settle()
            self._candle_arrived.clear()
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(f"kline {symbol} {open_time_ms} did not arrive on the market stream")
            try:
                await asyncio.wait_for(self._candle_arrived.wait(), timeout=remaining)
            except asyncio.TimeoutError:
                pass

    async def _live(self) -> None:
        """Live (testnet/mainnet, or a paced sim): react to streams until stopped or the replay ends."""
        while not self._stop.is_set():
            await self._apply_operator_commands()
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=0.2)
            except asyncio.TimeoutError:
                pass
            self._tick()
            self._check_health()
            if self.replay_finished():
                self.finished = True
                break
        await self.settle()
        if self.finished and self.close_at_end:
            self.engine.end_of_data()
            await self.settle()
        elif not self.finished:
            self._stopped()

    def _stopped(self) -> None:
        if self.has_replay:
            self.stopped_early = True
            log.warning("stopped before the end of the data; positions stay open with their stops resting "
                        "on the exchange")
        else:  # live: stopping is the normal end of a session
            log.warning("stopped by the operator; positions stay open with their stops resting on the exchange")

    async def _main(self) -> None:
        rec = None
        if self.reconcile_settings is not None and self.account is not None and self.control is None:
            rec = asyncio.create_task(self._reconciler(), name="reconciler")
        try:
            if self.control is not None:
                await self._lockstep()
            else:
                await self._live()
        finally:
            if rec is not None:
                rec.cancel()
                await asyncio.gather(rec, return_exceptions=True)
                await self._last_round()
            workers = list(self._workers.values())
            if workers:
                await asyncio.gather(*workers, return_exceptions=True)


# -- sessions -------------------------------------------------------------------------------------


async def cancel_stale_entries(adapter, *, ttl_ms: int) -> list[tuple[str, str]]:
    """Before trading: cancel our entry orders an earlier run left open past their TTL."""
    from engine.exchange.errors import ExchangeError
    from engine.orders.manager import stale_entry_orders

    stale = stale_entry_orders(await adapter.open_orders(), now_ms=adapter.rest.server_now_ms(), ttl_ms=ttl_ms)
    for symbol, coid in stale:
        try:
            await adapter.cancel_order(symbol, coid)
            log.warning("cancelled stale entry order %s on %s left by an earlier run", coid, symbol)
        except ExchangeError as err:
            log.warning("could not cancel stale entry order %s on %s: %s", coid, symbol, err)
    return stale


STARTUP_MAX_BACKOFF_S = 30.0


async def retry_startup(call, what: str, *, first_backoff_s: float = 0.5,
                        max_backoff_s: float = STARTUP_MAX_BACKOFF_S, wall_ms=None):
    """Run one startup read (or idempotent set-up call) until the exchange answers.

    Startup only reads, or sets what is already idempotent (leverage, margin type, position mode),
    so a transient failure — timeout, 5xx, 503 unknown status, 429, a 418 ban, -1021 clock skew —
    is waited out (a ban until it ends, per the exchange) instead of ending the process. A wrong
    key, a bad symbol or any other final answer is raised at once.
    """
    from engine.exchange.errors import AuthError, ExchangeConfigError, ExchangeError

    wall_ms = wall_ms or (lambda: time.time_ns() // 1_000_000)  # bans are given in wall time
    delay = first_backoff_s
    while True:
        try:
            return await call()
        except (AuthError, ExchangeConfigError):
            raise
        except ExchangeError as exc:
            if not exc.transient:
                raise
            wait = delay
            until = int(getattr(exc, "until_ms", 0) or 0)
            retry_after = getattr(exc, "retry_after_s", None)
            if until:
                # the block's end to the millisecond (Retry-After is whole seconds, rounded up): a
                # bare position's stop goes the moment the exchange takes requests again
                wait = max(0.0, (until - wall_ms()) / 1000) + 0.02
            elif retry_after:
                wait = max(wait, float(retry_after))
            log.warning("startup: %s failed (%s); trying again in %.1f s", what, exc, wait)
            await asyncio.sleep(wait)
            delay = min(delay * 2, max_backoff_s)


async def run_live_session(
    settings,
    *,
    run_id: str,
    paths: RunPaths,
    journal,
    endpoints,
    credentials,
    sim_parts: tuple | None = None,
    install_signal_handlers: bool = True,
    on_runtime=None,
    strict: bool = False,
    adapter_options: dict | None = None,
    ctl_socket: bool = True,
    replay: bool = False,
) -> tuple[dict[str, Any], SimRun]:
    """Start the adapter against ``endpoints``, configure the account, run the engine until the
    replay ends (sim) or the operator stops it, and record the run.

    ``sim_parts`` = (SimExchange, LocalExchange, candles, files) in sim mode; the local server must
    already be started. In sim mode with ``speed == 0`` the replay runs in lockstep. ``replay``: the
    endpoints are a local exchange run by another process (its time is its replay's, so the engine's
    clock moves only with its events, and the session runs until stopped).
    """
    import json

    from engine.backtest import build_engine
    from engine.exchange.binance.adapter import BinanceAdapter
    from engine.exchange.binance.rest import BinanceRest
    from engine.runtime import ConsoleServices, install_stop_signals
    from engine.state.store import Store

    holder: dict[str, LiveRuntime] = {}
    rest = BinanceRest(endpoints, credentials, recv_window_ms=int(settings.recv_window_ms),
                       limits_file=paths.state_dir / "status" / f"ratelimit-{endpoints.name}.json")
    adapter = BinanceAdapter(
        rest,
        endpoints,
        symbols=list(settings.symbols),
        ws_max_backoff_s=float(settings.ws_max_backoff_s),
        on_candle=lambda c: holder["rt"].on_candle(c),
        on_mark=lambda m: holder["rt"].on_mark(m),
        on_user_event=lambda e: holder["rt"].on_user_event(e),
        on_stream_status=lambda s_, st: holder["rt"].on_stream_status(s_, st),
        **(adapter_options or {}),
    )
    control = None
    # local, so opened before the first request: the stored intents' queries go with the first reads
    store = await Store.open(paths.db_path)
    try:
        # A restart's round trips before a bare position's stop, each one once: the clock sync beside
        # exchangeInfo (unsigned); every signed read the protection depends on at once (position mode,
        # positions, balances, open orders and algo orders, unanswered intents) beside the leverage
        # brackets; then the stop. The position mode is known before any order.
        account = None if sim_parts is not None else account_key(endpoints, credentials)
        clock = asyncio.ensure_future(retry_startup(adapter.sync_clock, "clock sync"))
        _, _, reads = await gather_or_cancel(
            clock, retry_startup(lambda: adapter.load_rules(clock), "exchange info"),
            read_startup(adapter, store, account=account, position_mode=settings.position_mode, clock=clock,
                         retry=retry_startup))
        rules = await adapter.symbol_rules()
        for n in reads.mode_notes:
            log.info("%s", n)
        positions = reads.positions
        # A self-contained sim run (its exchange lives and dies with it) keeps no plans; every other
        # session trades an account a later process may pick up, under stable client ids.
        engine = build_engine(settings, rules, run_id=run_id, journal=journal, strict=strict, namespace=account)
        engine.bootstrap(reads.account, positions)
        # exchange time: the server's clock live; a replay's clock is its data's (positions carry it)
        engine.clock.advance(max(max((p.update_time_ms for p in positions), default=0), adapter.info_time_ms)
                             if replay or sim_parts else adapter.rest.server_now_ms())
        if account is None:
            await retry_startup(lambda: cancel_stale_entries(adapter, ttl_ms=int(settings.execution.order_ttl_s) * 1000),
                                "stale entry orders")
        if sim_parts is not None:
            sim, server, candles, files = sim_parts
            starting = engine.starting_wallet
        else:
            sim, server, candles, files = None, None, [], []
            starting = engine.starting_wallet
        run = SimRun(run_id, sim, adapter, engine, journal, list(candles), list(files), starting,
                     mode=settings.mode)
        lockstep = server is not None and float(settings.sim.speed) == 0
        if lockstep:
            from engine.exchange.sim.server import SimControl

            control = await SimControl.connect(server.ws_url)
        await store.start_run(run_id, candles[0].open_time_ms if candles else engine.clock.now_ms(),
                              settings.mode, settings.active_strategy, json.dumps(settings.redacted_dict()))
        rt = LiveRuntime(run, adapter, store, paths, control=control,
                         heartbeat_interval_s=float(settings.heartbeat_interval_s),
                         replay_finished=(lambda: server.replay_finished) if server is not None
                         else ((lambda: False) if replay else None))
        holder["rt"] = rt
        if account is not None:
            await store.set_run_account(run_id, account)
            rt.account = account
            rt.reconcile_settings = settings.reconcile
            # the protection decided at startup goes out (rt._kick) before anything else, even
            # before the fills missed while down are fetched
            notes = await retry_startup(
                lambda: reconcile_at_startup(engine, adapter, store, account=account, run_id=run_id,
                                             settings=settings, reads=reads, kick=rt._kick,
                                             retry=retry_startup),
                "startup reconciliation")
            log.info("startup reconciliation: %d correction(s)", len(notes))
            rt._fill_watermark_ms = getattr(engine, "fill_window_start_ms", None)
            rt._kick()
        for n in await retry_startup(lambda: adapter.configure_symbols(leverage=int(settings.leverage),
                                                                       margin_type=settings.margin_type),
                                     "account set-up"):
            log.info("%s", n)
        async with ConsoleServices(rt, paths.state_dir, control=ctl_socket):
            if on_runtime is not None:
                on_runtime(rt)
            await adapter.start_streams()
            remove = install_stop_signals(rt) if install_signal_handlers else (lambda: None)
            try:
                summary = await rt.run()
            finally:
                remove()
        await store.end_run(run_id, engine.clock.now_ms(), json.dumps(summary))
        return summary, run
    finally:
        if control is not None:
            await control.close()
        await store.close()
        await adapter.stop()


async def run_sim_over_wire(settings, *, run_id: str, paths: RunPaths, journal, files, funding,
                            install_signal_handlers: bool = True, on_runtime=None, strict: bool = False,
                            adapter_options: dict | None = None, on_server=None,
                            ctl_socket: bool = True) -> tuple[dict[str, Any], SimRun]:
    """Sim mode: the local Binance-compatible server replays the data and the real adapter trades on it."""
    from engine.backtest import build_sim_exchange, check_symbols
    from engine.data import merged_candles
    from engine.exchange.binance.endpoints import Credentials, Endpoints
    from engine.exchange.sim.matching import load_default_rules
    from engine.exchange.sim.server import DEFAULT_API_KEY, DEFAULT_API_SECRET, LocalExchange

    rules = load_default_rules()
    check_symbols(files, rules)
    candles = merged_candles(files)
    sim = build_sim_exchange(settings, rules, candles, funding)
    server = LocalExchange(sim, candles, speed=float(settings.sim.speed))
    await server.start()
    if on_server is not None:
        on_server(server)
    try:
        endpoints = Endpoints.local(server.rest_url, server.ws_url)
        creds = Credentials(DEFAULT_API_KEY, secret=DEFAULT_API_SECRET)
        return await run_live_session(settings, run_id=run_id, paths=paths, journal=journal, endpoints=endpoints,
                                      credentials=creds, sim_parts=(sim, server, candles, files),
                                      install_signal_handlers=install_signal_handlers, on_runtime=on_runtime,
                                      strict=strict, adapter_options=adapter_options, ctl_socket=ctl_socket)
    finally:
        await server.stop()
