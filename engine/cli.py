"""``perpdeck`` command line.

    perpdeck                      open the console (sim mode by default)
    perpdeck --no-ui              run headless and print a summary
    perpdeck export trades --csv FILE
    perpdeck strategies           list registered strategies

Exit status: 0 success, 2 bad configuration or input data (message on stderr names the field or
the file and line), 130 stopped by Ctrl-C before the end of the data.
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
    sub = p.add_subparsers(dest="command")
    exp = sub.add_parser("export", help="export journal data")
    exp_sub = exp.add_subparsers(dest="what", required=True)
    tr = exp_sub.add_parser("trades", help="export trades as CSV")
    tr.add_argument("--csv", type=Path, required=True, help="output CSV path")
    tr.add_argument("--run", default=None, help="run id (default: the last run)")
    sub.add_parser("strategies", help="list registered strategies")
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
    if settings.mode != "sim":
        return _fail(
            f"mode {settings.mode!r}: trading through the Binance adapter is not available in this build yet; "
            "use mode = \"sim\""
        )
    if not args.no_ui:
        print("perpdeck: the full-screen console is not available in this build yet; running headless.",
              file=sys.stderr)
    return run_headless(settings, json_out=args.json)


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


def run_headless(settings, *, json_out: bool = False, run_id: str | None = None) -> int:
    """Validate everything, then run the sim pipeline headless and print the summary."""
    from engine.backtest import build_sim_run, format_summary, load_market_data
    from engine.data import DataError
    from engine.logs import setup_logging
    from engine.runtime import RunPaths, run_sim_session
    from engine.state.journal import Journal
    from engine.strategies.base import StrategyError

    run_id = run_id or uuid.uuid4().hex[:12]
    # Everything that can be wrong with the input is checked before the database is touched.
    try:
        files, funding = load_market_data(settings)
        if not files:
            return _fail(f"no kline data for symbols {settings.symbols} (set sim.data_files or --data)")
        journal = Journal(run_id, record_candles=True)
        run = build_sim_run(settings, run_id=run_id, files=files, funding=funding, journal=journal)
    except (DataError, StrategyError) as exc:
        return _fail(str(exc))

    paths = RunPaths.for_run(Path(settings.state_dir), Path(settings.db_path), run_id)
    secrets = []
    if settings.binance_api_key is not None:
        secrets.append(settings.binance_api_key.get_secret_value())
    if settings.binance_api_secret is not None:
        secrets.append(settings.binance_api_secret.get_secret_value())
    setup_logging(settings.log_level, paths.log_file, secrets)
    log.info("run %s: %d candles, %d symbols, strategy %s", run_id, len(run.candles), len(files),
             settings.active_strategy)

    async def go() -> dict[str, Any]:
        return await run_sim_session(settings, run, paths)

    try:
        summary = asyncio.run(go())
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("perpdeck: forced exit", file=sys.stderr)
        return EXIT_INTERRUPTED
    if json_out:
        print(json.dumps(summary, indent=1))
    else:
        print(format_summary(summary))
    return EXIT_INTERRUPTED if summary.get("stopped_early") else EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
