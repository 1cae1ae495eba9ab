"""Parameter parsing for config files and environment variables: booleans, lists, whole numbers."""

import pytest

from engine.strategies.base import StrategyError, build_strategy
from engine.strategies.params import parse_params, split_names
from engine.strategies.external import ConfluenceParams


@pytest.mark.parametrize("raw, expected", [("false", False), ("OFF", False), ("0", False), (0, False),
                                           ("true", True), ("yes", True), (1, True), (True, True)])
def test_booleans_from_text(raw, expected):
    params = parse_params(ConfluenceParams, "confluence", {"enable_fomo_intensify": raw})
    assert params.enable_fomo_intensify is expected


def test_bad_boolean_and_bool_for_number_name_the_field():
    with pytest.raises(StrategyError, match="strategies.confluence.enable_fomo_intensify: expected true or false"):
        build_strategy("confluence", {"enable_fomo_intensify": "maybe"})
    with pytest.raises(StrategyError, match="strategies.confluence.min_signal_score: expected a number"):
        build_strategy("confluence", {"min_signal_score": True})


def test_lists_join_and_numbers_from_text():
    ens = build_strategy("ensemble", {"members": ["adx_trend", "ema_trend"], "threshold": "0.5"})
    assert ens.params.member_names == ("adx_trend", "ema_trend") and ens.params.threshold == 0.5
    assert split_names(" a, b,,c ") == ("a", "b", "c")
