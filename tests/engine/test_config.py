"""Tests for engine.config: sources and precedence, validation messages, secrets handling."""

from __future__ import annotations

import json
import os
import tomllib
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from engine.config import ConfigError, RiskSettings, Settings, SimSettings, load_settings

REPO_CONFIG = Path(__file__).resolve().parents[2] / "config.toml"
SECRET_KEY = "K3YVALUE-zz9-plural-z-alpha"
SECRET = "S3CRETVALUE-do-not-leak-42"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, toml: str | None = None, *, dotenv: str | None = None, **kw) -> Settings:
    """load_settings isolated from the real environment, CWD files and the user's .env."""
    config_path = write(tmp_path / "config.toml", toml) if toml is not None else None
    env_file = write(tmp_path / ".env", dotenv) if dotenv is not None else None
    kw.setdefault("environ", {})
    return load_settings(config_path=config_path, env_file=env_file, **kw)


def error_text(tmp_path: Path, toml: str | None = None, **kw) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, toml, **kw)
    return str(info.value)


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path, monkeypatch):
    # Never let a developer's ./config.toml or ./.env leak into a test.
    monkeypatch.chdir(tmp_path)


# --------------------------------------------------------------------------- defaults


def test_builtin_defaults():
    s = Settings()
    assert s.mode == "sim"
    assert s.symbols == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    assert s.leverage == 3
    assert s.margin_type == "ISOLATED"
    assert s.position_mode == "ONEWAY"
    assert s.recv_window_ms == 5000
    assert s.ws_max_backoff_s == 60
    assert s.state_dir == Path("state")
    assert s.db_path == Path("state") / "perpdeck.db"
    assert s.log_level == "INFO"
    assert s.active_strategy == "ema_trend"
    assert s.auto_trading_enabled is True
    assert s.heartbeat_interval_s == 5
    assert s.risk == RiskSettings()
    assert s.risk.max_position_pct == Decimal("10")
    assert s.risk.position_size_pct == Decimal("10")
    assert s.risk.max_total_exposure_pct == Decimal("50")
    assert s.risk.max_daily_trades == 20
    assert s.risk.max_daily_loss_pct == Decimal("5")
    assert s.risk.stop_loss_pct == Decimal("3")
    assert s.risk.take_profit_2_pct == Decimal("10")
    assert s.sim == SimSettings()
    assert s.sim.starting_balance == Decimal("10000")
    assert s.sim.data_files == [] and s.sim.funding_files == []
    assert s.sim.taker_fee_rate == Decimal("0.0005")
    assert s.sim.maker_fee_rate == Decimal("0.0002")
    assert s.sim.slippage_bps == Decimal("1")
    assert s.sim.default_funding_rate == Decimal("0.0001")
    assert s.sim.speed == 0
    assert s.strategies == {}
    assert s.api_key_file is None
    assert not s.has_api_keys
    assert isinstance(s.risk.stop_loss_pct, Decimal)
    assert isinstance(s.sim.starting_balance, Decimal)


def test_shipped_config_toml_equals_defaults():
    s = load_settings(config_path=REPO_CONFIG, env_file=None, environ={})
    assert s == Settings()
    # Stricter: identical JSON snapshot (so e.g. 10 vs 10.0 would be caught).
    assert s.redacted_dict() == Settings().redacted_dict()


def test_shipped_config_toml_documents_every_setting():
    text = REPO_CONFIG.read_text(encoding="utf-8")
    data = tomllib.loads(text)
    optional = {"database_path", "api_key_file"}
    for name in Settings.model_fields:
        if name in ("binance_api_key", "binance_api_secret"):
            assert f"{name} =" not in text  # credentials never belong in this file
        elif name in optional:
            assert f"# {name} =" in text, name  # present, commented out
        elif name not in ("risk", "sim", "strategies"):
            assert name in data, name
    assert set(data["risk"]) == set(RiskSettings.model_fields)
    assert set(data["sim"]) == set(SimSettings.model_fields)
    assert data["strategies"] == {"ema_trend": {}}
    for example in ("# fast = 12", "# slow = 48", "# atr_period = 14"):
        assert example in text
    # every key line is preceded by a comment line
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith(("#", "[")):
            assert lines[i - 1].startswith("#"), f"no comment above: {line}"


@pytest.mark.parametrize("model", [Settings, RiskSettings, SimSettings])
def test_every_field_is_documented(model: type[BaseModel]):
    for name, info in model.model_fields.items():
        assert info.description and len(info.description) > 10, f"{model.__name__}.{name}"


def test_no_config_file_means_defaults(tmp_path):
    assert load_settings(env_file=None, environ={}) == Settings()


def test_config_toml_in_cwd_is_used_by_default(tmp_path):
    write(tmp_path / "config.toml", "leverage = 7\n")
    assert load_settings(env_file=None, environ={}).leverage == 7


def test_explicit_missing_config_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="nope.toml.*does not exist"):
        load_settings(config_path=tmp_path / "nope.toml", env_file=None, environ={})


def test_missing_env_file_is_fine(tmp_path):
    s = load_settings(env_file=tmp_path / "missing.env", environ={})
    assert s == Settings()


def test_direct_construction_reads_no_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PERPDECK_LEVERAGE", "9")
    monkeypatch.setenv("BINANCE_API_KEY", SECRET_KEY)
    write(tmp_path / "config.toml", "leverage = 7\n")
    s = Settings()
    assert s.leverage == 3 and not s.has_api_keys
    assert Settings(leverage=5).leverage == 5


def test_environ_none_means_os_environ(monkeypatch):
    monkeypatch.setenv("PERPDECK_LEVERAGE", "9")
    assert load_settings(env_file=None).leverage == 9


# --------------------------------------------------------------------------- precedence


def test_precedence_chain(tmp_path):
    toml = "leverage = 2\n[risk]\nstop_loss_pct = 1\n"
    dotenv = "PERPDECK_LEVERAGE=4\nPERPDECK_RISK__STOP_LOSS_PCT=1.5\n"
    environ = {"PERPDECK_LEVERAGE": "6", "PERPDECK_RISK__STOP_LOSS_PCT": "2"}
    overrides = {"leverage": 8, "risk": {"stop_loss_pct": "2.5"}}

    s = load(tmp_path, toml)
    assert (s.leverage, s.risk.stop_loss_pct) == (2, Decimal("1"))
    s = load(tmp_path, toml, dotenv=dotenv)
    assert (s.leverage, s.risk.stop_loss_pct) == (4, Decimal("1.5"))
    s = load(tmp_path, toml, dotenv=dotenv, environ=environ)
    assert (s.leverage, s.risk.stop_loss_pct) == (6, Decimal("2"))
    s = load(tmp_path, toml, dotenv=dotenv, environ=environ, overrides=overrides)
    assert (s.leverage, s.risk.stop_loss_pct) == (8, Decimal("2.5"))


def test_nested_tables_merge_across_sources(tmp_path):
    s = load(
        tmp_path,
        "[risk]\nstop_loss_pct = 2\n[sim]\nspeed = 5\n",
        dotenv="PERPDECK_RISK__MAX_DAILY_TRADES=7\n",
        environ={"PERPDECK_RISK__TAKE_PROFIT_2_PCT": "9"},
        overrides={"sim.starting_balance": 500},
    )
    assert s.risk.stop_loss_pct == Decimal("2")
    assert s.risk.max_daily_trades == 7
    assert s.risk.take_profit_2_pct == Decimal("9")
    assert s.risk.max_position_pct == Decimal("10")  # untouched default
    assert s.sim.speed == 5
    assert s.sim.starting_balance == Decimal("500")


def test_overrides_dotted_nested_and_none(tmp_path):
    s = load(tmp_path, "mode = 'testnet'\n", overrides={"sim.speed": 10, "mode": None})
    assert s.sim.speed == 10
    assert s.mode == "testnet"  # None means "not given"
    s = load(tmp_path, overrides={"sim": {"speed": 3}, "risk.stop_loss_pct": 1})
    assert s.sim.speed == 3 and s.risk.stop_loss_pct == Decimal("1")


def test_nested_env_and_types(tmp_path):
    s = load(
        tmp_path,
        environ={
            "PERPDECK_MODE": "testnet",
            "PERPDECK_RISK__STOP_LOSS_PCT": "2",
            "PERPDECK_SYMBOLS": '["BTCUSDT"]',
            "PERPDECK_SIM__DATA_FILES": '["a.csv.gz", "b.csv"]',
            "PERPDECK_AUTO_TRADING_ENABLED": "false",
            "perpdeck_log_level": "debug",
            "PERPDECK_STRATEGIES__EMA_TREND__FAST": "12",
            "PERPDECK_HEARTBEAT_INTERVAL_S": "",  # empty = unset
            "UNRELATED": "x",
        },
    )
    assert s.mode == "testnet"
    assert s.risk.stop_loss_pct == Decimal("2") and isinstance(s.risk.stop_loss_pct, Decimal)
    assert s.symbols == ["BTCUSDT"]
    assert s.sim.data_files == [Path("a.csv.gz"), Path("b.csv")]
    assert s.auto_trading_enabled is False
    assert s.log_level == "DEBUG"
    assert s.strategies == {"ema_trend": {"fast": "12"}}
    assert s.heartbeat_interval_s == 5


def test_strategy_overrides_from_toml(tmp_path):
    s = load(tmp_path, "[strategies.ema_trend]\nfast = 12\nslow = 48\n[strategies.other]\nx = 1.5\n")
    assert s.strategies == {"ema_trend": {"fast": 12, "slow": 48}, "other": {"x": 1.5}}


def test_dotenv_ignores_unrelated_variables(tmp_path):
    s = load(tmp_path, dotenv="SOME_OTHER_TOOL=1\nPERPDECK_LEVERAGE=5\n")
    assert s.leverage == 5


def test_case_insensitive_choices(tmp_path):
    s = load(
        tmp_path,
        'mode = "TestNet"\nmargin_type = "crossed"\nposition_mode = "hedge"\nlog_level = "warning"\n',
    )
    assert (s.mode, s.margin_type, s.position_mode, s.log_level) == (
        "testnet",
        "CROSSED",
        "HEDGE",
        "WARNING",
    )


def test_paths_and_db_path(tmp_path):
    s = load(tmp_path, 'state_dir = "run1"\n')
    assert s.db_path == Path("run1") / "perpdeck.db"
    s = load(tmp_path, 'state_dir = "run1"\ndatabase_path = "elsewhere/x.db"\n')
    assert s.db_path == Path("elsewhere/x.db")


def test_settings_are_frozen():
    s = Settings()
    with pytest.raises(ValidationError):
        s.leverage = 10  # type: ignore[misc]
    with pytest.raises(ValidationError):
        s.risk.stop_loss_pct = Decimal(1)  # type: ignore[misc]


# --------------------------------------------------------------------------- symbols


def test_symbols_normalised(tmp_path):
    s = load(tmp_path, 'symbols = ["btcusdt", " EthUsdt ", "1000PEPEUSDT"]\n')
    assert s.symbols == ["BTCUSDT", "ETHUSDT", "1000PEPEUSDT"]
    s = load(tmp_path, environ={"PERPDECK_SYMBOLS": "btcusdt, solusdt"})
    assert s.symbols == ["BTCUSDT", "SOLUSDT"]


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("[]", "at least one symbol"),
        ('["BTCUSD"]', "BTCUSD"),
        ('["BTC-USDT"]', "BTC-USDT"),
        ('["USDT"]', "USDT"),
        ('["BTCUSDT", "btcusdt"]', "more than once"),
    ],
)
def test_symbols_validated(tmp_path, value, needle):
    msg = error_text(tmp_path, f"symbols = {value}\n")
    assert "symbols" in msg and needle in msg


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("toml", "needles"),
    [
        ("leverage = -3\n", ["leverage", "-3", "whole number from 1 to 125"]),
        ("leverage = 200\n", ["leverage", "200", "from 1 to 125"]),
        ("leverage = 2.5\n", ["leverage", "2.5", "whole number"]),
        ("leverage = true\n", ["leverage", "true", "from 1 to 125"]),
        (
            "[risk]\nstop_loss_pct = 150\n",
            ["risk.stop_loss_pct", "150", "expected a number greater than 0 and less than 100"],
        ),
        ("[risk]\nmax_daily_trades = -1\n", ["risk.max_daily_trades", "-1", "greater than or equal to 0"]),
        ('mode = "live"\n', ["mode", '"live"', '"sim"', '"testnet"', '"mainnet"']),
        ('margin_type = "PORTFOLIO"\n', ["margin_type", '"PORTFOLIO"', '"ISOLATED"', '"CROSSED"']),
        ("levrage = 4\n", ["levrage", "4", "unknown setting", "did you mean 'leverage'"]),
        ("[risk]\nstop_los_pct = 2\n", ["risk.stop_los_pct", "unknown setting", "'stop_loss_pct'"]),
        ("[simulator]\nspeed = 1\n", ["simulator", "unknown setting"]),
        ('[sim]\nspeed = "fast"\n', ["sim.speed", '"fast"', "expected a number"]),
        ("ws_max_backoff_s = 0\n", ["ws_max_backoff_s", "0", "greater than 0"]),
        ("recv_window_ms = 70000\n", ["recv_window_ms", "70000", "from 1 to 60000"]),
        (
            "[risk]\nposition_size_pct = 20\n",
            ["risk", "position_size_pct (20)", "max_position_pct (10)"],
        ),
        (
            "[risk]\nmax_total_exposure_pct = 5\n",
            ["risk", "max_total_exposure_pct (5)", "at least"],
        ),
        ("risk = 5\n", ["risk", "expected a table"]),
    ],
)
def test_bad_values_name_field_value_and_expectation(tmp_path, toml, needles):
    msg = error_text(tmp_path, toml)
    assert msg.startswith("Invalid configuration")
    for needle in needles:
        assert needle in msg, f"{needle!r} not in:\n{msg}"
    assert "config.toml" in msg  # the source is named


def test_all_problems_reported_at_once(tmp_path):
    msg = error_text(tmp_path, 'leverage = -3\nmode = "live"\n[risk]\nstop_loss_pct = 150\n')
    assert "3 problems" in msg
    for field in ("leverage", "mode", "risk.stop_loss_pct"):
        assert f"  - {field} = " in msg


def test_malformed_toml(tmp_path):
    msg = error_text(tmp_path, 'mode = "sim"\nleverage = \n')
    assert str(tmp_path / "config.toml") in msg
    assert "not valid TOML" in msg
    assert "line 2" in msg


def test_non_utf8_toml(tmp_path):
    (tmp_path / "config.toml").write_bytes(b'mode = "\xff"\n')
    with pytest.raises(ConfigError, match="UTF-8"):
        load_settings(config_path=tmp_path / "config.toml", env_file=None, environ={})


def test_env_errors_name_the_variable(tmp_path):
    msg = error_text(tmp_path, environ={"PERPDECK_LEVERAGE": "abc", "PERPDECK_RISK__STOP_LOSS_PCT": "0"})
    assert 'leverage = "abc" (from environment variable PERPDECK_LEVERAGE)' in msg
    assert "risk.stop_loss_pct" in msg and "PERPDECK_RISK__STOP_LOSS_PCT" in msg
    assert "greater than 0 and less than 100" in msg


def test_dotenv_and_override_errors_name_the_source(tmp_path):
    msg = error_text(tmp_path, dotenv="PERPDECK_MODE=live\n")
    assert ".env" in msg and "PERPDECK_MODE" in msg and '"live"' in msg
    msg = error_text(tmp_path, overrides={"sim.speed": -1})
    assert "sim.speed = -1 (from command-line override)" in msg
    assert "greater than or equal to 0" in msg


def test_unknown_env_variable_is_a_typo(tmp_path):
    msg = error_text(tmp_path, environ={"PERPDECK_LEVRAGE": "3"})
    assert "PERPDECK_LEVRAGE" in msg and "PERPDECK_LEVERAGE" in msg
    msg = error_text(tmp_path, dotenv="PERPDECK_STOPLOSS=3\n")
    assert "PERPDECK_STOPLOSS" in msg
    msg = error_text(tmp_path, environ={"PERPDECK_RISK__STOP_LOS_PCT": "3"})
    assert "risk.stop_los_pct" in msg and "unknown setting" in msg


def test_unparseable_env_json(tmp_path):
    msg = error_text(tmp_path, environ={"PERPDECK_SIM__DATA_FILES": "a.csv"})
    assert "PERPDECK_SIM__DATA_FILES" in msg and "JSON" in msg


def test_unknown_override(tmp_path):
    msg = error_text(tmp_path, overrides={"sim.sped": 3})
    assert "sim.sped" in msg and "'speed'" in msg


# --------------------------------------------------------------------------- secrets


def _assert_no_secret(text: str) -> None:
    assert SECRET not in text
    assert SECRET_KEY not in text


def test_secrets_from_environment(tmp_path):
    s = load(tmp_path, environ={"BINANCE_API_KEY": SECRET_KEY, "BINANCE_API_SECRET": SECRET})
    assert s.has_api_keys
    assert s.binance_api_key is not None and s.binance_api_key.get_secret_value() == SECRET_KEY
    assert s.binance_api_secret is not None and s.binance_api_secret.get_secret_value() == SECRET


def test_secrets_from_dotenv(tmp_path):
    s = load(tmp_path, dotenv=f"BINANCE_API_KEY={SECRET_KEY}\nBINANCE_API_SECRET={SECRET}\n")
    assert s.has_api_keys
    assert s.binance_api_secret.get_secret_value() == SECRET  # type: ignore[union-attr]


def test_secrets_never_shown(tmp_path):
    s = load(tmp_path, environ={"BINANCE_API_KEY": SECRET_KEY, "BINANCE_API_SECRET": SECRET})
    for text in (
        repr(s),
        str(s),
        json.dumps(s.redacted_dict()),
        s.model_dump_json(),
        repr(s.binance_api_secret),
        f"{s}",
    ):
        _assert_no_secret(text)
    d = s.redacted_dict()
    assert "binance_api_key" not in d and "binance_api_secret" not in d


def test_secrets_not_in_validation_errors(tmp_path):
    msg = error_text(
        tmp_path,
        'leverage = 0\n[risk]\nposition_size_pct = 99\n[sim]\nbinance_api_secret = "%s"\n' % SECRET,
        environ={"BINANCE_API_KEY": SECRET_KEY, "BINANCE_API_SECRET": SECRET},
    )
    assert "leverage" in msg
    assert "sim.binance_api_secret = ***" in msg
    _assert_no_secret(msg)


def test_only_one_secret_is_an_error(tmp_path):
    msg = error_text(tmp_path, environ={"BINANCE_API_KEY": SECRET_KEY})
    assert "BINANCE_API_SECRET" in msg
    _assert_no_secret(msg)


@pytest.mark.parametrize("key", ["binance_api_key", "binance_api_secret", "BINANCE_API_SECRET", "api_key"])
def test_secrets_in_config_toml_refused(tmp_path, key):
    msg = error_text(tmp_path, f'{key} = "{SECRET}"\n')
    assert key in msg
    assert "BINANCE_API_KEY" in msg and "api_key_file" in msg
    _assert_no_secret(msg)


def test_secrets_in_overrides_refused(tmp_path):
    msg = error_text(tmp_path, overrides={"binance_api_secret": SECRET})
    _assert_no_secret(msg)
    assert "binance_api_secret" in msg


def test_prefixed_secret_env_variable_refused(tmp_path):
    msg = error_text(tmp_path, environ={"PERPDECK_BINANCE_API_SECRET": SECRET})
    assert "BINANCE_API_SECRET" in msg
    _assert_no_secret(msg)


def test_malformed_toml_does_not_echo_secret(tmp_path):
    msg = error_text(tmp_path, f'binance_api_secret = "{SECRET}\n')
    _assert_no_secret(msg)


# --------------------------------------------------------------------------- key file


def key_file(tmp_path: Path, mode: int, text: str | None = None) -> Path:
    path = tmp_path / "binance.key"
    path.write_text(text if text is not None else f"{SECRET_KEY}\n{SECRET}\n", encoding="utf-8")
    path.chmod(mode)
    return path


posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")


@posix_only
def test_key_file_0600_accepted(tmp_path):
    path = key_file(tmp_path, 0o600)
    s = load(tmp_path, f'api_key_file = "{path}"\n')
    assert s.has_api_keys
    assert s.binance_api_key.get_secret_value() == SECRET_KEY  # type: ignore[union-attr]
    assert s.binance_api_secret.get_secret_value() == SECRET  # type: ignore[union-attr]
    assert s.redacted_dict()["api_key_file"] == str(path)
    _assert_no_secret(repr(s) + json.dumps(s.redacted_dict()))


@posix_only
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_key_file_readable_by_others_refused(tmp_path, mode):
    path = key_file(tmp_path, mode)
    msg = error_text(tmp_path, overrides={"api_key_file": str(path)})
    assert f"chmod 600 {path}" in msg
    _assert_no_secret(msg)


@posix_only
def test_key_file_comments_and_blank_lines(tmp_path):
    path = key_file(tmp_path, 0o600, f"# binance testnet\n\n{SECRET_KEY}\n  {SECRET}  \n")
    s = load(tmp_path, environ={"PERPDECK_API_KEY_FILE": str(path)})
    assert s.binance_api_secret.get_secret_value() == SECRET  # type: ignore[union-attr]


@posix_only
@pytest.mark.parametrize("text", [f"{SECRET_KEY}\n", f"{SECRET_KEY}\n{SECRET}\nextra\n", f"KEY {SECRET}\nx\n"])
def test_key_file_bad_format(tmp_path, text):
    path = key_file(tmp_path, 0o600, text)
    msg = error_text(tmp_path, overrides={"api_key_file": path})
    assert "two non-empty lines" in msg
    _assert_no_secret(msg)


def test_key_file_missing(tmp_path):
    msg = error_text(tmp_path, overrides={"api_key_file": tmp_path / "nope.key"})
    assert "nope.key" in msg and "does not exist" in msg


@posix_only
def test_environment_wins_over_key_file(tmp_path):
    path = key_file(tmp_path, 0o644)  # not even read
    s = load(
        tmp_path,
        f'api_key_file = "{path}"\n',
        environ={"BINANCE_API_KEY": "envkey", "BINANCE_API_SECRET": "envsecret"},
    )
    assert s.binance_api_key.get_secret_value() == "envkey"  # type: ignore[union-attr]


# --------------------------------------------------------------------------- redacted_dict


def test_redacted_dict_is_json_safe_and_round_trips(tmp_path):
    s = load(
        tmp_path,
        '[sim]\ndata_files = ["x.csv"]\ntaker_fee_rate = 0.0004\n[strategies.ema_trend]\nfast = 9\n',
        environ={"BINANCE_API_KEY": SECRET_KEY, "BINANCE_API_SECRET": SECRET},
    )
    d = s.redacted_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["risk"]["stop_loss_pct"] == "3"
    assert d["sim"]["taker_fee_rate"] == "0.0004"
    assert d["sim"]["data_files"] == ["x.csv"]
    assert d["state_dir"] == "state"
    rebuilt = Settings.model_validate(d)
    assert rebuilt == s.model_copy(update={"binance_api_key": None, "binance_api_secret": None})
