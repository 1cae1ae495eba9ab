"""External signals in: the envelope, the engine's routing, the HTTP endpoint (real sockets on
127.0.0.1), the Python call, and a FOMO + Alpha pair that makes the confluence strategy enter."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal

import pytest

from engine.backtest import build_engine
from engine.bus import Bus
from engine.config import Settings
from engine.events import ExternalSignalIngested, IngestSignal
from engine.exchange.sim.matching import load_default_rules
from engine.ingest import EngineNotAnswering, EnvelopeError, SignalGateway, parse_envelope
from engine.model import Direction, Verdict

from tests.engine.ingest_support import TOKEN, http, running_session, wait_for

T0 = 1_746_403_200_000


# --------------------------------------------------------------------------- the envelope


def test_envelope_accepts_both_spellings_and_keeps_the_values():
    cmd = parse_envelope({"type": 113, "id": "m1", "symbol": "BTC", "data": {"k": 1}}, "http")
    assert (cmd.message_type, cmd.message_id, cmd.symbol, cmd.data, cmd.source) == (113, "m1", "BTC", {"k": 1}, "http")
    cmd = parse_envelope({"message_type": "110", "message_id": 7, "symbol": "ethusdt"}, "file")
    assert (cmd.message_type, cmd.message_id, cmd.symbol, cmd.data) == ("110", 7, "ethusdt", None)


@pytest.mark.parametrize("obj, field", [
    ([1, 2], "signal"),
    ({"id": "x", "symbol": "BTC"}, "type"),
    ({"type": 113, "symbol": "BTC"}, "id"),
    ({"type": 113, "id": "x"}, "symbol"),
    ({"type": 999, "id": "x", "symbol": "BTC"}, "message_type"),
    ({"type": 113, "id": "", "symbol": "BTC"}, "message_id"),
    ({"type": 113, "id": "x", "symbol": "BTC", "data": [1]}, "data"),
    ({"type": 113, "id": "x", "simbol": "BTC"}, "simbol"),
    ({"type": 113, "message_type": 110, "id": "x", "symbol": "BTC"}, "message_type"),
])
def test_envelope_refuses_bad_input_naming_the_field(obj, field):
    with pytest.raises(EnvelopeError) as exc:
        parse_envelope(obj, "http")
    assert str(exc.value).startswith(f"{field}:")


# --------------------------------------------------------------------------- Engine.ingest_signal


def _engine(active: str, **strategies):
    settings = Settings(symbols=["BTCUSDT"], active_strategy=active,
                        strategies={"ensemble": {"members": "ema_trend,confluence"}, **strategies})
    eng = build_engine(settings, load_default_rules(), run_id="unit")
    eng.clock.advance(T0)
    facts: list[ExternalSignalIngested] = []
    eng.bus.subscribe(ExternalSignalIngested, facts.append)
    return eng, facts


def _ensemble_confluence(eng):
    ens = eng.strategies["ensemble"].inner
    return next(m.strategy.inner for m in ens._members if m.name == "confluence")


@pytest.mark.parametrize("active, expected", [("confluence", "confluence"), ("ensemble", "pending")])
def test_ingest_signal_reaches_every_taker_and_reports_the_active_strategys_outcome(active, expected):
    eng, facts = _engine(active)
    standalone = eng.strategies["confluence"].inner
    standalone.process_signal(113, "f-direct", "BTC", None, T0)  # only the standalone one has a FOMO waiting
    fact = eng.ingest_signal(IngestSignal(110, "a-1", "BTC", None, "python"))
    assert facts == [fact] and fact.time_ms == T0 and fact.error == ""
    assert fact.outcome["status"] == expected  # the active strategy's view
    assert standalone.external_stats()["received"] == 2  # both takers saw the Alpha
    assert _ensemble_confluence(eng).external_stats()["received"] == 1


def test_ingest_signal_reports_a_bad_field_instead_of_raising():
    eng, facts = _engine("confluence")
    fact = eng.ingest_signal(IngestSignal(999, "x", "BTC", None, "http"))
    assert facts == [fact] and fact.outcome is None
    assert fact.error.startswith("message_type:") and "999" in fact.error
    assert eng.strategies["confluence"].inner.external_stats()["received"] == 0


# --------------------------------------------------------------------------- the gateway


async def test_gateway_matches_answers_in_order_and_a_late_answer_lands_on_its_own_slot():
    bus, queue = Bus(), []
    gw = SignalGateway(queue.append, bus, timeout_s=0.05)

    def answer(cmd, status):
        bus.publish(ExternalSignalIngested(cmd.message_type, cmd.message_id, cmd.symbol, T0,
                                           {"status": status}, "", cmd.source))

    first = IngestSignal(113, "same", "BTC", None, "http")
    with pytest.raises(EngineNotAnswering):
        await gw.send(first)  # nobody answers in time
    f2 = gw.send_nowait(IngestSignal(113, "same", "BTC", None, "http"))
    f3 = gw.send_nowait(IngestSignal(110, "other", "BTC", None, "http"))
    answer(queue[2], "pending")  # answers may come for another key first
    answer(queue[0], "late")  # the first command's answer, late: its slot was kept
    answer(queue[1], "duplicate")
    assert f3.result().outcome["status"] == "pending" and f2.result().outcome["status"] == "duplicate"
    assert gw.pending() == 0
    gw.close()


# --------------------------------------------------------------------------- HTTP, real sockets


async def test_http_accepts_answers_duplicates_and_refuses_without_the_token(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    async with running_session(tmp_path, signals={"token": TOKEN, "http_port": 0}) as s:
        status, doc = await http(s.port, {"type": 113, "id": "f-1", "symbol": "BTC", "data": {"src": "t"}})
        assert status == 200 and doc["ok"] and doc["status"] == "pending" and doc["symbol"] == "BTC"
        assert doc["outcome"]["signal"]["symbol"] == "BTCUSDT" and doc["time_ms"] == s.facts[-1].time_ms > 0
        status, doc = await http(s.port, {"type": 113, "id": "f-1", "symbol": "BTCUSDT"}, header="x-token")
        assert status == 200 and doc["status"] == "duplicate"
        for token in (None, "wrong-token-but-long-enough", TOKEN[:-1]):
            status, doc = await http(s.port, {"type": 113, "id": "f-2", "symbol": "BTC"}, token=token)
            assert status == 401 and "unauthorized" in doc["error"]
        assert [f.message_id for f in s.facts] == ["f-1", "f-1"]  # nothing refused reached the engine
        assert s.ingest.http.refused == 3
    text = caplog.text + "".join(repr(r.args) for r in caplog.records)
    assert "refused a request" in text and TOKEN not in text and TOKEN[:-1] not in text
    assert "signal endpoint listening on http://127.0.0.1:" in caplog.text and "signal endpoint closed" in caplog.text


async def test_http_bad_field_bad_json_lists_and_wrong_routes(tmp_path):
    async with running_session(tmp_path, signals={"token": TOKEN, "http_port": 0}) as s:
        status, doc = await http(s.port, {"type": 111, "id": "x", "symbol": "BTC"})
        assert status == 400 and not doc["ok"] and doc["error"].startswith("message_type:")
        status, doc = await http(s.port, raw=b'{"type": 113,')
        assert status == 400 and doc["error"].startswith("body: not valid JSON")
        batch = [{"type": 110, "id": "a-9", "symbol": "SOL"}, {"type": 113, "id": "f-9", "symbol": "BTC", "zz": 1},
                 {"type": 112, "id": "f-10", "symbol": "SOL"}]
        status, docs = await http(s.port, batch)
        assert status == 400 and [d["status"] for d in docs] == ["pending", "rejected", "confluence"]
        assert docs[1]["error"].startswith("zz:") and docs[2]["score"] > 0.9
        assert [f.message_id for f in s.facts] == ["a-9", "f-10"]  # in order; the bad one never reached it
        assert (await http(s.port, method="GET"))[0] == 405
        assert (await http(s.port, {"type": 113}, path="/other"))[0] == 404
        assert (await http(s.port, path="/other", token=None))[0] == 401  # nothing is shown without the token


async def test_http_endpoint_is_off_without_a_token(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    async with running_session(tmp_path, signals={"http_port": 0}) as s:
        assert s.ingest.http is None
    assert "signal endpoint off: no [signals] token configured" in caplog.text


async def test_http_endpoint_closes_with_the_session(tmp_path):
    async with running_session(tmp_path, signals={"token": TOKEN, "http_port": 0}) as s:
        port = s.port
        assert (await http(port, {"type": 110, "id": "a", "symbol": "BTC"}))[0] == 200
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


# --------------------------------------------------------------------------- the Python call


async def test_python_call_on_the_running_runtime(tmp_path):
    async with running_session(tmp_path) as s:
        s.rt.process_signal(113, "py-1", "ETH", {"note": "from python"})
        s.rt.process_signal("abc", "py-2", "ETH")
        await wait_for(lambda: len(s.facts) == 2, what="both answered")
        ok, bad = s.facts
        assert ok.source == "python" and ok.outcome["status"] == "pending" and ok.outcome["signal"]["symbol"] == "ETHUSDT"
        assert bad.outcome is None and bad.error.startswith("message_type:")


# --------------------------------------------------------------------------- end to end


async def test_fomo_and_alpha_over_http_make_the_confluence_strategy_enter_on_the_sim(tmp_path):
    async with running_session(tmp_path, signals={"token": TOKEN, "http_port": 0}) as s:
        eng = s.run.engine
        assert not eng.positions
        status, fomo = await http(s.port, {"type": 113, "id": "fomo-1", "symbol": "BTC"})
        assert status == 200 and fomo["status"] == "pending"
        status, alpha = await http(s.port, {"type": 110, "id": "alpha-1", "symbol": "BTC"})
        assert status == 200 and alpha["status"] == "confluence" and alpha["score"] >= 0.6
        await wait_for(lambda: any(j.record.signal.strategy == "confluence" for j in s.judged), what="signal judged")
        rec = next(j.record for j in s.judged if j.record.signal.strategy == "confluence")
        assert rec.verdict is Verdict.ACCEPTED, rec.reason
        assert rec.signal.direction is Direction.LONG and rec.signal.time_ms >= alpha["time_ms"]
        await wait_for(lambda: bool(eng.positions) or bool(eng.trades.closed), what="entry filled")
        sim_positions = [p for p in s.run.port.positions() if p.amount != 0]
        assert eng.trades.closed or (sim_positions and sim_positions[0].amount > Decimal(0))
        trade = (eng.trades.closed or [t.to_trade(closed=False) for t in eng.trades.open.values()])[0]
        assert trade.strategy == "confluence" and trade.symbol == "BTCUSDT" and trade.direction is Direction.LONG
