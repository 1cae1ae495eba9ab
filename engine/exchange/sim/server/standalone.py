"""``perpdeck sim-exchange``: build a :class:`SimExchange` from kline files, serve it, wait."""

from __future__ import annotations

import argparse
import asyncio
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Sequence

from engine.data import (
    load_funding,
    load_klines,
    merged_candles,
    sample_funding_files,
    sample_kline_files,
)
from engine.exchange.sim.matching import SimExchange, load_default_rules
from engine.exchange.sim.server.auth import DEFAULT_API_KEY, DEFAULT_API_SECRET, ApiKey
from engine.exchange.sim.server.local import LocalExchange
from engine.model import Candle


def _pem(value: str | Path | None) -> str | None:
    """PEM text, or a path to a PEM file."""
    if value is None:
        return None
    s = str(value)
    if "-----BEGIN" in s:
        return s
    return Path(s).read_text(encoding="utf-8")


def load_replay(
    data_files: Sequence[str | Path] = (),
    funding_files: Sequence[str | Path] = (),
    *,
    symbols: Sequence[str] | None = None,
    settings: Any = None,
    starting_balance: Decimal = Decimal("10000"),
) -> tuple[SimExchange, list[Candle]]:
    """A sim and its merged-by-time candles: ``data_files`` or else the bundled sample (its funding
    too). With ``settings`` the sim is configured from ``[sim]`` and the account settings."""
    rules = load_default_rules()
    if symbols is None and settings is not None and not data_files:
        symbols = list(settings.symbols)
    paths = [Path(p) for p in data_files] or sample_kline_files(symbols)
    files = [load_klines(p) for p in paths]
    unknown = sorted({f.symbol for f in files} - set(rules))
    if unknown:
        from engine.data import DataError

        raise DataError(f"no exchange rules for symbol(s) {unknown} in the sim; known: {sorted(rules)}")
    fpaths = [Path(p) for p in funding_files]
    if not fpaths and not data_files:
        fpaths = sample_funding_files(symbols)
    funding: dict[str, dict[int, Decimal]] = {}
    for p in fpaths:
        for sym, rates in load_funding(p).items():
            funding.setdefault(sym, {}).update(rates)
    candles = merged_candles(files)
    if settings is not None:
        from engine.backtest import build_sim_exchange

        sim = build_sim_exchange(settings, rules, candles, funding)
    else:
        sim = SimExchange(rules, starting_balance=starting_balance, funding_rates=funding,
                          start_time_ms=candles[0].open_time_ms if candles else 0)
    return sim, candles


async def run_standalone(
    *,
    port: int = 8080,
    ws_port: int | None = None,
    api_key: str | None = None,
    api_secret: str | None = None,
    data_files: Sequence[str | Path] = (),
    funding_files: Sequence[str | Path] = (),
    speed: float = 0.0,
    ed25519_public_key: str | Path | None = None,
    rsa_public_key: str | Path | None = None,
    host: str = "127.0.0.1",
    settings: Any = None,
    out: Callable[[str], None] | None = None,
    on_started: Callable[[LocalExchange], None] | None = None,
) -> None:
    """Serve until cancelled. ``api_key``/``api_secret`` default to the documented sim pair (an empty
    ``api_secret`` registers no HMAC secret); the public keys (PEM text or a PEM file path) are
    registered for the same API key."""
    say = out or (lambda s: print(s, flush=True))
    key = api_key or DEFAULT_API_KEY
    secret = api_secret if api_secret is not None else DEFAULT_API_SECRET
    keys: list[ApiKey] = []
    if secret:
        keys.append(ApiKey(key, hmac_secret=secret))
    for pem in (_pem(ed25519_public_key), _pem(rsa_public_key)):
        if pem:
            keys.append(ApiKey(key, public_key_pem=pem))
    if not keys:
        raise ValueError("no credentials: give --api-secret or a public key")
    sim, candles = load_replay(data_files, funding_files, settings=settings)
    ex = LocalExchange(sim, candles, keys=keys, speed=speed, host=host, rest_port=port,
                       ws_port=ws_port if ws_port is not None else (port + 1 if port else 0))
    await ex.start()
    try:
        syms = sorted({c.symbol for c in candles})
        say(f"perpdeck sim-exchange: REST {ex.rest_url}")
        say(f"perpdeck sim-exchange: WebSocket {ex.ws_url}/market  {ex.ws_url}/private  (control: {ex.ws_url}/sim)")
        say(f"perpdeck sim-exchange: API key {key}" + (f"  secret {secret}" if secret else "")
            + ("  +Ed25519" if ed25519_public_key else "") + ("  +RSA" if rsa_public_key else ""))
        say(f"perpdeck sim-exchange: {len(candles)} candles of {', '.join(syms)}; "
            + ("lockstep: send {\"method\":\"ADVANCE\",\"id\":1} on /sim to step" if speed == 0
               else f"replaying at {speed:g}x"))
        if on_started is not None:
            on_started(ex)
        await asyncio.Event().wait()
    finally:
        await ex.stop()


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--port", type=int, default=8080, help="REST port (default 8080; 0 = any)")
    p.add_argument("--ws-port", type=int, default=None, help="WebSocket port (default REST port + 1)")
    p.add_argument("--api-key", default=None)
    p.add_argument("--api-secret", default=None)
    p.add_argument("--data", nargs="*", default=[], help="kline CSV files (default: bundled sample)")
    p.add_argument("--funding", nargs="*", default=[], help="funding-rate CSV files")
    p.add_argument("--speed", type=float, default=0.0, help="0 = lockstep (ADVANCE on /sim), N = N x real time")
    p.add_argument("--ed25519-public-key", default=None, help="Ed25519 public key, PEM text or file")
    p.add_argument("--rsa-public-key", default=None, help="RSA public key, PEM text or file")
    return p


async def serve_forever_cli(argv: Sequence[str] | None = None) -> None:
    args = add_arguments(argparse.ArgumentParser(prog="perpdeck sim-exchange")).parse_args(
        list(argv) if argv is not None else sys.argv[1:])
    await run_standalone(port=args.port, ws_port=args.ws_port, api_key=args.api_key, api_secret=args.api_secret,
                         data_files=args.data, funding_files=args.funding, speed=args.speed,
                         ed25519_public_key=args.ed25519_public_key, rsa_public_key=args.rsa_public_key)
