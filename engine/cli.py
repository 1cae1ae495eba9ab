"""``perpdeck`` command line.

    perpdeck                      open the console (sim mode by default)
    perpdeck --no-ui              run headless and print a summary
    perpdeck --no-ui --in-process sim without sockets (the backtest loop)
    perpdeck export trades --csv FILE
    perpdeck strategies           list registered strategies
    perpdeck sim-exchange --port N   run the local Binance-compatible exchange on its own

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
    secrets = [v.get_secret_value() for v in (settings.binance_api_key, settings.binance_api_secret) if v is not None]
    setup_logging(settings.log_level, paths.log_file, secrets, banner="MAINNET" if mode == "mainnet" else None,
                  console=not console)  # the console owns the terminal: logs go to the file and the log pane
    if mode == "mainnet":
        print("\n  *** MAINNET — REAL MONEY — every order trades real funds ***\n", file=sys.stderr)
    log.info("run %s: mode %s, symbols %s, strategy %s", run_id, mode.upper(), ",".join(settings.symbols),
             settings.active_strategy)

    async def go(on_runtime=None) -> dict[str, Any]:
        signals = on_runtime is None  # the console handles Ctrl-C itself
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

        app = ConsoleApp(SessionFacade(mode), go)
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
