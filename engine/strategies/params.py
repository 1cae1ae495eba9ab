"""Parameter parsing shared by the strategies in this package.

:func:`parse_params` is :func:`engine.strategies.base.params_from` with two additions that config
files and environment variables need:

* booleans given as strings (``"false"``, ``"0"``, ``"off"`` …) mean what they say —
  ``bool("false")`` would be ``True``;
* a list given for a text parameter (``members = ["a", "b"]`` in TOML) is joined with commas.

A number where a boolean is expected, or a boolean where a number is expected, is refused with the
field named.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from engine.strategies.base import StrategyError, params_from

T = TypeVar("T")

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def _to_bool(name: str, key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise StrategyError(f"strategies.{name}.{key}: expected true or false, got {value!r}")


def parse_params(cls: type[T], name: str, raw: dict[str, Any] | None) -> T:
    """Build the frozen params dataclass ``cls`` from config; errors name ``strategies.<name>.<field>``."""
    raw = dict(raw or {})
    defaults = cls()
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key, value in list(raw.items()):
        if key not in names:
            continue  # params_from reports unknown names with the expected ones
        default = getattr(defaults, key)
        if isinstance(default, bool):
            raw[key] = _to_bool(name, key, value)
        elif isinstance(default, (int, float)) and isinstance(value, bool):
            raise StrategyError(f"strategies.{name}.{key}: expected a number, got {value!r}")
        elif isinstance(default, int) and isinstance(value, float) and not value.is_integer():
            raise StrategyError(f"strategies.{name}.{key}: expected a whole number, got {value!r}")
        elif isinstance(default, str) and isinstance(value, (list, tuple)):
            raw[key] = ",".join(str(v).strip() for v in value)
    return params_from(cls, name, raw)


def split_names(text: str) -> tuple[str, ...]:
    """``"a, b,,c"`` → ``("a", "b", "c")``."""
    return tuple(p.strip() for p in text.split(",") if p.strip())
