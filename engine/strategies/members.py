"""Building and addressing the member strategies of composite strategies (regime_switch, ensemble)."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from engine.strategies.base import SafeStrategy, Strategy, StrategyError, available, build_strategy

#: Strategies that contain other strategies; they cannot be members of one another.
COMPOSITES = frozenset({"regime_switch", "ensemble"})


def build_members(names: Iterable[str], owner: str,
                  member_params: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Strategy]:
    """Build the named registered strategies, each wrapped in ``SafeStrategy`` (a member's bug is
    logged and counted, not fatal to the composite). ``member_params`` maps a member's name to its
    config (as ``[strategies.<name>]``); errors name ``strategies.<owner>``."""
    known = available()
    members: dict[str, Strategy] = {}
    for name in names:
        if name in COMPOSITES:
            raise StrategyError(f"strategies.{owner}: {name!r} cannot be a member (it contains strategies itself)")
        if name not in known:
            raise StrategyError(f"strategies.{owner}: unknown member strategy {name!r}; expected one of "
                                f"{sorted(set(known) - COMPOSITES)}")
        if name not in members:
            members[name] = SafeStrategy(build_strategy(name, dict((member_params or {}).get(name, {}))))
    return members


def forward_external_signal(members: Iterable[Any], message_type: Any, message_id: Any, symbol: Any, data: Any,
                            time_ms: Any) -> list[Any]:
    """Call ``process_signal`` on every member (looking through ``SafeStrategy``) that has one."""
    out = []
    for m in members:
        inner = getattr(m, "inner", m)
        fn = getattr(inner, "process_signal", None)
        if callable(fn):
            out.append(fn(message_type, message_id, symbol, data, time_ms))
    return out
