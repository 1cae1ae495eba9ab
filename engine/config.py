"""Configuration: typed, validated, frozen settings and the one function that loads them.

Where settings come from (highest precedence first):

1. **Overrides** passed to :func:`load_settings` (the CLI's flags). Nested dicts
   (``{"sim": {"speed": 10}}``) and dotted keys (``{"sim.speed": 10}``) are both accepted;
   keys whose value is ``None`` are ignored, so a CLI can pass unset options straight through.
2. **Environment variables** ``PERPDECK_<SETTING>``; nested settings use ``__``
   (``PERPDECK_RISK__STOP_LOSS_PCT=2``, ``PERPDECK_SIM__SPEED=10``). Lists are JSON
   (``PERPDECK_SYMBOLS='["BTCUSDT","ETHUSDT"]'``); ``PERPDECK_SYMBOLS`` also accepts a plain
   comma-separated list. Empty variables count as unset. Names are case-insensitive.
3. **A ``.env`` file** (default ``.env`` in the working directory; a missing file is fine) with
   the same variable names.
4. **``config.toml``** (default ``config.toml`` in the working directory if present; an
   explicitly named file must exist). Unknown keys are errors, so typos are never ignored.
5. Built-in defaults (identical to the shipped ``config.toml``).

API credentials are deliberately *not* ordinary settings. They are read only from the
environment variables ``BINANCE_API_KEY`` / ``BINANCE_API_SECRET`` (or the same names in
``.env``), or from the key file named by ``api_key_file``, and never from ``config.toml`` or
overrides. The environment wins over the key file. The key file holds exactly two non-empty
lines, the API key then the API secret (``#`` comment lines and blank lines are ignored), and
must not be readable by group or others (``chmod 600``). Secrets never appear in ``repr``,
``str``, error messages or :meth:`Settings.redacted_dict`.

Constructing :class:`Settings` directly (``Settings(leverage=5)``) reads *no* environment and
no files: it is a plain validated value, handy in tests. Only :func:`load_settings` looks at
the outside world.

Relative paths (``state_dir``, ``database_path``, data files, ``api_key_file``) are relative
to the working directory.
"""

from __future__ import annotations

import contextvars
import difflib
import json
import os
import re
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import annotated_types
from pydantic import (
    AliasChoices,
    BaseModel,
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

__all__ = [
    "ConfigError",
    "RiskSettings",
    "Settings",
    "SimSettings",
    "RlSettings",
    "load_settings",
    "ENV_PREFIX",
    "API_KEY_ENV",
    "API_SECRET_ENV",
]

ENV_PREFIX = "PERPDECK_"
API_KEY_ENV = "BINANCE_API_KEY"
API_SECRET_ENV = "BINANCE_API_SECRET"

#: ``PERPDECK_*`` variables that are not settings but may legitimately be set (e.g. read by the
#: CLI to locate files). Any other unknown ``PERPDECK_*`` variable is reported as a typo.
RESERVED_ENV_VARS = frozenset({"PERPDECK_CONFIG", "PERPDECK_ENV_FILE"})

_SECRET_FIELDS = ("binance_api_key", "binance_api_secret")
#: Keys refused in config.toml / overrides because they look like credentials.
_SECRET_KEY_NAMES = frozenset(
    {"binance_api_key", "binance_api_secret", "api_key", "api_secret", "secret_key", "secret"}
)
_SECRETISH = re.compile(r"secret|api[_-]?key|password|passphrase|token|private", re.IGNORECASE)
_SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,20}USDT$")


class ConfigError(Exception):
    """A configuration problem. ``str(err)`` is a complete, user-facing (multi-line) message.

    The CLI prints it to stderr and exits with status 2.
    """


# --------------------------------------------------------------------------- field helpers


def _reject_bool(value: Any) -> Any:
    # Pydantic would quietly turn ``leverage = true`` into 1; a boolean is never a number here.
    if isinstance(value, bool):
        raise ValueError("expected a number, not true/false")
    return value


_NoBool = BeforeValidator(_reject_bool)
Pct = Annotated[Decimal, _NoBool]


def _expand_user(value: Any) -> Any:
    return value.expanduser() if isinstance(value, Path) else value


UserPath = Annotated[Path, AfterValidator(_expand_user)]


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


_FROZEN = ConfigDict(frozen=True, extra="forbid", validate_default=True)


# --------------------------------------------------------------------------- models


class RiskSettings(BaseModel):
    """Limits enforced by the risk guard before any order is sent. Percentages are 0-100."""

    model_config = _FROZEN

    max_position_pct: Pct = Field(
        default=Decimal("10"),
        gt=0,
        le=100,
        description="Largest initial margin of any one position, as % of account equity.",
    )
    position_size_pct: Pct = Field(
        default=Decimal("10"),
        gt=0,
        le=100,
        description=(
            "Margin committed per entry, as % of account equity (notional = margin x leverage). "
            "Must not exceed max_position_pct."
        ),
    )
    max_total_exposure_pct: Pct = Field(
        default=Decimal("50"),
        gt=0,
        le=100,
        description=(
            "Largest total initial margin across all open positions, as % of account equity. "
            "Must be at least max_position_pct."
        ),
    )
    max_daily_trades: Annotated[int, _NoBool] = Field(
        default=20,
        ge=0,
        description="Most new entries allowed per UTC day; 0 blocks all new entries.",
    )
    max_daily_loss_pct: Pct = Field(
        default=Decimal("5"),
        gt=0,
        le=100,
        description=(
            "Stop opening positions for the rest of the UTC day once the day's realised plus "
            "unrealised loss reaches this % of the day's starting equity."
        ),
    )
    stop_loss_pct: Pct = Field(
        default=Decimal("3"),
        gt=0,
        lt=100,
        description="Protective stop distance from the entry price, in % of price.",
    )
    take_profit_1_pct: Pct = Field(
        default=Decimal("5"),
        ge=0,
        description=(
            "First take-profit (TP1) distance from the entry price, in % of price; it closes "
            "take_profit_1_close_pct of the position. 0 = no partial take-profit."
        ),
    )
    take_profit_1_close_pct: Pct = Field(
        default=Decimal("50"),
        gt=0,
        le=100,
        description="Share of the position TP1 closes, in % of the filled quantity.",
    )
    take_profit_2_pct: Pct = Field(
        default=Decimal("10"),
        gt=0,
        description="Final take-profit (TP2) distance from the entry price, in % of price; it closes the rest.",
    )
    max_notional_usdt: Annotated[Decimal, _NoBool] = Field(
        default=Decimal("0"),
        ge=0,
        description="Largest notional of one position on any symbol, in USDT; 0 = only the leverage bracket limits it.",
    )
    max_notional_by_symbol: dict[str, Annotated[Decimal, _NoBool]] = Field(
        default_factory=dict,
        description="Per-symbol notional caps in USDT that replace max_notional_usdt, e.g. { BTCUSDT = 5000 }.",
    )
    max_positions_per_day: Annotated[int, _NoBool] = Field(
        default=10,
        ge=0,
        description="Most positions opened per UTC day (counted when an entry fills); 0 blocks all new entries.",
    )
    max_consecutive_losses: Annotated[int, _NoBool] = Field(
        default=6,
        ge=0,
        description="Halt new entries after this many losing trades in a row (resume by hand); 0 = off.",
    )
    strategy_loss_limit_pct: Pct = Field(
        default=Decimal("3"),
        ge=0,
        le=100,
        description=(
            "Disable a strategy once its closed trades have lost this % of the starting equity "
            "(net of fees and funding); resume re-enables it. 0 = off."
        ),
    )
    funding_blackout_min: Annotated[int, _NoBool] = Field(
        default=5,
        ge=0,
        le=239,
        description="No new entries this many minutes before and after each funding time (00/08/16 UTC); 0 = off.",
    )
    atr_period: Annotated[int, _NoBool] = Field(
        default=14,
        ge=2,
        le=1000,
        description="Candles in the 1m ATR used for volatility sizing.",
    )
    atr_max_pct: Pct = Field(
        default=Decimal("0.5"),
        ge=0,
        description=(
            "When the 1m ATR exceeds this % of price, the entry size is scaled by atr_max_pct / ATR%; "
            "0 = off."
        ),
    )
    shock_move_pct: Pct = Field(
        default=Decimal("3"),
        ge=0,
        description=(
            "Market-shock halt: a closed 1m candle whose range (high - low) exceeds this % of its "
            "open halts new entries; 0 = off."
        ),
    )
    shock_cooldown_s: Annotated[int, _NoBool] = Field(
        default=900,
        ge=0,
        description="Seconds after a market shock before the halt is re-evaluated (lifted if no new shock).",
    )
    min_trade_size: Annotated[Decimal, _NoBool] = Field(
        default=Decimal("20"),
        ge=0,
        description="Smallest entry worth sending, in USDT notional; smaller sized entries are denied.",
    )

    @model_validator(mode="after")
    def _check_relations(self) -> RiskSettings:
        if self.position_size_pct > self.max_position_pct:
            raise ValueError(
                f"position_size_pct ({self.position_size_pct}) must not exceed "
                f"max_position_pct ({self.max_position_pct})"
            )
        if self.max_total_exposure_pct < self.max_position_pct:
            raise ValueError(
                f"max_total_exposure_pct ({self.max_total_exposure_pct}) must be at least "
                f"max_position_pct ({self.max_position_pct})"
            )
        if self.take_profit_1_pct and self.take_profit_1_pct >= self.take_profit_2_pct:
            raise ValueError(
                f"take_profit_1_pct ({self.take_profit_1_pct}) must be below "
                f"take_profit_2_pct ({self.take_profit_2_pct}), or 0 to turn TP1 off"
            )
        for symbol, cap in self.max_notional_by_symbol.items():
            if cap <= 0:
                raise ValueError(f"max_notional_by_symbol.{symbol} must be above 0 USDT, got {cap}")
        return self


class ExitSettings(BaseModel):
    """How an open position is managed after entry (besides its stop and take-profits)."""

    model_config = _FROZEN

    break_even_trigger_pct: Pct = Field(
        default=Decimal("1"),
        ge=0,
        description=(
            "Move the stop to entry plus fees once price has moved this % in favour; "
            "0 = use break_even_trigger_r (both 0 = no break-even)."
        ),
    )
    break_even_trigger_r: Annotated[Decimal, _NoBool] = Field(
        default=Decimal("0"),
        ge=0,
        description="Break-even trigger as a multiple of the stop distance (R); used when break_even_trigger_pct = 0.",
    )
    break_even_timeout_s: Annotated[int, _NoBool] = Field(
        default=14400,
        ge=0,
        description="Close at market if break-even is not reached within this many seconds of entry; 0 = no time limit.",
    )
    trailing: Literal["off", "exchange", "engine"] = Field(
        default="off",
        description=(
            "Trailing stop: \"exchange\" rests a TRAILING_STOP_MARKET on Binance, \"engine\" moves the "
            "stop itself as price makes new extremes, \"off\" = none."
        ),
    )
    trailing_activation_pct: Pct = Field(
        default=Decimal("2"),
        gt=0,
        description="Profit, in % of the entry price, at which the trailing stop starts to follow.",
    )
    trailing_callback_pct: Pct = Field(
        default=Decimal("1"),
        ge=Decimal("0.1"),
        le=Decimal("20"),
        description="Distance the trailing stop keeps behind the best price, in % (Binance allows 0.1-20).",
    )

    @field_validator("trailing", mode="before")
    @classmethod
    def _lower_trailing(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_trigger(self) -> ExitSettings:
        if self.break_even_trigger_pct and self.break_even_trigger_r:
            raise ValueError("set break_even_trigger_pct or break_even_trigger_r, not both (the other must be 0)")
        return self


class ExecutionSettings(BaseModel):
    """How entries are sent: order type, time to live, slicing, and retries."""

    model_config = _FROZEN

    entry_order: Literal["market", "limit"] = Field(
        default="market",
        description="Entry order type: \"market\", or \"limit\" (GTC at the signal price, cancelled after order_ttl_s).",
    )
    limit_offset_bps: Annotated[Decimal, _NoBool] = Field(
        default=Decimal("0"),
        ge=0,
        le=500,
        description="Limit entries are placed this many basis points better than the signal price.",
    )
    order_ttl_s: Annotated[int, _NoBool] = Field(
        default=120,
        gt=0,
        description="Seconds an unfilled limit entry may rest before it is cancelled (also the age at which "
                    "orders left from earlier runs are cleaned up).",
    )
    split: Literal["off", "twap", "vwap"] = Field(
        default="off",
        description=(
            "Slice large entries: \"twap\" = equal slices over split_duration_s, \"vwap\" = slices "
            "weighted by the volume profile of recent candles, \"off\" = one order."
        ),
    )
    split_min_notional: Annotated[Decimal, _NoBool] = Field(
        default=Decimal("20000"),
        gt=0,
        description="Entries of at least this notional (USDT) are sliced when split is on.",
    )
    split_slices: Annotated[int, _NoBool] = Field(
        default=5,
        ge=2,
        le=100,
        description="Number of slices a split entry is sent in.",
    )
    split_duration_s: Annotated[int, _NoBool] = Field(
        default=300,
        ge=60,
        description="Time over which the slices of a split entry are sent, in seconds.",
    )
    vwap_lookback: Annotated[int, _NoBool] = Field(
        default=1440,
        ge=1440,
        le=43200,
        description=(
            "Closed 1m candles of history behind the VWAP volume profile: each slice is weighted by the "
            "volume traded in the same minutes of the day over this history (1440 = the last day); "
            "until a day of history exists, slices are equal."
        ),
    )
    position_wait_s: Annotated[float, _NoBool] = Field(
        default=5.0,
        gt=0,
        le=60,
        description=(
            "After an entry fill, wait at most this long for the exchange to report the position before "
            "placing protection anyway."
        ),
    )
    retry_attempts: Annotated[int, _NoBool] = Field(
        default=3,
        ge=0,
        le=10,
        description="Retries of an order on transient errors (timeouts, 5xx, rate limits) before giving up.",
    )
    retry_backoff_s: Annotated[float, _NoBool] = Field(
        default=0.5,
        ge=0,
        le=30,
        description="Wait before the first retry, in seconds; doubled for each further retry.",
    )

    @field_validator("entry_order", "split", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


class ReconcileSettings(BaseModel):
    """Restart reconciliation and health checks (the [reconcile] table)."""

    model_config = _FROZEN

    interval_s: Annotated[float, _NoBool] = Field(
        default=60.0,
        ge=5,
        le=3600,
        allow_inf_nan=False,
        description=(
            "How often, in seconds, open orders, algo orders, positions and balances are compared with "
            "the exchange and the database corrected (also done once at startup)."
        ),
    )
    unprotected: Literal["protect", "close"] = Field(
        default="protect",
        description=(
            "A position of ours found without a resting stop: \"protect\" places one at once, "
            "\"close\" closes it reduce-only at market."
        ),
    )
    external_positions: Literal["adopt", "ignore"] = Field(
        default="ignore",
        description=(
            "A position opened outside perpdeck: \"adopt\" puts it under a protective stop and manages "
            "it; \"ignore\" shows it and leaves it alone (it still counts against exposure)."
        ),
    )
    inflight_timeout_s: Annotated[float, _NoBool] = Field(
        default=10.0,
        gt=0,
        le=600,
        allow_inf_nan=False,
        description=(
            "An order sent but neither acknowledged nor rejected after this many seconds is re-queried "
            "by its client id."
        ),
    )
    stream_silence_s: Annotated[float, _NoBool] = Field(
        default=30.0,
        ge=5,
        le=3600,
        allow_inf_nan=False,
        description=(
            "A market or user-data stream silent this long (seconds) halts new entries until it is "
            "heard from again."
        ),
    )

    @field_validator("unprotected", "external_positions", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


class SimSettings(BaseModel):
    """The offline simulator used in ``mode = "sim"``."""

    model_config = _FROZEN

    starting_balance: Annotated[Decimal, _NoBool] = Field(
        default=Decimal("10000"),
        gt=0,
        description="Initial USDT wallet balance of the simulated account.",
    )
    data_files: list[UserPath] = Field(
        default_factory=list,
        description=(
            "Kline files to replay (Binance 1m kline CSV, optionally .gz). "
            "Empty = the bundled sample (BTCUSDT, ETHUSDT, SOLUSDT)."
        ),
    )
    funding_files: list[UserPath] = Field(
        default_factory=list,
        description=(
            "Funding-rate history CSVs. Empty = the bundled sample, else default_funding_rate."
        ),
    )
    taker_fee_rate: Annotated[Decimal, _NoBool] = Field(
        default=Decimal("0.0005"),
        ge=0,
        lt=1,
        description="Fee charged on taker fills, as a fraction of notional (0.0005 = 0.05%).",
    )
    maker_fee_rate: Annotated[Decimal, _NoBool] = Field(
        default=Decimal("0.0002"),
        ge=0,
        lt=1,
        description="Fee charged on maker fills, as a fraction of notional (0.0002 = 0.02%).",
    )
    slippage_bps: Annotated[Decimal, _NoBool] = Field(
        default=Decimal("1"),
        ge=0,
        description="Adverse slippage applied to market fills, in basis points (1 bp = 0.01%).",
    )
    default_funding_rate: Annotated[Decimal, _NoBool] = Field(
        default=Decimal("0.0001"),
        gt=-1,
        lt=1,
        description=(
            "Funding rate per 8h interval used when no funding history covers a symbol, "
            "as a fraction (0.0001 = 0.01%)."
        ),
    )
    speed: Annotated[float, _NoBool] = Field(
        default=0.0,
        ge=0,
        allow_inf_nan=False,
        description="Replay speed: 0 = as fast as possible; N = N times real time.",
    )
    exchange_rest_url: str = Field(
        default="",
        description=(
            "REST URL of an already running local exchange (`perpdeck sim-exchange`) to trade on instead "
            "of starting one, e.g. http://127.0.0.1:8080; empty = start one in-process."
        ),
    )
    exchange_ws_url: str = Field(
        default="",
        description=(
            "WebSocket URL of that exchange, e.g. ws://127.0.0.1:8081; empty = the REST port + 1."
        ),
    )

    @field_validator("exchange_rest_url", "exchange_ws_url")
    @classmethod
    def _local_url(cls, value: str) -> str:
        value = value.strip()
        if not value:
            return value
        from urllib.parse import urlsplit

        parts = urlsplit(value)
        if parts.scheme not in ("http", "ws") or parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"expected a local http:// or ws:// URL on 127.0.0.1, got {value!r}")
        return value.rstrip("/")


class RlSettings(BaseModel):
    """The RL worker (``rl/``): SAC training, the promotion gate and the ``rl-sac`` strategy."""

    model_config = _FROZEN

    enabled: bool = Field(
        default=True,
        description="Attach the background RL trainer to the console (when torch and stable-baselines3 are installed).",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto",
        description="Where SAC trains: \"auto\" = CUDA when available else CPU, \"cpu\", or \"cuda\" (must exist).",
    )
    symbol: str = Field(
        default="BTCUSDT",
        description="The symbol whose 1m klines (sim.data_files, else the bundled sample) train the policy.",
    )
    total_steps: Annotated[int, _NoBool] = Field(
        default=200_000, ge=1, description="Environment steps (decisions) to train for in total, across resumes.",
    )
    seed: Annotated[int, _NoBool] = Field(default=0, ge=0, description="Seed of the learner and the environments.")
    checkpoint_dir: str = Field(
        default="",
        description="Where checkpoints and the promoted policy are written; empty = <state_dir>/rl.",
    )
    eval_every_steps: Annotated[int, _NoBool] = Field(
        default=10_000, ge=1,
        description="Evaluate on the validation split (and checkpoint) every this many steps.",
    )
    train_fraction: Annotated[float, _NoBool] = Field(
        default=0.6, gt=0, lt=1, allow_inf_nan=False,
        description="Oldest share of the data used for training (split by time).",
    )
    validation_fraction: Annotated[float, _NoBool] = Field(
        default=0.2, gt=0, lt=1, allow_inf_nan=False,
        description="Next share, used only to choose the best checkpoint; the rest (most recent) is the holdout.",
    )
    decision_every: Annotated[int, _NoBool] = Field(
        default=5, ge=1, le=1440, description="Candles between two decisions of the policy (k).",
    )
    episode_steps: Annotated[int, _NoBool] = Field(
        default=576, ge=1, description="Decisions per training episode (576 x 5 min = 2 days).",
    )
    max_notional: Annotated[float, _NoBool] = Field(
        default=10_000.0, gt=0, allow_inf_nan=False, description="USDT notional of a target of +-1.",
    )
    deadband: Annotated[float, _NoBool] = Field(
        default=0.05, ge=0, lt=2, allow_inf_nan=False,
        description="No order while |target - current position fraction| is below this.",
    )
    drawdown_penalty: Annotated[float, _NoBool] = Field(
        default=0.1, ge=0, allow_inf_nan=False, description="Reward penalty per unit of new drawdown (lambda).",
    )
    max_drawdown: Annotated[float, _NoBool] = Field(
        default=0.3, gt=0, le=1, allow_inf_nan=False,
        description="A training episode ends when its drawdown reaches this fraction of peak equity.",
    )
    learning_rate: Annotated[float, _NoBool] = Field(
        default=3e-4, gt=0, allow_inf_nan=False, description="SAC learning rate.",
    )
    batch_size: Annotated[int, _NoBool] = Field(default=256, ge=1, description="SAC minibatch size.")
    buffer_size: Annotated[int, _NoBool] = Field(
        default=1_000_000, ge=1, description="Replay buffer capacity (capped at total_steps).",
    )
    learning_starts: Annotated[int, _NoBool] = Field(
        default=5_000, ge=0, description="Random-action steps before the first gradient step.",
    )
    train_freq: Annotated[int, _NoBool] = Field(
        default=4, ge=1, description="Environment steps between two training calls.",
    )
    gradient_steps: Annotated[int, _NoBool] = Field(
        default=1, ge=1, description="Gradient steps per training call.",
    )
    net_arch: list[Annotated[int, _NoBool, annotated_types.Ge(1)]] = Field(
        default_factory=lambda: [128, 128], min_length=1, description="Hidden layer widths of actor and critics.",
    )
    gamma: Annotated[float, _NoBool] = Field(
        default=0.99, gt=0, le=1, allow_inf_nan=False, description="SAC discount factor.",
    )
    entry_threshold: Annotated[float, _NoBool] = Field(
        default=0.25, gt=0, le=1, allow_inf_nan=False,
        description="rl-sac strategy: a target of at least this (long) or at most minus this (short) is a signal.",
    )
    gate_max_drawdown_pct: Annotated[float, _NoBool] = Field(
        default=20.0, gt=0, le=100, allow_inf_nan=False,
        description="Promotion gate: the candidate's holdout max drawdown must not exceed this %.",
    )
    gate_sub_windows: Annotated[int, _NoBool] = Field(
        default=4, ge=1, le=100,
        description="Promotion gate: the holdout is cut into this many equal windows; the candidate must win most.",
    )
    gate_cost_multiplier: Annotated[float, _NoBool] = Field(
        default=2.0, ge=1, allow_inf_nan=False,
        description="Promotion gate: fees and slippage are multiplied by this for the stress run.",
    )
    gate_incumbent: str = Field(
        default="",
        description="Promotion gate: the current strategy to beat; empty = active_strategy.",
    )

    @field_validator("symbol", mode="before")
    @classmethod
    def _upper_symbol(cls, value: Any) -> Any:
        return _upper(value)

    @field_validator("symbol")
    @classmethod
    def _check_symbol(cls, value: str) -> str:
        if not _SYMBOL_RE.match(value):
            raise ValueError(f"expected a USDT perpetual symbol such as BTCUSDT, got {value!r}")
        return value

    @model_validator(mode="after")
    def _check_split(self) -> RlSettings:
        if self.train_fraction + self.validation_fraction >= 1:
            raise ValueError(
                f"train_fraction ({self.train_fraction}) + validation_fraction ({self.validation_fraction}) "
                "must be below 1: the rest is the holdout"
            )
        return self


class SignalSettings(BaseModel):
    """External signals in (note 002): the local HTTP endpoint and the followed JSON-lines file.

    The token is a secret: set it with ``PERPDECK_SIGNALS__TOKEN`` (environment or ``.env``) rather
    than in ``config.toml``; it never appears in ``repr``, logs, errors or the stored run config."""

    model_config = _FROZEN

    http_port: Annotated[int, _NoBool] = Field(
        default=8790,
        ge=0,
        le=65535,
        description="Port of the signal endpoint on 127.0.0.1 (POST /signal); 0 = any free port (logged).",
    )
    token: SecretStr | None = Field(
        default=None,
        description=(
            "Bearer token the HTTP endpoint requires (at least 16 characters); unset = endpoint off. "
            "Prefer PERPDECK_SIGNALS__TOKEN in the environment or .env."
        ),
    )
    follow_file: UserPath | None = Field(
        default=None,
        description="JSON-lines file of signals (one JSON object a line) followed as it grows; unset = off.",
    )
    follow_from_start: bool = Field(
        default=False,
        description="Read follow_file from its first line (true) or only lines added after start (false).",
    )

    @field_validator("token", "follow_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("token")
    @classmethod
    def _check_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().strip()) < 16:
            raise ValueError("expected a random token of at least 16 characters, e.g. from "
                             "`python -c 'import secrets; print(secrets.token_urlsafe(24))'`")
        return value


class Settings(BaseSettings):
    """All perpdeck settings. Frozen; build with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        validate_default=True,
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        case_sensitive=False,
        env_ignore_empty=True,
        env_file=None,
        toml_file=None,
    )

    mode: Literal["sim", "testnet", "mainnet"] = Field(
        default="sim",
        description=(
            "Where orders go: sim = offline simulator, testnet = Binance futures testnet, "
            "mainnet = real money."
        ),
    )
    symbols: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["BTCUSDT", "ETHUSDT", "SOLUSDT"],
        description="USDT-margined perpetual symbols to trade, e.g. BTCUSDT (case-insensitive).",
    )
    leverage: Annotated[int, _NoBool] = Field(
        default=3, ge=1, le=125, description="Leverage set on every traded symbol (1-125x)."
    )
    margin_type: Literal["ISOLATED", "CROSSED"] = Field(
        default="ISOLATED",
        description="Margin mode set on every traded symbol: ISOLATED or CROSSED.",
    )
    position_mode: Literal["ONEWAY", "HEDGE"] = Field(
        default="ONEWAY",
        description="Account position mode: ONEWAY (one net position per symbol) or HEDGE.",
    )
    recv_window_ms: Annotated[int, _NoBool] = Field(
        default=5000,
        ge=1,
        le=60000,
        description="Validity window of signed REST requests, in milliseconds (Binance max 60000).",
    )
    ws_max_backoff_s: Annotated[float, _NoBool] = Field(
        default=60.0,
        gt=0,
        le=600,
        allow_inf_nan=False,
        description="Longest wait between websocket reconnect attempts, in seconds.",
    )
    state_dir: UserPath = Field(
        default=Path("state"),
        description="Directory holding the database, logs and heartbeat file.",
    )
    database_path: UserPath | None = Field(
        default=None,
        description="SQLite database file. Unset = <state_dir>/perpdeck.db.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO",
        description="Minimum level written to the log: DEBUG, INFO, WARNING or ERROR.",
    )
    active_strategy: str = Field(
        default="ema_trend",
        min_length=1,
        description="Name of the strategy that generates signals.",
    )
    auto_trading_enabled: bool = Field(
        default=True,
        description=(
            "false = observe only: signals are recorded and denied with reason "
            '"auto-trading disabled".'
        ),
    )
    mainnet_real_money_confirmed: bool = Field(
        default=False,
        description=(
            "Must be true (or pass --confirm-real-money) before mode = \"mainnet\" starts: "
            "on mainnet every order trades real money."
        ),
    )
    heartbeat_interval_s: Annotated[float, _NoBool] = Field(
        default=5.0,
        gt=0,
        le=3600,
        allow_inf_nan=False,
        description="How often the engine writes its heartbeat, in seconds.",
    )
    risk: RiskSettings = Field(
        default_factory=RiskSettings, description="Risk limits (the [risk] table)."
    )
    exits: ExitSettings = Field(
        default_factory=ExitSettings, description="Trade management after entry (the [exits] table)."
    )
    execution: ExecutionSettings = Field(
        default_factory=ExecutionSettings, description="How entries are sent (the [execution] table)."
    )
    reconcile: ReconcileSettings = Field(
        default_factory=ReconcileSettings,
        description="Restart reconciliation and stream health (the [reconcile] table).",
    )
    sim: SimSettings = Field(
        default_factory=SimSettings, description="Simulator settings (the [sim] table)."
    )
    rl: RlSettings = Field(
        default_factory=RlSettings, description="RL trainer, promotion gate and rl-sac strategy (the [rl] table)."
    )
    signals: SignalSettings = Field(
        default_factory=SignalSettings,
        description="External signals in: local HTTP endpoint and followed file (the [signals] table).",
    )
    strategies: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description=(
            "Per-strategy parameter overrides, e.g. [strategies.ema_trend] fast = 12; "
            "checked by the strategy itself."
        ),
    )
    api_key_file: UserPath | None = Field(
        default=None,
        description=(
            "File with the Binance API key on line 1 and secret on line 2; must be chmod 600. "
            "Ignored when BINANCE_API_KEY/BINANCE_API_SECRET are set in the environment."
        ),
    )
    binance_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices(API_KEY_ENV, "binance_api_key"),
        description=(
            "Binance API key; only from BINANCE_API_KEY (environment or .env) or api_key_file."
        ),
    )
    binance_api_secret: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices(API_SECRET_ENV, "binance_api_secret"),
        description=(
            "Binance API secret; only from BINANCE_API_SECRET (environment or .env) "
            "or api_key_file."
        ),
    )

    # ------------------------------------------------------------------ sources

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        ctx = _LOAD_CONTEXT.get()
        if ctx is None:  # direct construction: a pure value, no environment, no files
            return (init_settings,)
        sources: list[PydanticBaseSettingsSource] = [
            init_settings,
            _EnvironmentSource(settings_cls, ctx.environ),
        ]
        if ctx.env_file is not None:
            sources.append(_DotEnvSource(settings_cls, env_file=ctx.env_file))
        if ctx.config_path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=ctx.config_path))
        return tuple(sources)

    # ------------------------------------------------------------------ validators

    @field_validator("mode", mode="before")
    @classmethod
    def _lower_mode(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("margin_type", mode="before")
    @classmethod
    def _norm_margin_type(cls, value: Any) -> Any:
        value = _upper(value)
        return "CROSSED" if value == "CROSS" else value

    @field_validator("position_mode", mode="before")
    @classmethod
    def _norm_position_mode(cls, value: Any) -> Any:
        value = _upper(value)
        if isinstance(value, str):  # ONE-WAY, one_way, "one way" -> ONEWAY
            value = value.replace("-", "").replace("_", "").replace(" ", "")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _norm_log_level(cls, value: Any) -> Any:
        value = _upper(value)
        return "WARNING" if value == "WARN" else value

    @field_validator("active_strategy", mode="before")
    @classmethod
    def _strip_strategy(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value

    @field_validator("strategies", mode="after")
    @classmethod
    def _drop_empty_strategy_tables(
        cls, value: dict[str, dict[str, Any]]
    ) -> dict[str, dict[str, Any]]:
        # ``[strategies.ema_trend]`` with every parameter commented out means "no overrides".
        return {name: params for name, params in value.items() if params}

    @field_validator("symbols", mode="before")
    @classmethod
    def _parse_symbols(cls, value: Any) -> Any:
        # Environment variables arrive as raw strings (NoDecode): JSON list or comma-separated.
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    value = json.loads(text)
                except json.JSONDecodeError:
                    raise ValueError(
                        'expected a JSON list such as ["BTCUSDT","ETHUSDT"] or BTCUSDT,ETHUSDT'
                    ) from None
            else:
                value = [part for part in text.split(",") if part.strip()]
        return value

    @field_validator("symbols", mode="after")
    @classmethod
    def _check_symbols(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("expected at least one symbol, e.g. BTCUSDT")
        out: list[str] = []
        for raw in value:
            sym = raw.strip().upper()
            if not _SYMBOL_RE.match(sym):
                raise ValueError(
                    f"{raw!r} is not a USDT perpetual symbol; expected letters/digits ending "
                    "in USDT, e.g. BTCUSDT"
                )
            if sym in out:
                raise ValueError(f"{sym} is listed more than once")
            out.append(sym)
        return out

    @model_validator(mode="before")
    @classmethod
    def _load_key_file(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        key_present = _first_present(data, "binance_api_key", API_KEY_ENV)
        secret_present = _first_present(data, "binance_api_secret", API_SECRET_ENV)
        if key_present and secret_present:
            return data
        if key_present or secret_present:
            have, missing = (
                (API_KEY_ENV, API_SECRET_ENV) if key_present else (API_SECRET_ENV, API_KEY_ENV)
            )
            raise ConfigError(
                f"{have} is set but {missing} is not: set both (environment or .env), "
                "or neither and use api_key_file."
            )
        key_file = data.get("api_key_file")
        if key_file == "":  # ``PERPDECK_API_KEY_FILE=`` / ``api_key_file = ""`` means "none"
            return {**data, "api_key_file": None}
        if key_file is None:
            return data
        if not isinstance(key_file, (str, os.PathLike)):
            return data  # let field validation report the bad type
        key, secret = _read_key_file(Path(key_file).expanduser())
        return {**data, "binance_api_key": key, "binance_api_secret": secret}

    # ------------------------------------------------------------------ helpers

    @property
    def db_path(self) -> Path:
        """The SQLite database file: ``database_path`` or ``state_dir / "perpdeck.db"``."""
        if self.database_path is not None:
            return self.database_path
        return self.state_dir / "perpdeck.db"

    @property
    def has_api_keys(self) -> bool:
        """True when both the API key and the secret are known (and non-empty)."""
        return bool(
            self.binance_api_key is not None
            and self.binance_api_secret is not None
            and self.binance_api_key.get_secret_value()
            and self.binance_api_secret.get_secret_value()
        )

    def redacted_dict(self) -> dict[str, Any]:
        """JSON-safe snapshot of every setting except the credentials (which are left out).

        Decimals become strings (exact), paths become strings. Suitable for storing the run
        configuration in the database; ``Settings.model_validate(d)`` rebuilds the settings
        minus the credentials (and the signal endpoint's token).
        """
        exclude: dict[str, Any] = {name: True for name in _SECRET_FIELDS}
        exclude["signals"] = {"token": True}
        return self.model_dump(mode="json", exclude=exclude)


def _first_present(data: Mapping[str, Any], *names: str) -> bool:
    lowered = {n.lower() for n in names}
    return any(
        isinstance(k, str) and k.lower() in lowered and v not in (None, "")
        for k, v in data.items()
    )


def _read_key_file(path: Path) -> tuple[str, str]:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"api_key_file {path} does not exist.") from None
    except OSError as exc:
        raise ConfigError(f"api_key_file {path} cannot be read: {exc.strerror}.") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"api_key_file {path} is not a regular file.")
    if os.name == "posix" and st.st_mode & 0o077:
        raise ConfigError(
            f"api_key_file {path} is readable by other users (mode {stat.S_IMODE(st.st_mode):o}).\n"
            f"Restrict it to its owner with:  chmod 600 {path}"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"api_key_file {path} cannot be read: {reason}.") from None
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    if len(lines) != 2 or any(len(ln.split()) != 1 for ln in lines):
        raise ConfigError(
            f"api_key_file {path} must contain exactly two non-empty lines: the API key, "
            f"then the API secret (found {len(lines)} non-comment lines)."
        )
    return lines[0], lines[1]


# --------------------------------------------------------------------------- sources


class _EnvironmentSource(EnvSettingsSource):
    """``EnvSettingsSource`` reading an explicit mapping instead of ``os.environ``."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {
            (k if self.case_sensitive else k.lower()): v
            for k, v in self._environ.items()
            if not (self.env_ignore_empty and v == "")
        }


class _DotEnvSource(DotEnvSettingsSource):
    """``.env`` source that, like the environment, only returns known settings.

    (The stock source turns every unrelated variable in ``.env`` into an "extra" field, which
    ``extra="forbid"`` would reject; unknown ``PERPDECK_*`` names are reported by the loader.)
    """

    def __call__(self) -> dict[str, Any]:
        return EnvSettingsSource.__call__(self)


@dataclass(frozen=True)
class _LoadContext:
    config_path: Path | None
    env_file: Path | None
    environ: Mapping[str, str]


_LOAD_CONTEXT: contextvars.ContextVar[_LoadContext | None] = contextvars.ContextVar(
    "perpdeck_config_load_context", default=None
)


# --------------------------------------------------------------------------- loader


def load_settings(
    *,
    config_path: Path | None = None,
    env_file: Path | None = Path(".env"),
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build the settings from overrides > environment > .env > config.toml > defaults.

    ``config_path=None`` uses ``config.toml`` in the working directory if it exists (else only
    defaults); an explicit path must exist. ``env_file=None`` skips the ``.env`` file; a missing
    one is fine. ``environ=None`` means ``os.environ``.

    Raises :class:`ConfigError` with a user-facing message for every problem found.
    """
    environ = dict(os.environ if environ is None else environ)

    if config_path is not None:
        config_path = Path(config_path)
        if not config_path.is_file():
            what = "is not a file" if config_path.exists() else "does not exist"
            raise ConfigError(f"config file {config_path} {what}.")
    elif Path("config.toml").is_file():
        config_path = Path("config.toml")
    toml_data = _read_toml(config_path) if config_path is not None else {}

    if env_file is not None:
        env_file = Path(env_file)
        if env_file.exists() and not env_file.is_file():
            raise ConfigError(f"env file {env_file} is not a file.")
    dotenv_data = _read_dotenv(env_file) if env_file is not None and env_file.is_file() else {}

    init_kwargs = _normalise_overrides(overrides or {})

    _refuse_secrets(toml_data, f"config file {config_path}")
    _refuse_secrets(init_kwargs, "command-line overrides")
    _check_env_names(environ, "environment")
    _check_env_names(dotenv_data, f"env file {env_file}")

    origins = _Origins(init_kwargs, environ, dotenv_data, env_file, toml_data, config_path)
    token = _LOAD_CONTEXT.set(_LoadContext(config_path, env_file, environ))
    try:
        return Settings(**init_kwargs)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, origins)) from None
    except SettingsError as exc:
        raise ConfigError(_format_settings_error(exc, origins)) from None
    finally:
        _LOAD_CONTEXT.reset(token)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}.") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text.") from None
    except tomllib.TOMLDecodeError as exc:
        # The message already carries "(at line N, column M)"; never echo the line itself,
        # it could hold a secret.
        raise ConfigError(
            f"config file {path} is not valid TOML: {exc}.\n"
            "See the shipped config.toml for the expected layout."
        ) from None


def _read_dotenv(path: Path) -> dict[str, str]:
    from dotenv import dotenv_values  # dependency of pydantic-settings

    try:
        values = dotenv_values(path, encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"env file {path} cannot be read: {exc}.") from None
    return {k: v for k, v in values.items() if v is not None}


def _normalise_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Expand dotted keys, merge nested dicts, drop ``None`` values."""
    out: dict[str, Any] = {}

    def put(path: list[str], value: Any) -> None:
        if value is None:
            return
        node = out
        for i, part in enumerate(path[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(
                    f"override {'.'.join(path)} conflicts with override {'.'.join(path[: i + 1])}."
                )
            node = child
        leaf = path[-1]
        if isinstance(value, Mapping):
            for k, v in value.items():
                put([*path, *str(k).split(".")], v)
            if leaf not in node:  # an explicitly empty table
                node.setdefault(leaf, {})
        else:
            if isinstance(node.get(leaf), dict):
                raise ConfigError(f"override {'.'.join(path)} conflicts with nested overrides.")
            node[leaf] = value

    for key, value in overrides.items():
        put(str(key).split("."), value)
    return out


def _refuse_secrets(data: Mapping[str, Any], where: str) -> None:
    found = sorted(
        k
        for k in data
        if isinstance(k, str) and k.lower().replace("-", "_") in _SECRET_KEY_NAMES
    )
    if found:
        raise ConfigError(
            f"{where} sets {', '.join(found)}, but API credentials are never read from there.\n"
            f"Set the environment variables {API_KEY_ENV} and {API_SECRET_ENV} (or put them in "
            ".env), or point api_key_file at a file holding the key and the secret on two lines "
            "(chmod 600). Remove the credentials from that file."
        )


def _check_env_names(env: Mapping[str, str], where: str) -> None:
    fields = {n for n in Settings.model_fields if n not in _SECRET_FIELDS}
    problems: list[str] = []
    for name, value in env.items():
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in RESERVED_ENV_VARS or value == "":
            continue
        top = upper[len(ENV_PREFIX) :].split("__", 1)[0].lower()
        if top in _SECRET_FIELDS:
            problems.append(
                f"  - {name}: credentials are read from {top.upper()} (no {ENV_PREFIX} prefix)"
            )
        elif top not in fields:
            hint = _suggest(top, fields)
            suggestion = f" (did you mean {ENV_PREFIX}{hint.upper()}?)" if hint else ""
            problems.append(f"  - {name}: not a perpdeck setting{suggestion}")
    if problems:
        head = f"Unknown {ENV_PREFIX}* variables in the {where}:"
        raise ConfigError("\n".join([head, *problems]))


# --------------------------------------------------------------------------- error messages


class _Origins:
    """Works out which source supplied the value at a settings path (best effort)."""

    def __init__(
        self,
        overrides: Mapping[str, Any],
        environ: Mapping[str, str],
        dotenv: Mapping[str, str],
        env_file: Path | None,
        toml: Mapping[str, Any],
        config_path: Path | None,
    ) -> None:
        self.overrides = overrides
        self.environ = {k.upper(): k for k, v in environ.items() if v != ""}
        self.dotenv = {k.upper(): k for k, v in dotenv.items() if v != ""}
        self.env_file = env_file
        self.toml = toml
        self.config_path = config_path

    @staticmethod
    def _has(data: Mapping[str, Any], path: tuple[str, ...]) -> bool:
        node: Any = data
        for part in path:
            if not isinstance(node, Mapping) or part not in node:
                return False
            node = node[part]
        return True

    def _env_name(self, names: Mapping[str, str], path: tuple[str, ...]) -> str | None:
        for n in range(len(path), 0, -1):
            candidate = (ENV_PREFIX + "__".join(path[:n])).upper()
            if candidate in names:
                return names[candidate]
        return None

    def describe(self, path: tuple[str, ...]) -> str | None:
        if not path:
            return None
        if self._has(self.overrides, path):
            return "command-line override"
        if (name := self._env_name(self.environ, path)) is not None:
            return f"environment variable {name}"
        if (name := self._env_name(self.dotenv, path)) is not None:
            return f"{self.env_file}: {name}"
        if self._has(self.toml, path):
            return str(self.config_path)
        return None


def _suggest(word: str, choices: Any) -> str | None:
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return match[0] if match else None


def _model_for(path: tuple[Any, ...]) -> tuple[type[BaseModel] | None, FieldInfo | None]:
    """The model containing the last path element, and that element's FieldInfo."""
    model: type[BaseModel] | None = Settings
    info: FieldInfo | None = None
    for i, part in enumerate(path):
        if model is None or not isinstance(part, str) or part not in model.model_fields:
            return (model if i == len(path) - 1 else None), None
        info = model.model_fields[part]
        if i < len(path) - 1:
            ann = info.annotation
            model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return model, info


def _bounds(info: FieldInfo) -> str:
    b: dict[str, Any] = {}
    for m in info.metadata:
        for attr in ("gt", "ge", "lt", "le"):
            if isinstance(m, getattr(annotated_types, attr.capitalize())):
                b[attr] = getattr(m, attr)
    lo = (
        f"greater than {b['gt']}"
        if "gt" in b
        else (f"greater than or equal to {b['ge']}" if "ge" in b else None)
    )
    hi = (
        f"less than {b['lt']}"
        if "lt" in b
        else (f"less than or equal to {b['le']}" if "le" in b else None)
    )
    if "ge" in b and "le" in b:
        return f"from {b['ge']} to {b['le']}"
    return " and ".join(p for p in (lo, hi) if p)


def _scalar_kind(ann: Any) -> str | None:
    while get_origin(ann) is Annotated:
        ann = get_args(ann)[0]
    if ann is int:
        return "a whole number"
    if ann in (float, Decimal):
        return "a number"
    return None


_TYPE_EXPECT = {
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "a text value",
    "path_type": "a file path",
    "list_type": "a list",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "int_type": "a whole number",
    "float_parsing": "a number",
    "float_type": "a number",
    "decimal_parsing": "a number",
    "decimal_type": "a number",
    "finite_number": "a finite number",
    "string_too_short": "a non-empty text value",
}

_NUMERIC_ERRORS = {
    "greater_than",
    "greater_than_equal",
    "less_than",
    "less_than_equal",
    "int_parsing",
    "int_from_float",
    "int_type",
    "float_parsing",
    "float_type",
    "decimal_parsing",
    "decimal_type",
    "finite_number",
}


def _expectation(err: Mapping[str, Any], path: tuple[Any, ...]) -> str:
    etype = err["type"]
    model, info = _model_for(path)
    if etype == "extra_forbidden":
        valid = sorted(n for n in (model.model_fields if model else {}) if n not in _SECRET_FIELDS)
        hint = _suggest(str(path[-1]), valid) if path else None
        text = "unknown setting (typo?)"
        if hint:
            text += f"; did you mean {hint!r}?"
        if valid:
            text += f" Valid here: {', '.join(valid)}"
        return text
    if etype == "literal_error" and info is not None:
        choices = get_args(info.annotation)
        if choices:
            return "expected one of " + ", ".join(json.dumps(c) for c in choices)
    numeric_bool = (
        isinstance(err.get("input"), bool)
        and info is not None
        and _scalar_kind(info.annotation) is not None
    )
    if (etype in _NUMERIC_ERRORS or numeric_bool) and info is not None:
        kind = _scalar_kind(info.annotation) or "a number"
        rng = _bounds(info)
        return f"expected {kind}{' ' + rng if rng else ''}"
    if etype == "value_error":
        cause = (err.get("ctx") or {}).get("error")
        return str(cause) if cause is not None else err["msg"]
    if etype in _TYPE_EXPECT:
        return f"expected {_TYPE_EXPECT[etype]}"
    return err["msg"][0].lower() + err["msg"][1:]


def _show(value: Any) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (int, float, Decimal)):
        text = str(value)
    else:
        try:
            text = json.dumps(value, default=str, ensure_ascii=False)
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _format_validation_error(exc: ValidationError, origins: _Origins) -> str:
    lines: list[str] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        path = tuple(str(p) for p in loc)
        # A list item error (symbols.1) is reported against the list setting.
        setting = ".".join(p for p in path if not p.isdigit()) or "(settings)"
        setting_path = tuple(p for p in path if not p.isdigit())
        value = err.get("input")
        # Never echo anything that might be a credential (including under a mistyped key).
        secret = any(p.lower() in _SECRET_FIELDS or _SECRETISH.search(p) for p in path)
        if secret:
            shown = " = ***"
        elif isinstance(value, Mapping) or err["type"] == "missing":
            shown = ""  # a whole table (may hold anything); the message names the fields
        else:
            shown = f" = {_show(value)}"
        origin = origins.describe(setting_path)
        where = f" (from {origin})" if origin else ""
        lines.append(f"  - {setting}{shown}{where}: {_expectation(err, loc)}")
    count = len(lines)
    head = f"Invalid configuration ({count} problem{'s' if count != 1 else ''}):"
    return "\n".join([head, *lines])


_SOURCE_NAMES = {
    "_EnvironmentSource": "the environment",
    "_DotEnvSource": "the .env file",
    "TomlConfigSettingsSource": "the config file",
}


def _format_settings_error(exc: SettingsError, origins: _Origins) -> str:
    m = re.search(r'field "([^"]+)" from source "([^"]+)"', str(exc))
    if not m:
        return f"Invalid configuration: {exc}"
    field, source = m.group(1), m.group(2)
    where = _SOURCE_NAMES.get(source, source)
    names = origins.environ if source == "_EnvironmentSource" else origins.dotenv
    prefix = f"{ENV_PREFIX}{field}".upper()
    culprits = sorted(
        orig for up, orig in names.items() if up == prefix or up.startswith(prefix + "__")
    )
    detail = f" ({', '.join(culprits)})" if culprits else ""
    return (
        f"Invalid configuration: the value for {field} in {where}{detail} could not be parsed.\n"
        f"Lists and tables in environment variables must be JSON, e.g. "
        f"{ENV_PREFIX}SIM__DATA_FILES='[\"data/BTCUSDT.csv\"]'; "
        f"nested settings can also be set one by one, e.g. {ENV_PREFIX}RISK__STOP_LOSS_PCT=2."
    )
