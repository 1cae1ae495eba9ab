"""External signals (note 002): parsing, de-duplication, the confluence score and its curves,
the note's worked examples, enable_fomo_intensify and the threshold."""

import json

import pytest

from engine.strategies.external import (
    ConfluenceAggregator,
    ConfluenceParams,
    ExternalSignalError,
    IngestStatus,
    SeenIds,
    SignalKind,
    freshness_score,
    normalize_symbol,
    parse_external_payload,
    parse_external_signal,
    proximity_score,
    score_confluence,
)

T = 1_746_403_200_000
S = 1000  # ms per second


def sig(kind, mid, symbol="BTC", t=T, data=None):
    return parse_external_signal(kind, mid, symbol, data, t)


# -- parsing ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw, expected", [("BTC", "BTCUSDT"), ("btc", "BTCUSDT"), ("BTCUSDT", "BTCUSDT"),
                                           (" eth/usdt ", "ETHUSDT"), ("sol-usdt", "SOLUSDT"),
                                           ("1000PEPE", "1000PEPEUSDT"), ("ETHUSDC", "ETHUSDC")])
def test_symbols_are_normalised(raw, expected):
    assert normalize_symbol(raw) == expected


def test_a_parsed_signal_is_frozen_and_keeps_its_data():
    s = parse_external_signal("113", 42, "btc", {"price": "1"}, T)
    assert (s.kind, s.message_type, s.message_id, s.symbol, s.time_ms) == (SignalKind.FOMO, 113, "42", "BTCUSDT", T)
    assert dict(s.data) == {"price": "1"} and s.kind.is_fomo and not SignalKind.ALPHA.is_fomo
    with pytest.raises(TypeError):
        s.data["x"] = 1  # read-only view
    assert parse_external_signal(110, "a", "ETH", None, T).data == {}
    json.dumps(s.as_dict())


@pytest.mark.parametrize("args, field", [
    ((111, "id", "BTC", None, T), "message_type"),
    (("FOMO", "id", "BTC", None, T), "message_type"),
    ((True, "id", "BTC", None, T), "message_type"),
    ((113, "", "BTC", None, T), "message_id"),
    ((113, None, "BTC", None, T), "message_id"),
    ((113, "id", "", None, T), "symbol"),
    ((113, "id", "USDT", None, T), "symbol"),
    ((113, "id", "BTC$", None, T), "symbol"),
    ((113, "id", 5, None, T), "symbol"),
    ((113, "id", "BTC", [1, 2], T), "data"),
    ((113, "id", "BTC", None, "soon"), "time_ms"),
    ((113, "id", "BTC", None, -5), "time_ms"),
    ((113, "id", "BTC", None, 1.5), "time_ms"),
])
def test_bad_input_names_the_field(args, field):
    with pytest.raises(ExternalSignalError, match=f"^{field}:"):
        parse_external_signal(*args)


def test_payloads_accept_both_key_spellings_and_name_missing_fields():
    a = parse_external_payload({"type": 110, "id": "x1", "symbol": "SOL", "time_ms": T})
    b = parse_external_payload({"message_type": 110, "message_id": "x1", "symbol": "SOLUSDT"}, time_ms=T)
    assert a == b
    with pytest.raises(ExternalSignalError, match="^symbol: missing"):
        parse_external_payload({"type": 110, "id": "x1", "time_ms": T})
    with pytest.raises(ExternalSignalError, match="^signal: expected a JSON object"):
        parse_external_payload([110])


def test_seen_ids_forget_the_oldest_beyond_capacity():
    seen = SeenIds(2)
    assert seen.add("a") and seen.add("b") and not seen.add("a")
    assert seen.add("c") and "a" not in seen and len(seen) == 2


# -- the curves -------------------------------------------------------------------------------------


def test_proximity_curve_goes_through_the_notes_points():
    w = 300 * S
    assert proximity_score(0, w) == 1.0
    assert proximity_score(60 * S, w) == pytest.approx(0.99)
    assert proximity_score(240 * S, w) == pytest.approx(0.20)
    assert proximity_score(150 * S, w) == pytest.approx(0.99 + (0.20 - 0.99) * 0.5)  # linear in between
    assert proximity_score(270 * S, w) == pytest.approx(0.10)
    assert proximity_score(300 * S, w) == 0.0 and proximity_score(1800 * S, w) == 0.0
    values = [proximity_score(t * S, w) for t in range(0, 301)]
    assert all(a >= b for a, b in zip(values, values[1:]))  # never rises with the gap
    assert proximity_score(30 * S, 150 * S) == pytest.approx(0.99)  # scales with the window


def test_freshness_is_full_for_an_hour_then_decays_to_zero_over_the_next():
    assert freshness_score(0) == 1.0 and freshness_score(3600 * S) == 1.0
    assert freshness_score(5400 * S) == pytest.approx(0.5)
    assert freshness_score(7200 * S) == 0.0 and freshness_score(10 * 3600 * S) == 0.0
    assert freshness_score(3601 * S, decay_ms=0) == 0.0


# -- note 002's worked examples ---------------------------------------------------------------------


def test_scenario_1_fomo_then_alpha_one_minute_apart_scores_about_0_92():
    agg = ConfluenceAggregator()
    assert agg.add(sig(113, "f1", "BTC", T)).status is IngestStatus.PENDING
    res = agg.add(sig(110, "a1", "BTCUSDT", T + 60 * S))  # "BTC" and "BTCUSDT" are the same symbol
    assert res.status is IngestStatus.CONFLUENCE
    c = res.confluence
    assert (c.symbol, c.fomo.message_id, c.alpha.message_id, c.gap_ms) == ("BTCUSDT", "f1", "a1", 60 * S)
    assert (c.scored.proximity, c.scored.fomo_strength, c.scored.freshness) == (pytest.approx(0.99), 0.8, 1.0)
    # 0.4×0.99 + 0.3×0.8 + 0.3×1.0 = 0.936; the note prints 0.92 for these same three factors
    assert c.score == pytest.approx(0.936) and abs(c.score - 0.92) <= 0.02 and c.score >= 0.6


def test_scenario_2_alpha_then_intensified_fomo_four_minutes_apart_scores_0_68():
    agg = ConfluenceAggregator()
    agg.add(sig(110, "a2", "ETH", T))
    res = agg.add(sig(112, "f2", "ETH", T + 240 * S))
    assert res.status is IngestStatus.CONFLUENCE
    assert res.confluence.score == 0.68  # 0.4×0.20 + 0.3×1.0 + 0.3×1.0, still tradable at 0.6
    assert (res.confluence.scored.proximity, res.confluence.scored.fomo_strength) == (pytest.approx(0.2), 1.0)


@pytest.mark.parametrize("min_score", [0.6, 0.0])
def test_scenario_3_fomo_thirty_minutes_before_the_alpha_does_not_match(min_score):
    agg = ConfluenceAggregator(ConfluenceParams(min_signal_score=min_score))
    agg.add(sig(113, "f3", "SOL", T))
    res = agg.add(sig(110, "a3", "SOL", T + 1800 * S))
    assert res.status is IngestStatus.PENDING and res.confluence is None
    assert score_confluence(1800 * S, 113, 0) is None  # outside the window: no score at all
    assert agg.counts().confluences == 0


# -- matching rules ---------------------------------------------------------------------------------


def test_duplicates_by_message_id_are_ignored():
    agg = ConfluenceAggregator()
    assert agg.add(sig(113, "m1", "BTC", T)).status is IngestStatus.PENDING
    assert agg.add(sig(113, "m1", "BTC", T + 5 * S)).status is IngestStatus.DUPLICATE
    assert agg.add(sig(110, "m1", "BTC", T + 10 * S)).status is IngestStatus.DUPLICATE  # same id, other type
    assert agg.add(sig(110, "m2", "BTC", T + 20 * S)).status is IngestStatus.CONFLUENCE
    assert agg.add(sig(110, "m2", "BTC", T + 30 * S)).status is IngestStatus.DUPLICATE
    c = agg.counts()
    assert (c.received, c.duplicates, c.confluences, c.pending_fomo, c.pending_alpha) == (5, 3, 1, 0, 0)


def test_enable_fomo_intensify_off_ignores_type_112_only():
    agg = ConfluenceAggregator(ConfluenceParams(enable_fomo_intensify=False))
    assert agg.add(sig(112, "i1", "ETH", T)).status is IngestStatus.IGNORED
    assert agg.add(sig(110, "a1", "ETH", T + 10 * S)).status is IngestStatus.PENDING
    assert agg.add(sig(113, "f1", "ETH", T + 20 * S)).status is IngestStatus.CONFLUENCE
    on = ConfluenceAggregator()
    on.add(sig(112, "i1", "ETH", T))
    assert on.add(sig(110, "a1", "ETH", T + 10 * S)).status is IngestStatus.CONFLUENCE


def test_below_threshold_pairs_wait_and_a_better_partner_wins():
    agg = ConfluenceAggregator(ConfluenceParams(min_signal_score=0.7))
    agg.add(sig(110, "a", "ETH", T))
    low = agg.add(sig(112, "f_far", "ETH", T + 240 * S))  # 0.68 < 0.7
    assert low.status is IngestStatus.BELOW_THRESHOLD and low.confluence.score == 0.68
    assert "min_signal_score 0.7" in low.reason
    best = agg.add(sig(113, "f_near", "ETH", T + 30 * S))
    assert best.status is IngestStatus.CONFLUENCE and best.confluence.fomo.message_id == "f_near"
    assert [s.message_id for s in agg.pending("ETHUSDT")] == ["f_far"]  # the alpha was consumed


def test_the_best_scoring_pending_partner_is_chosen_and_symbols_never_mix():
    agg = ConfluenceAggregator()
    agg.add(sig(113, "f_btc", "BTC", T))
    agg.add(sig(113, "f_eth_far", "ETH", T))
    agg.add(sig(113, "f_eth_near", "ETH", T + 200 * S))
    res = agg.add(sig(110, "a_eth", "ETH", T + 210 * S))
    assert res.confluence.fomo.message_id == "f_eth_near" and res.confluence.symbol == "ETHUSDT"
    assert {s.message_id for s in agg.pending()} == {"f_btc", "f_eth_far"}


def test_params_validate_and_name_the_field():
    for kw, needle in [({"signal_time_window_s": 0}, "signal_time_window_s"),
                       ({"min_signal_score": 1.5}, "min_signal_score"),
                       ({"quote": "US DT"}, "quote")]:
        with pytest.raises(ValueError, match=needle):
            ConfluenceParams(**kw)
