"""The asyncio runtime for sim mode: replays candles through the shared pipeline step, flushes the
journal to SQLite, rewrites the heartbeat, and takes operator commands between candles.

The engine itself stays synchronous; this module only decides *when* to call it. Wall time is used
for pacing the replay (``speed``) and for the heartbeat stamp, never for trading decisions.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.backtest import SimRun, finish, step, summarize
from engine.clock import WallClock
from engine.core import pump
from engine.heartbeat import write_heartbeat

if TYPE_CHECKING:
    from engine.facade import FlattenReport

log = logging.getLogger("engine.runtime")


@dataclass(frozen=True)
class RunPaths:
    state_dir: Path
    db_path: Path
    log_file: Path
    heartbeat: Path

    @classmethod
    def for_run(cls, state_dir: Path, db_path: Path, run_id: str) -> "RunPaths":
        return cls(
            state_dir=state_dir,
            db_path=db_path,
            log_file=state_dir / "logs" / f"perpdeck-{run_id}.jsonl",
            heartbeat=state_dir / "status" / "heartbeat.json",
        )


class RuntimeBase:
    """What every runtime does around the engine: journal flushing, heartbeat, operator commands."""

    def __init__(self, run: SimRun, store, paths: RunPaths, *, heartbeat_interval_s: float = 5.0,
                 flush_interval_s: float = 0.5, wall: WallClock | None = None) -> None:
        self.run_ = run
        self.store = store
        self.paths = paths
        self.heartbeat_interval_s = heartbeat_interval_s
        self.flush_interval_s = flush_interval_s
        self.wall = wall or WallClock()
        self.commands: asyncio.Queue[Any] = asyncio.Queue()
        self._stop = asyncio.Event()
        self.stopped_early = False
        self.finished = False
        self.flush_errors = 0

    def unsent_commands(self) -> list:
        """Exchange commands taken from the engine but not sent yet (a live runtime's queues)."""
        return [c for q in getattr(self, "_queues", {}).values() for c in q]

    def request_stop(self) -> None:
        self._stop.set()

    def submit(self, command: object) -> None:
        """Queue an operator command (Halt, Resume, FlattenAll, SwitchStrategy)."""
        self.commands.put_nowait(command)

    def process_signal(self, message_type: object, message_id: object, symbol: object,
                       data: object = None) -> None:
        """Hand an external signal (note 002: 110 Alpha, 112 FOMO intensified, 113 FOMO) to every
        strategy that takes them, between candles, stamped with the engine's event clock. What
        became of it is logged and published on the engine's bus as ``ExternalSignalIngested``
        (a bad field is reported there, never raised). Call it from the session's event loop."""
        from engine.events import IngestSignal

        self.submit(IngestSignal(message_type, message_id, symbol, data, source="python"))

    # -- emergency flatten ------------------------------------------------------------------------

    flatten_report = None  # FlattenReport of the last flatten (for the console and ctl)
    flatten_attempts = 6

    async def _settle(self) -> None:
        """Carry out the engine's pending exchange commands and apply what they caused."""
        raise NotImplementedError

    async def _exchange_open_state(self) -> tuple[list, list, list]:
        """(positions, open orders, open algo orders) as the exchange reports them now."""
        raise NotImplementedError

    async def flatten(self, reason: str) -> "FlattenReport":
        """Halt; cancel every open and conditional order; close every position reduce-only at
        market; then re-query the exchange until it reports flat, retrying what is left. Never
        gives up silently: the report says exactly what is still open and why."""
        from engine.events import FlattenAll
        from engine.exchange.errors import ExchangeError
        from engine.facade import FlattenReport
        from engine.model import OrderPurpose

        eng = self.run_.engine
        self.flatten_report = FlattenReport("running", 1, detail="cancelling orders and closing positions")
        eng.handle(FlattenAll(reason))
        detail = ""
        left_p: list = []
        left_o: list = []
        for attempt in range(1, self.flatten_attempts + 1):
            try:
                await self._settle()
                positions, orders, algos = await self._exchange_open_state()
            except ExchangeError as exc:  # transient: report it and try again
                detail = f"attempt {attempt}: {exc}"
                self.flatten_report = FlattenReport("running", attempt, detail=detail)
                await asyncio.sleep(min(2.0, 0.2 * 2 ** attempt))
                continue
            left_p = [f"{p.symbol} {'LONG' if p.amount > 0 else 'SHORT'} {p.amount.copy_abs()}" for p in positions]
            left_o = [f"{o.get('symbol')} {o.get('type') or o.get('orderType')} "
                      f"{o.get('clientOrderId') or o.get('clientAlgoId')}" for o in orders + algos]
            if not positions and not orders and not algos:
                self.flatten_report = FlattenReport("flat", attempt, detail="the exchange reports no positions "
                                                                             "and no open or conditional orders")
                log.warning("flatten: flat after %d attempt(s)", attempt)
                return self.flatten_report
            self.flatten_report = FlattenReport("running", attempt, tuple(left_p), tuple(left_o), detail)
            # what is still there (possibly not ours, or placed meanwhile): cancel and close it directly
            for o in algos:
                eng.orders.outbox.append(_cancel_algo(o))
            for o in orders:
                eng.orders.outbox.append(_cancel_order(o))
            for p in positions:
                eng.orders.close_position((p.symbol, p.position_side), OrderPurpose.FLATTEN, p.amount)
            await asyncio.sleep(min(2.0, 0.05 * 2 ** attempt))
        self.flatten_report = FlattenReport("failed", self.flatten_attempts, tuple(left_p), tuple(left_o),
                                            detail or "still open after every retry: act on the exchange directly")
        log.critical("flatten FAILED: still open: %s %s", left_p, left_o)
        return self.flatten_report

    async def _apply_commands(self) -> None:
        from engine.events import FlattenAll

        eng = self.run_.engine
        while not self.commands.empty():
            cmd = self.commands.get_nowait()
            if isinstance(cmd, FlattenAll):
                await self.flatten(cmd.reason)
            else:
                eng.handle(cmd)
                await self._settle()

    async def _flusher(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval_s)
            await self._flush()

    flush_errors_in_row = 0
    last_flush_wall_ms: int | None = None
    account: str | None = None
    """The exchange account whose plans this runtime keeps in the database (None: not kept —
    a self-contained sim run that no restart can continue)."""

    def _journal_plans(self) -> None:
        journal = self.run_.journal
        if self.account is None or journal is None:
            return
        eng = self.run_.engine
        for key, payload in eng.plan_updates():
            journal.plan(self.account, key[0], key[1], payload, eng.clock.now_ms())

    async def _flush(self) -> None:
        self._journal_plans()  # the plans of this moment go in the same transaction as its fills
        journal = self.run_.journal
        if journal is None or self.store is None or not journal.pending():
            return
        try:
            await journal.flush(self.store)
            self.flush_errors_in_row = 0
            self.last_flush_wall_ms = self.wall.now_ms()
        except Exception:
            self.flush_errors += 1
            self.flush_errors_in_row += 1
            log.exception("journal flush failed (records kept in memory, will retry)")

    async def _heartbeats(self) -> None:
        while True:
            self.write_heartbeat()
            await asyncio.sleep(self.heartbeat_interval_s)

    def streams_status(self) -> dict[str, Any]:
        return {"market": "in-process replay", "user": "in-process"}

    def heartbeat_doc(self) -> dict[str, Any]:
        eng = self.run_.engine
        return {
            "wall_time_ms": self.wall.now_ms(),
            "run_id": self.run_.run_id,
            "mode": self.run_.mode,
            "exchange_time_ms": eng.clock.now_ms(),
            "engine_state": eng.state.value,
            "halt_reason": eng.halt_reason,
            "strategy": eng.active_name,
            "candles": eng.candle_count,
            "positions": len(eng.positions),
            "open_orders": len(eng.orders.open_orders()),
            "open_algo_orders": len(eng.orders.open_algo_orders()),
            "journal_pending": self.run_.journal.pending() if self.run_.journal else 0,
            "db": {"path": str(self.paths.db_path), "flush_errors": self.flush_errors,
                   "last_flush_wall_ms": self.last_flush_wall_ms,
                   "healthy": self.flush_errors_in_row == 0},
            "streams": self.streams_status(),
            "guard": {
                "state": eng.state.value,
                "halt_reason": eng.halt_reason,
                "halt_source": eng.halt_source,
                "entries_today": eng.entries_today,
                "positions_opened_today": eng.positions_opened_today,
                "consecutive_losses": eng.monitor.consecutive_losses,
                "disabled_strategies": sorted(eng.monitor.disabled_strategies),
                "external_positions": sorted(f"{k[0]} {k[1].value}" for k in eng.external_keys),
            },
            "finished": self.finished,
        }

    heartbeat_failed_since_ms: int | None = None

    def write_heartbeat(self) -> None:
        try:
            write_heartbeat(self.paths.heartbeat, self.heartbeat_doc())
            self.heartbeat_failed_since_ms = None
        except OSError:
            if self.heartbeat_failed_since_ms is None:
                self.heartbeat_failed_since_ms = self.wall.now_ms()
            log.exception("could not write heartbeat %s", self.paths.heartbeat)

    def summary_extra(self) -> dict[str, Any]:
        return {
            "run_id": self.run_.run_id,
            "database": str(self.paths.db_path),
            "log_file": str(self.paths.log_file),
            "heartbeat": str(self.paths.heartbeat),
            "stopped_early": self.stopped_early,
        }

    async def _main(self) -> None:
        raise NotImplementedError

    async def run(self) -> dict[str, Any]:
        aux = [asyncio.create_task(self._flusher(), name="journal-flusher"),
               asyncio.create_task(self._heartbeats(), name="heartbeat")]
        try:
            await self._main()
        finally:
            for t in aux:
                t.cancel()
            await asyncio.gather(*aux, return_exceptions=True)
            dropped = self.run_.engine.orders.abandon_unsent(self.unsent_commands())
            if dropped:
                log.warning("stopping: %d request(s) waiting to be resent were not sent", dropped)
            await self._flush()
            self.write_heartbeat()
        return summarize(self.run_, extra=self.summary_extra())


class SimRuntime(RuntimeBase):
    """In-process replay: the sim matching engine and the engine in one synchronous step per candle."""

    def __init__(
        self,
        run: SimRun,
        store,
        paths: RunPaths,
        *,
        speed: float = 0.0,
        heartbeat_interval_s: float = 5.0,
        flush_interval_s: float = 0.5,
        chunk: int = 2000,
        close_at_end: bool = True,
        wall: WallClock | None = None,
    ) -> None:
        super().__init__(run, store, paths, heartbeat_interval_s=heartbeat_interval_s,
                         flush_interval_s=flush_interval_s, wall=wall)
        self.speed = speed
        self.chunk = chunk
        self.close_at_end = close_at_end
        self.position = 0  # candles replayed

    async def _settle(self) -> None:
        pump(self.run_.engine, self.run_.port)

    async def _exchange_open_state(self) -> tuple[list, list, list]:
        sim = self.run_.sim
        positions = [p for p in self.run_.port.positions() if p.amount != 0]
        return positions, sim.open_orders({}), sim.open_algo_orders({})

    def heartbeat_doc(self) -> dict[str, Any]:
        doc = super().heartbeat_doc()
        doc["replay_position"] = self.position
        doc["replay_total"] = len(self.run_.candles)
        return doc

    # -- tasks ----------------------------------------------------------------------------------

    async def _replay(self) -> None:
        run = self.run_
        candles = run.candles
        n = len(candles)
        t0_data = candles[0].open_time_ms if candles else 0
        t0_wall = self.wall.monotonic_s()
        i = self.position
        while i < n and not self._stop.is_set():
            if self.speed > 0:
                c = candles[i]
                due = (c.open_time_ms - t0_data) / 1000.0 / self.speed
                delay = due - (self.wall.monotonic_s() - t0_wall)
                if delay > 0:
                    try:
                        await asyncio.wait_for(self._stop.wait(), timeout=delay)
                        break
                    except asyncio.TimeoutError:
                        pass
                step(run, c)
                i += 1
            else:
                end = min(n, i + self.chunk)
                while i < end:
                    step(run, candles[i])
                    i += 1
                await asyncio.sleep(0)
            self.position = i
            if not self.commands.empty():
                await self._apply_commands()
        self.position = i
        await self._apply_commands()
        if i >= n:
            if self.close_at_end:
                finish(run)
            self.finished = True
        else:
            self.stopped_early = True
            log.warning("stopped before the end of the data (%d of %d candles); positions stay open with "
                        "their stops resting on the exchange", i, n)

    async def _main(self) -> None:
        await self._replay()


def install_stop_signals(rt: RuntimeBase):
    """SIGINT/SIGTERM: the first stops the runtime cleanly (journal flushed), a second cancels the
    session. Returns a function that removes the handlers."""
    import signal

    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    interrupts = 0

    def on_signal() -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1:
            log.warning("stopping: flushing the journal (press Ctrl-C again to force)")
            rt.request_stop()
        elif main_task is not None:
            main_task.cancel()

    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):
            pass

    def remove() -> None:
        for sig in installed:
            loop.remove_signal_handler(sig)

    return remove


class ConsoleServices:
    """The facade (for a console) and the ctl socket around a runtime, for the length of a session."""

    def __init__(self, rt: RuntimeBase, state_dir: Path, *, control: bool = True) -> None:
        from engine.control import ControlServer, socket_path
        from engine.facade import LogRing, RuntimeFacade

        self.ring = LogRing()
        logging.getLogger().addHandler(self.ring)
        self.facade = RuntimeFacade(rt, self.ring)
        rt.facade = self.facade
        self.control = ControlServer(socket_path(state_dir), self.facade, rt) if control else None

    async def __aenter__(self) -> "ConsoleServices":
        if self.control is not None:
            await self.control.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.control is not None:
            await self.control.stop()
        logging.getLogger().removeHandler(self.ring)


async def run_sim_session(settings, run, paths: RunPaths, *, install_signal_handlers: bool = True,
                          on_runtime=None, ctl_socket: bool = True) -> dict[str, Any]:
    """Open the store, record the run, replay it through :class:`SimRuntime`, close the run.

    The CLI's headless mode and the tests run exactly this. SIGINT/SIGTERM stop the replay
    cleanly (journal flushed); a second one cancels the session.
    """
    import json

    from engine.state.store import Store

    store = await Store.open(paths.db_path)
    try:
        await store.start_run(run.run_id, run.candles[0].open_time_ms if run.candles else 0, settings.mode,
                              settings.active_strategy, json.dumps(settings.redacted_dict()))
        rt = SimRuntime(run, store, paths, speed=float(settings.sim.speed),
                        heartbeat_interval_s=float(settings.heartbeat_interval_s))
        async with ConsoleServices(rt, paths.state_dir, control=ctl_socket):
            if on_runtime is not None:
                on_runtime(rt)
            remove = install_stop_signals(rt) if install_signal_handlers else (lambda: None)
            try:
                summary = await rt.run()
            finally:
                remove()
        await store.end_run(run.run_id, run.engine.clock.now_ms(), json.dumps(summary))
        return summary
    finally:
        await store.close()


def _cancel_algo(o: dict):
    from engine.orders.manager import CancelAlgoOrder

    return CancelAlgoOrder(str(o.get("symbol")), str(o.get("clientAlgoId")))


def _cancel_order(o: dict):
    from engine.orders.manager import CancelOrder

    return CancelOrder(str(o.get("symbol")), str(o.get("clientOrderId")))
