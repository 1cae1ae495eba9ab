"""If the exchange-side stop cannot be placed, the position is closed at market and the reason recorded."""

from decimal import Decimal

from engine.backtest import build_sim_run, run_sync
from engine.config import Settings
from engine.exchange.errors import ExchangeError
from engine.model import ExitReason, OrderPurpose
from engine.state.journal import Journal


class RejectingStops:
    """Fault injection: the exchange refuses every STOP_MARKET (as if -2021 'would immediately trigger')."""

    def __init__(self, port, code=-2021, msg="Order would immediately trigger."):
        self.port = port
        self.code = code
        self.msg = msg
        self.rejected = 0

    def place_algo_order(self, req):
        if req.purpose is OrderPurpose.STOP_LOSS:
            self.rejected += 1
            raise ExchangeError(self.code, self.msg)
        return self.port.place_algo_order(req)

    def __getattr__(self, name):
        return getattr(self.port, name)


def _run(code):
    journal = Journal("nostop")
    run = build_sim_run(Settings(), run_id="nostop", journal=journal, strict=True)
    fault = RejectingStops(run.port, code=code)
    run.port = fault
    run_sync(run)
    return run, fault, journal


def test_a_rejected_stop_closes_the_position_at_market_and_says_why():
    run, fault, journal = _run(-2021)
    trades = run.engine.trades.closed
    assert fault.rejected > 0 and trades
    # every entry was closed at once, by an emergency close, before any further candle
    assert {t.exit_reason for t in trades} == {ExitReason.NO_PROTECTION}
    assert all(t.exit_time_ms == t.entry_time_ms for t in trades)
    assert not [p for p in run.sim.position_risk({}) if Decimal(p["positionAmt"]) != 0]
    assert not run.sim.open_algo_orders({})  # the take-profit was cancelled too
    assert run.engine.stats.protection_failures == fault.rejected
    batch = journal.take()
    events = [e for e in batch.events if e["kind"] == "protection_failed"]
    assert len(events) == fault.rejected and "-2021" in events[0]["message"]
    closes = [o for o in batch.orders if o.purpose is OrderPurpose.EMERGENCY_CLOSE]
    assert closes and all(o.reduce_only for o in closes)


def test_transient_stop_errors_are_retried_then_closed():
    run, fault, _ = _run(-1001)  # "internal error; try again": retried with the same client id
    assert fault.rejected >= 4 * len(run.engine.trades.closed) > 0  # first try + 3 retries each
    assert {t.exit_reason for t in run.engine.trades.closed} == {ExitReason.NO_PROTECTION}
