"""``perpdeck`` command line.

    perpdeck                      open the console (sim mode by default)
    perpdeck --no-ui              run headless and print a summary
    perpdeck --no-ui --in-process sim without sockets (the backtest loop)
    perpdeck export trades --csv FILE
    perpdeck strategies           list registered strategies
    perpdeck train [--steps N] [--resume] [--seed S]   train the RL policy, then gate it (rl/, docs/rl.md)
    perpdeck optimize --strategy NAME [--trials N]      walk-forward parameter search, then the gate
    perpdeck sim-exchange --port N   run the local Binance-compatible exchange on its own
    perpdeck signal --type 113 --symbol BTC [--id ID] [--data JSON]   send an external signal to the running perpdeck
    perpdeck signal --simulate [--seed N] [--count N] [--rate-per-s X]  feed it a reproducible synthetic stream
    perpdeck backtest --strategy NAME [--data FILES] [--from D --to D]  the pipeline in a tight loop, then the report
    perpdeck backtest --compare A B … [--json]                         several strategies on the same data, one table

In sim mode the engine trades through the real Binance adapter against the local exchange
server on 127.0.0.1, which replays the data; testnet and mainnet run the same code against
Binance with your keys. Mainnet refuses to start without --confirm-real-money (or
``mainnet_real_money_confirmed = true``) and marks every output line MAINNET.

Exit status: 0 success, 2 bad configuration or input data (message on stderr names the field or
the file and line), 3 the exchange refused to start (keys, permissions, position mode …),
130 stopped by Ctrl-C before the end of the data.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import uuid
from pathlib import Path
from typing import Any, Sequence

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_EXCHANGE = 3
CONSOLE_SPEED = 600.0  # sim replay pace in the console when none is set: 10 minutes of data per second
EXIT_INTERRUPTED = 130

log = logging.getLogger("perpdeck")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="perpdeck", description="Binance USDⓈ-M perpetual futures trading console")
    p.add_argument("--config", type=Path, default=None, help="config file (default ./config.toml if present)")
    p.add_argument("--env-file", type=Path, default=Path(".env"), help="dotenv file (default ./.env)")
    p.add_argument("--no-ui", action="store_true", help="run headless: no console, print a summary at the end")
    p.add_argument("--mode", choices=["sim", "testnet", "mainnet"], default=None)
    p.add_argument("--speed", type=float, default=None,
                   help="replay speed in sim mode: 0 = as fast as possible (headless default), N = N× real time")
    p.add_argument("--symbols", default=None, help="comma-separated symbols, e.g. BTCUSDT,ETHUSDT")
    p.add_argument("--strategy", default=None, help="active strategy (see `perpdeck strategies`)")
    p.add_argument("--data", type=Path, nargs="+", default=None, help="kline CSV files to replay (sim)")
    p.add_argument("--funding", type=Path, nargs="+", default=None, help="funding-rate CSV files (sim)")
    p.add_argument("--state-dir", type=Path, default=None, help="directory for database, logs, heartbeat")
    p.add_argument("--log-level", default=None)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--in-process", action="store_true",
                   help="sim only: run the matching engine in-process (no sockets; the backtest loop)")
    p.add_argument("--confirm-real-money", action="store_true",
                   help="required for --mode mainnet: I understand that mainnet orders trade real money")
    sub = p.add_subparsers(dest="command")
    exp = sub.add_parser("export", help="export journal data")
    exp_sub = exp.add_subparsers(dest="what", required=True)
    tr = exp_sub.add_parser("trades", help="export trades as CSV")
    tr.add_argument("--csv", type=Path, required=True, help="output CSV path")
    tr.add_argument("--run", default=None, help="run id (default: the last run)")
    rep = sub.add_parser("report", help="performance statistics per strategy from the journal")
    rep.add_argument("--run", default=None, help="run id (default: the last run, unless --from/--to is given)")
    rep.add_argument("--from", dest="date_from", default=None, metavar="YYYY-MM-DD",
                     help="first UTC day of trade exits (inclusive); across all runs unless --run is given")
    rep.add_argument("--to", dest="date_to", default=None, metavar="YYYY-MM-DD",
                     help="last UTC day of trade exits (inclusive)")
    rep.add_argument("--strategy", dest="report_strategy", default=None, metavar="NAME",
                     help="only this strategy's trades")
    rep.add_argument("--equity", default=None, metavar="USDT",
                     help="starting equity for return %% and drawdown %% (default: as recorded for the run)")
    rep.add_argument("--json", dest="report_json", action="store_true", help="print the figures as JSON")
    sub.add_parser("strategies", help="list registered strategies")
    trn = sub.add_parser("train", help="train the RL policy (SAC) in the foreground, then run the promotion gate")
    trn.add_argument("--steps", dest="train_steps", type=int, default=None, help="total steps (default [rl] total_steps)")
    trn.add_argument("--resume", dest="train_resume", action="store_true", help="continue from the last checkpoint")
    trn.add_argument("--seed", dest="train_seed", type=int, default=None, help="seed (default [rl] seed)")
    trn.add_argument("--no-gate", dest="train_no_gate", action="store_true", help="train only; skip the gate")
    trn.add_argument("--gate-only", dest="train_gate_only", action="store_true",
                     help="skip training: gate the best checkpoint (promote it if it passes)")
    opt = sub.add_parser("optimize", help="walk-forward Bayesian search of a strategy's parameters, then the gate")
    opt.add_argument("--strategy", dest="opt_strategy", required=True, metavar="NAME", help="strategy to tune")
    opt.add_argument("--trials", dest="opt_trials", type=int, default=30, help="trials per walk-forward fold (30)")
    opt.add_argument("--folds", dest="opt_folds", type=int, default=3, help="walk-forward folds (3)")
    opt.add_argument("--seed", dest="opt_seed", type=int, default=0, help="sampler seed (0)")
    sig = sub.add_parser("signal", help="send an external signal (note 002) to the running perpdeck (same state "
                                        "directory), or --simulate a stream of them")
    sig.add_argument("--type", dest="sig_type", default=None, metavar="TYPE",
                     help="110 (Alpha), 112 (FOMO intensified) or 113 (FOMO)")
    sig.add_argument("--symbol", dest="sig_symbol", default=None, help="e.g. BTC or BTCUSDT")
    sig.add_argument("--id", dest="sig_id", default=None, help="message id (default: a new unique one)")
    sig.add_argument("--data", dest="sig_data", default=None, metavar="JSON", help="optional JSON object")
    sig.add_argument("--simulate", dest="sig_simulate", action="store_true",
                     help="send a reproducible synthetic stream (FOMO/Alpha pairs, lone signals, duplicates)")
    sig.add_argument("--seed", dest="sig_seed", type=int, default=0, help="--simulate: stream seed (0)")
    sig.add_argument("--count", dest="sig_count", type=int, default=50, help="--simulate: signals to send (50)")
    sig.add_argument("--rate-per-s", dest="sig_rate", type=float, default=5.0,
                     help="--simulate: signals per second of wall time (5; 0 = as fast as possible)")
    sig.add_argument("--json", dest="sig_json", action="store_true", help="print each outcome as a JSON line")
    bt = sub.add_parser("backtest", help="run strategies over kline files in the tight loop (no sockets) and print "
                                         "the report; --compare for several side by side")
    bt.add_argument("--strategy", dest="bt_strategy", default=None, metavar="NAME",
                    help="strategy to test (default: active_strategy)")
    bt.add_argument("--compare", dest="bt_compare", nargs="+", default=None, metavar="NAME",
                    help="several strategies on the same data, one table ('all' = every registered strategy)")
    bt.add_argument("--data", dest="bt_data", type=Path, nargs="+", default=None, metavar="FILE",
                    help="kline CSV files (default: sim.data_files, else the bundled sample)")
    bt.add_argument("--funding", dest="bt_funding", type=Path, nargs="+", default=None, metavar="FILE",
                    help="funding-rate CSV files (default: sim.funding_files; the bundled sample's with it)")
    bt.add_argument("--from", dest="bt_from", default=None, metavar="YYYY-MM-DD", help="first UTC day (inclusive)")
    bt.add_argument("--to", dest="bt_to", default=None, metavar="YYYY-MM-DD", help="last UTC day (inclusive)")
    bt.add_argument("--symbols", dest="bt_symbols", default=None, metavar="SYMBOLS",
                    help="only these symbols of the files (comma-separated)")
    bt.add_argument("--operator-halts", dest="bt_operator_halts", action="store_true",
                    help="keep max_consecutive_losses and strategy_loss_limit_pct (halts that wait for an operator; "
                         "off by default in a backtest)")
    bt.add_argument("--json", dest="bt_json", action="store_true", help="print the figures as JSON")
    ctl = sub.add_parser("ctl", help="operate a running perpdeck (same state directory) over its local socket")
    ctl.add_argument("action", choices=["status", "halt", "resume", "flatten"])
    sx = sub.add_parser("sim-exchange", help="run the local Binance-compatible exchange on its own")
    sx.add_argument("--port", type=int, default=8080, help="REST port (default 8080)")
    sx.add_argument("--ws-port", type=int, default=None, help="WebSocket port (default REST port + 1)")
    sx.add_argument("--api-key", default=None, help="API key to accept (default: the documented sim key)")
    sx.add_argument("--api-secret", default=None, help="HMAC secret for that key (default: the sim secret)")
    sx.add_argument("--rsa-public-key", type=Path, default=None, help="register an RSA public key (PEM) for the key")
    sx.add_argument("--ed25519-public-key", type=Path, default=None,
                    help="register an Ed25519 public key (PEM) for the key")
    return p


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    o: dict[str, Any] = {}
    if args.mode:
        o["mode"] = args.mode
    if args.symbols:
        o["symbols"] = [s.strip() for s in args.symbols.split(",") if s.strip()]
    if args.strategy:
        o["active_strategy"] = args.strategy
    if args.state_dir:
        o["state_dir"] = args.state_dir
    if args.log_level:
        o["log_level"] = args.log_level
    sim: dict[str, Any] = {}
    if args.speed is not None:
        sim["speed"] = args.speed
    if args.data:
        sim["data_files"] = args.data
    if args.funding:
        sim["funding_files"] = args.funding
    if sim:
        o["sim"] = sim
    return o


def _fail(msg: str) -> int:
    print(f"perpdeck: {msg}", file=sys.stderr)
    return EXIT_BAD_INPUT


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from engine.config import ConfigError, load_settings

    try:
        settings = load_settings(config_path=args.config, env_file=args.env_file, overrides=overrides_from(args))
    except ConfigError as exc:
        return _fail(f"configuration error:\n{exc}")

    _register_rl_strategy(settings)
    if args.command == "train":
        return _train(settings, args)
    if args.command == "optimize":
        return _optimize(settings, args)
    if args.command == "strategies":
        from engine.strategies.base import available

        for name, desc in available().items():
            marker = "*" if name == settings.active_strategy else " "
            print(f"{marker} {name:<16} {desc}")
        return EXIT_OK
    if args.command == "export":
        return _export_trades(settings, args)
    if args.command == "report":
        return _report(settings, args)
    if args.command == "sim-exchange":
        return _sim_exchange(settings, args)
    if args.command == "ctl":
        return _ctl(settings, args)
    if args.command == "signal":
        return _signal(settings, args)
    if args.command == "backtest":
        return _backtest(settings, args)
    if settings.mode == "mainnet" and not (args.confirm_real_money or settings.mainnet_real_money_confirmed):
        return _fail(
            "MAINNET trades REAL MONEY and is not confirmed: pass --confirm-real-money or set "
            "mainnet_real_money_confirmed = true"
        )
    if settings.mode != "sim" and not settings.has_api_keys:
        return _fail(f"mode {settings.mode!r} needs API keys: set BINANCE_API_KEY and BINANCE_API_SECRET "
                     "(environment or .env) or api_key_file")
    if args.in_process and settings.mode != "sim":
        return _fail("--in-process is for sim mode only")
    if not args.no_ui:
        if settings.mode == "sim" and args.speed is None and float(settings.sim.speed) == 0:
            # headless replays flat out; a console a person watches replays at a watchable pace
            settings = settings.model_copy(update={"sim": settings.sim.model_copy(update={"speed": CONSOLE_SPEED})})
        return run_headless(settings, in_process=args.in_process, console=True)
    return run_headless(settings, json_out=args.json, in_process=args.in_process)


def _register_rl_strategy(settings) -> None:
    """``rl-sac`` joins the strategy registry when a policy has been promoted (rl/ imports numpy
    only for this; torch stays out of the engine)."""
    try:
        from rl.files import policy_file

        if not policy_file(settings).exists():
            return  # nothing promoted: numpy stays out of a start that does not need it
        from rl.policy import register
    except ImportError:  # the rl extra (numpy, gymnasium) is not installed
        return
    try:
        register(settings)
    except Exception as exc:  # noqa: BLE001 - a broken policy file must not stop perpdeck
        log.warning("rl-sac not registered: %s", exc)


def _console_trainer(settings):
    """The console's background trainer, when ``[rl] enabled`` and the rl extra is installed."""
    if not settings.rl.enabled:
        return None
    try:
        from rl.worker import build_trainer, rl_available
    except ImportError:
        return None
    return build_trainer(settings) if rl_available() else None


def _train(settings, args) -> int:
    try:
        from rl.cli import train_command
    except ImportError as exc:
        return _fail(f"training needs the rl extra (pip install -e '.[rl]'): {exc}")
    return train_command(settings, steps=args.train_steps, resume=args.train_resume, seed=args.train_seed,
                         gate=not args.train_no_gate, gate_only=args.train_gate_only)


def _optimize(settings, args) -> int:
    try:
        from rl.cli import optimize_command
    except ImportError as exc:
        return _fail(f"optimize needs optuna and numpy (pip install -e '.[rl]'): {exc}")
    return optimize_command(settings, strategy=args.opt_strategy, trials=args.opt_trials, folds=args.opt_folds,
                            seed=args.opt_seed)


def _export_trades(settings, args) -> int:
    from engine.state.export import export_trades_csv
    from engine.state.store import Store, StoreError

    db = settings.db_path
    if not Path(db).exists():
        return _fail(f"no database at {db} (run perpdeck first, or pass --state-dir)")

    async def go() -> int:
        store = await Store.open(db)
        try:
            return await export_trades_csv(store, args.csv, args.run)
        finally:
            await store.close()

    try:
        n = asyncio.run(go())
    except StoreError as exc:
        return _fail(str(exc))
    print(f"wrote {n} trades to {args.csv}")
    return EXIT_OK


def _report(settings, args) -> int:
    from engine.state.report import (
        ReportError,
        UnknownRunError,
        format_report,
        format_report_json,
        load_report,
        parse_day,
        parse_equity,
    )
    from engine.state.store import Store, StoreError

    try:
        date_from = None if args.date_from is None else parse_day(args.date_from, "--from")
        date_to = None if args.date_to is None else parse_day(args.date_to, "--to")
        equity = None if args.equity is None else parse_equity(args.equity, "--equity")
        if date_from is not None and date_to is not None and date_from > date_to:
            raise ReportError(f"--from {date_from} is after --to {date_to}")
    except ReportError as exc:
        return _fail(str(exc))
    db = settings.db_path
    if not Path(db).exists():
        return _fail(f"no database at {db} (run perpdeck first, or pass --state-dir)")

    async def go():
        store = await Store.open(db)
        try:
            return await load_report(store, run_id=args.run, date_from=date_from, date_to=date_to,
                                     strategy=args.report_strategy, equity=equity)
        finally:
            await store.close()

    try:
        report = asyncio.run(go())
    except UnknownRunError as exc:
        return _fail(f"--run: {exc}")
    except (ReportError, StoreError) as exc:
        return _fail(str(exc))
    print(format_report_json(report) if (args.report_json or args.json) else format_report(report))
    return EXIT_OK


def _ctl(settings, args) -> int:
    from engine.control import request, socket_path

    path = socket_path(Path(settings.state_dir))
    if not path.exists():
        return _fail(f"no running perpdeck with state directory {settings.state_dir} (no {path})")
    try:
        reply = asyncio.run(request(path, args.action))
    except (OSError, asyncio.TimeoutError) as exc:
        return _fail(f"could not reach perpdeck at {path}: {type(exc).__name__}")
    if args.json or args.action == "status":
        print(json.dumps(reply, indent=1))
    else:
        print(reply.get("message") or json.dumps(reply.get("flatten") or reply, indent=1))
    return EXIT_OK if reply.get("ok") else 1


def _signal(settings, args) -> int:
    """``perpdeck signal``: one signal, or a simulated stream, over the ctl socket."""
    from engine.control import request, socket_path
    from engine.ingest.envelope import EnvelopeError, describe, parse_envelope

    if args.sig_simulate:
        if args.sig_count < 1:
            return _fail(f"--count: expected at least 1, got {args.sig_count}")
        if not args.sig_rate >= 0:
            return _fail(f"--rate-per-s: expected 0 or more, got {args.sig_rate}")
        items, source = simulated_signals(args.sig_seed, args.sig_count), "simulate"
    else:
        missing = [opt for opt, v in (("--type", args.sig_type), ("--symbol", args.sig_symbol)) if v is None]
        if missing:
            return _fail(f"{' and '.join(missing)} required (or --simulate)")
        data = None
        if args.sig_data is not None:
            try:
                data = json.loads(args.sig_data)
            except ValueError as exc:
                return _fail(f"--data: not valid JSON ({exc})")
        item: dict[str, Any] = {"type": args.sig_type, "id": args.sig_id or f"cli-{uuid.uuid4().hex[:12]}",
                                "symbol": args.sig_symbol}
        if data is not None:
            item["data"] = data
        items, source = [item], "cli"
    try:
        for obj in items:
            parse_envelope(obj, source)
    except EnvelopeError as exc:
        return _fail(f"bad signal: {exc}")
    path = socket_path(Path(settings.state_dir))
    if not path.exists():
        return _fail(f"no running perpdeck with state directory {settings.state_dir} (no {path}): start perpdeck "
                     "first, or pass the same --state-dir")

    async def go() -> list[dict]:
        import time

        out = []
        start = time.monotonic()
        for i, obj in enumerate(items):
            if args.sig_rate > 0 and i:
                delay = start + i / args.sig_rate - time.monotonic()  # the sender's pace, not engine time
                if delay > 0:
                    await asyncio.sleep(delay)
            reply = await request(path, "signal", timeout_s=30.0, signal=obj, source=source)
            doc = reply.get("result") or {"ok": False, "status": "error", "reason": reply.get("error")}
            print(json.dumps(doc, default=str) if args.sig_json else describe(doc), flush=True)
            out.append(doc)
        return out

    try:
        docs = asyncio.run(go())
    except (OSError, asyncio.TimeoutError) as exc:
        return _fail(f"could not reach perpdeck at {path}: {type(exc).__name__}")
    if args.sig_simulate and not args.sig_json:
        by: dict[str, int] = {}
        for d in docs:
            by[str(d.get("status"))] = by.get(str(d.get("status")), 0) + 1
        print(f"sent {len(docs)} simulated signals (seed {args.sig_seed}): "
              + ", ".join(f"{k} {v}" for k, v in sorted(by.items())))
    if any(d.get("status") == "unavailable" for d in docs):
        return EXIT_EXCHANGE
    return EXIT_OK if all(d.get("ok") for d in docs) else 1


def simulated_signals(seed: int, count: int) -> list[dict[str, Any]]:
    """The first ``count`` signals of the reproducible synthetic stream ``seed`` as JSON objects
    (the engine stamps its own time on them; their order, types, ids and symbols are the stream's)."""
    from engine.strategies.signal_sim import SignalSimulator

    return [{"type": s.message_type, "id": s.message_id, "symbol": s.symbol, "data": dict(s.data)}
            for s in SignalSimulator(seed).take(count)]


def _backtest(settings, args) -> int:
    """``perpdeck backtest``: the pipeline in the tight loop over the data, then the report."""
    from engine.backtest import load_market_data, run_backtest, select_candles
    from engine.data import DataError, load_funding, load_klines
    from engine.state.report import (
        ReportError,
        format_comparison,
        format_report,
        parse_day,
        report_dict,
    )
    from engine.strategies.base import StrategyError, available

    try:
        date_from = None if args.bt_from is None else parse_day(args.bt_from, "--from")
        date_to = None if args.bt_to is None else parse_day(args.bt_to, "--to")
        if date_from is not None and date_to is not None and date_from > date_to:
            raise ReportError(f"--from {date_from} is after --to {date_to}")
    except ReportError as exc:
        return _fail(str(exc))
    if args.bt_compare and args.bt_strategy:
        return _fail("give --strategy NAME or --compare A B …, not both")
    names = list(args.bt_compare or [args.bt_strategy or settings.active_strategy])
    if names == ["all"]:
        names = list(available())
    unknown = [n for n in names if n not in available()]
    if unknown:
        return _fail(f"{'--compare' if args.bt_compare else '--strategy'}: unknown strategy {unknown[0]!r}; "
                     f"expected one of {sorted(available())}")
    symbols = [s.strip().upper() for s in args.bt_symbols.split(",") if s.strip()] if args.bt_symbols else None
    try:
        if args.bt_data:
            files = [load_klines(p) for p in args.bt_data]
            funding: dict = {}
            for p in args.bt_funding or [Path(p) for p in settings.sim.funding_files]:
                for sym, rates in load_funding(p).items():
                    funding.setdefault(sym, {}).update(rates)
        else:
            sim = settings.sim.model_copy(update={"funding_files": list(args.bt_funding)}) if args.bt_funding \
                else settings.sim
            wide = settings.model_copy(update={"sim": sim, "symbols": symbols or list(settings.symbols)})
            files, funding = load_market_data(wide)
        files = select_candles(files, date_from=date_from, date_to=date_to, symbols=symbols)
    except DataError as exc:
        return _fail(str(exc))
    if not files:
        return _fail("no candles to test: check --data, --symbols and --from/--to")
    from engine.logs import setup_logging

    setup_logging(args.log_level or "ERROR", None)  # the engine's own lines would bury the table
    results = []
    try:
        for name in names:
            results.append(run_backtest(settings, name, files, funding, operator_halts=args.bt_operator_halts))
    except (StrategyError, DataError) as exc:
        return _fail(str(exc))
    candles = sum(len(f.candles) for f in files)
    periods = [s["period"] for s in results[0].summaries]
    start = results[0].summaries[0]["starting_balance"]
    head = (f"backtest — {candles:,} candles of {', '.join(sorted({f.symbol for f in files}))}, "
            + "; ".join(f"{a} → {b}" for a, b in periods)
            + f"; starting balance {start} USDT" + ("" if args.bt_operator_halts else "; operator halts off"))
    if len(periods) > 1:
        head += (f"\n  {len(periods)} separate periods (data gaps over a day), each run from a fresh account; "
                 "return % and drawdown on the one starting balance")
    if args.bt_json:
        doc = {"candles": candles, "symbols": sorted({f.symbol for f in files}), "periods": periods,
               "files": [str(f.path) for f in files], "operator_halts": bool(args.bt_operator_halts),
               "strategies": {r.strategy: {**report_dict(r.report), "wall_s": round(r.wall_s, 3),
                                           "summaries": r.summaries} for r in results}}
        print(json.dumps(doc, indent=1, default=str))
    elif len(results) == 1:
        print(head)
        print(format_report(results[0].report))
    else:
        print(head)
        print(format_comparison([(r.strategy, r.report) for r in results]))
        print(f"({len(results)} strategies, {sum(r.wall_s for r in results):.1f} s of pipeline time)")
    return EXIT_OK


def _sim_exchange(settings, args) -> int:
    from engine.exchange.sim.server import run_standalone

    try:
        asyncio.run(run_standalone(
            port=args.port,
            ws_port=args.ws_port if args.ws_port is not None else args.port + 1,
            api_key=args.api_key,
            api_secret=args.api_secret,
            rsa_public_key=args.rsa_public_key.read_text() if args.rsa_public_key else None,
            ed25519_public_key=args.ed25519_public_key.read_text() if args.ed25519_public_key else None,
            data_files=[Path(p) for p in settings.sim.data_files],
            funding_files=[Path(p) for p in settings.sim.funding_files],
            speed=float(settings.sim.speed),
            settings=settings,
        ))
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_OK


def _credentials(settings):
    from engine.exchange.binance.endpoints import Credentials

    key = settings.binance_api_key.get_secret_value()
    secret = settings.binance_api_secret.get_secret_value()
    if secret.lstrip().startswith("-----BEGIN"):
        return Credentials(key, private_key_pem=secret)  # RSA or Ed25519 private key (PEM)
    return Credentials(key, secret=secret)


def _next_port_ws(rest_url: str) -> str:
    """``http://127.0.0.1:8080`` -> ``ws://127.0.0.1:8081`` (`perpdeck sim-exchange`'s default layout)."""
    from urllib.parse import urlsplit

    parts = urlsplit(rest_url)
    return f"ws://{parts.hostname}:{(parts.port or 80) + 1}"


def run_headless(settings, *, json_out: bool = False, run_id: str | None = None, in_process: bool = False,
                 console: bool = False) -> int:
    """Validate everything, then run until the data ends (sim) or the operator stops it.

    Headless: Ctrl-C/SIGTERM stop cleanly and the summary is printed. ``console``: the Textual
    console runs with the engine inside its event loop; the summary is printed after it closes."""
    from engine.backtest import build_sim_run, format_summary, load_market_data
    from engine.data import DataError
    from engine.logs import setup_logging
    from engine.runtime import RunPaths, run_sim_session
    from engine.state.journal import Journal
    from engine.strategies.base import StrategyError, available

    run_id = run_id or uuid.uuid4().hex[:12]
    mode = settings.mode
    # Everything that can be wrong with the input is checked before the database is touched.
    files: list = []
    funding: dict = {}
    run = None
    journal = Journal(run_id, record_candles=True)
    try:
        if settings.active_strategy not in available():
            raise StrategyError(f"active_strategy: unknown strategy {settings.active_strategy!r}; "
                                f"expected one of {sorted(available())}")
        if mode == "sim" and settings.sim.exchange_rest_url:
            pass  # an already running local exchange replays its own data
        elif mode == "sim":
            files, funding = load_market_data(settings)
            if not files:
                return _fail(f"no kline data for symbols {settings.symbols} (set sim.data_files or --data)")
            if in_process:
                run = build_sim_run(settings, run_id=run_id, files=files, funding=funding, journal=journal)
    except (DataError, StrategyError) as exc:
        return _fail(str(exc))

    paths = RunPaths.for_run(Path(settings.state_dir), Path(settings.db_path), run_id)
    secrets = [v.get_secret_value() for v in (settings.binance_api_key, settings.binance_api_secret,
                                              settings.signals.token) if v is not None]
    setup_logging(settings.log_level, paths.log_file, secrets, banner="MAINNET" if mode == "mainnet" else None,
                  console=not console)  # the console owns the terminal: logs go to the file and the log pane
    if mode == "mainnet":
        print("\n  *** MAINNET — REAL MONEY — every order trades real funds ***\n", file=sys.stderr)
    log.info("run %s: mode %s, symbols %s, strategy %s", run_id, mode.upper(), ",".join(settings.symbols),
             settings.active_strategy)

    async def go(on_runtime=None) -> dict[str, Any]:
        """The session, with the external-signal endpoint and file follower ([signals]) around it."""
        from engine.ingest import IngestServices

        ingest = IngestServices(settings.signals)
        try:
            return await session(ingest.wrap(on_runtime), signals=on_runtime is None)  # console: its own Ctrl-C
        finally:
            await ingest.close()

    async def session(on_runtime, *, signals: bool) -> dict[str, Any]:
        if run is not None:
            return await run_sim_session(settings, run, paths, on_runtime=on_runtime,
                                         install_signal_handlers=signals)
        from engine.live import run_live_session, run_sim_over_wire

        if mode == "sim" and settings.sim.exchange_rest_url:
            from engine.exchange.binance.endpoints import Credentials, Endpoints
            from engine.exchange.sim.server import DEFAULT_API_KEY, DEFAULT_API_SECRET

            rest_url = settings.sim.exchange_rest_url.replace("ws://", "http://")
            ws_url = settings.sim.exchange_ws_url or _next_port_ws(rest_url)
            creds = _credentials(settings) if settings.has_api_keys else Credentials(
                DEFAULT_API_KEY, secret=DEFAULT_API_SECRET)
            summary, _ = await run_live_session(settings, run_id=run_id, paths=paths, journal=journal,
                                                endpoints=Endpoints.local(rest_url, ws_url), credentials=creds,
                                                on_runtime=on_runtime, install_signal_handlers=signals,
                                                replay=True)
            return summary
        if mode == "sim":
            summary, _ = await run_sim_over_wire(settings, run_id=run_id, paths=paths, journal=journal,
                                                 files=files, funding=funding, on_runtime=on_runtime,
                                                 install_signal_handlers=signals)
            return summary
        from engine.exchange.binance.endpoints import Endpoints

        endpoints = Endpoints.mainnet() if mode == "mainnet" else Endpoints.testnet()
        summary, _ = await run_live_session(settings, run_id=run_id, paths=paths, journal=journal,
                                            endpoints=endpoints, credentials=_credentials(settings),
                                            on_runtime=on_runtime, install_signal_handlers=signals)
        return summary

    if console:
        from tui.launch import ConsoleApp, SessionFacade

        app = ConsoleApp(SessionFacade(mode, trainer=_console_trainer(settings)), go)
        app.run()
        if app.session_error is not None and not isinstance(app.session_error, asyncio.CancelledError):
            print(f"perpdeck: engine stopped: {app.session_error}", file=sys.stderr)
            return EXIT_EXCHANGE
        if app.summary is not None:
            print(format_summary(app.summary))
        return EXIT_OK

    from engine.exchange.errors import ExchangeError

    try:
        summary = asyncio.run(go())
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("perpdeck: forced exit", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ExchangeError as exc:
        print(f"perpdeck: exchange error: {exc}", file=sys.stderr)
        return EXIT_EXCHANGE
    if json_out:
        print(json.dumps(summary, indent=1))
    else:
        print(format_summary(summary))
    return EXIT_INTERRUPTED if summary.get("stopped_early") else EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
