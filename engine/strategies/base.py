"""Strategies emit signals only: ``on_candle(closed candle) -> Signal | None``.

A strategy never sizes, never sends orders, never reads the account. Parameters are a frozen
dataclass validated at construction (bad config names the field). Strategies are registered by
name and built from config through :func:`build_strategy`.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable, Protocol

from engine.model import Candle, Signal

log = logging.getLogger(__name__)


class StrategyError(ValueError):
    """Bad strategy name or parameters."""


class Strategy(Protocol):
    name: str

    def on_candle(self, candle: Candle) -> Signal | None: ...


Factory = Callable[[dict[str, Any]], Strategy]
_REGISTRY: dict[str, tuple[Factory, str]] = {}
_TAKES_MEMBERS: set[str] = set()  # composites: their factory also takes ``member_params``


def register(name: str, description: str, *, takes_members: bool = False) -> Callable[[Factory], Factory]:
    """Register a factory ``raw -> strategy``; ``takes_members``: a composite whose factory is
    ``(raw, member_params=None)`` and builds its members with ``member_params[<member>]``."""

    def deco(factory: Factory) -> Factory:
        _REGISTRY[name] = (factory, description)
        if takes_members:
            _TAKES_MEMBERS.add(name)
        return factory

    return deco


def available() -> dict[str, str]:
    _load_builtins()
    return {k: v[1] for k, v in sorted(_REGISTRY.items())}


def build_strategy(name: str, params: dict[str, Any] | None = None, *,
                   member_params: dict[str, dict[str, Any]] | None = None) -> Strategy:
    """Build a registered strategy from its config table. ``member_params`` (every strategy's
    table, as ``settings.strategies``) goes to composites, whose members get their own overrides."""
    _load_builtins()
    if name not in _REGISTRY:
        raise StrategyError(f"active_strategy: unknown strategy {name!r}; expected one of {sorted(_REGISTRY)}")
    if name in _TAKES_MEMBERS:
        return _REGISTRY[name][0](dict(params or {}), member_params=member_params)  # type: ignore[call-arg]
    return _REGISTRY[name][0](dict(params or {}))


def params_from(cls: type, name: str, raw: dict[str, Any]):
    """Build a frozen params dataclass from config, naming the bad field on error."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(raw) - set(fields)
    if unknown:
        raise StrategyError(f"strategies.{name}: unknown parameter(s) {sorted(unknown)}; expected {sorted(fields)}")
    kwargs = {}
    for k, v in raw.items():
        typ = type(getattr(cls(), k))
        try:
            kwargs[k] = typ(v)
        except (TypeError, ValueError):
            raise StrategyError(f"strategies.{name}.{k}: expected {typ.__name__}, got {v!r}") from None
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise StrategyError(f"strategies.{name}: {exc}") from None


class SafeStrategy:
    """Calls a strategy so that its bugs cannot stop the engine: errors are logged and counted."""

    __slots__ = ("inner", "name", "errors")

    def __init__(self, inner: Strategy) -> None:
        self.inner = inner
        self.name = inner.name
        self.errors = 0

    def on_candle(self, candle: Candle) -> Signal | None:
        try:
            return self.inner.on_candle(candle)
        except Exception:
            self.errors += 1
            if self.errors <= 10 or self.errors % 1000 == 0:
                log.exception("strategy %s failed on %s %d (error #%d)", self.name, candle.symbol,
                              candle.open_time_ms, self.errors)
            return None


def _load_builtins() -> None:
    from engine.strategies import (  # noqa: F401  (each registers itself)
        adx_trend,
        bollinger_reversion,
        confluence,
        donchian_breakout,
        ema_trend,
        ensemble,
        regime_switch,
    )
