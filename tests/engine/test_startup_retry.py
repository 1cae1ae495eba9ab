"""Startup waits out transient exchange failures (5xx, 429, 418 bans, clock skew) instead of exiting,
and stops at once on a final answer (bad key, unknown symbol)."""

from __future__ import annotations

import asyncio

import pytest

from engine.exchange.errors import AuthError, Banned, ExchangeError, RateLimited, TransientError, UnknownStatusError
from engine.exchange.binance.rest import quick_read
from engine.live import retry_startup


class Flaky:
    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "answer"


async def test_transient_failures_are_retried_until_the_exchange_answers():
    call = Flaky(TransientError(-1001, "disconnected", 503), UnknownStatusError(0, "timeout", 0),
                 RateLimited(-1003, "too many", 429, retry_after_s=0.0), ExchangeError(-1021, "ts outside", 400),
                 ExchangeError(0, "bad gateway", 502), Banned(-1003, "banned", 418, until_ms=1_000))
    assert await retry_startup(call, "positions", first_backoff_s=0, wall_ms=lambda: 2_000) == "answer"
    assert call.calls == 7


async def test_a_ban_is_waited_out_until_it_ends(monkeypatch):
    waits: list[float] = []

    async def no_sleep(s):
        waits.append(s)

    monkeypatch.setattr("engine.live.asyncio.sleep", no_sleep)
    call = Flaky(Banned(-1003, "banned", 418, until_ms=12_000), RateLimited(-1003, "slow down", 429, retry_after_s=7))
    assert await retry_startup(call, "account", first_backoff_s=0.5, wall_ms=lambda: 2_000) == "answer"
    assert waits[0] >= 10.0  # the ban's end, not the 0.5 s backoff
    assert waits[1] >= 7.0  # Retry-After


async def test_a_ban_is_waited_out_to_its_end_not_to_the_rounded_up_retry_after(monkeypatch):
    """A 418 names the ban's end in ms and a Retry-After in whole seconds (rounded up): waiting for
    the header would keep a bare position's stop back up to a second after the ban has ended."""
    waits: list[float] = []

    async def no_sleep(s):
        waits.append(s)

    monkeypatch.setattr("engine.live.asyncio.sleep", no_sleep)
    call = Flaky(Banned(-1003, "banned", 418, until_ms=4_100, retry_after_s=3))
    assert await retry_startup(call, "clock sync", first_backoff_s=0.5, wall_ms=lambda: 2_000) == "answer"
    assert 2.1 <= waits[0] < 2.2


@pytest.mark.parametrize("err", [AuthError(-2015, "Invalid API-key, IP, or permissions for action.", 401),
                                 ExchangeError(-1121, "Invalid symbol.", 400)])
async def test_final_answers_end_startup_at_once(err):
    call = Flaky(err)
    with pytest.raises(type(err)):
        await retry_startup(call, "exchange info", first_backoff_s=0)
    assert call.calls == 1


def copies(*behaviour):
    """A read whose n-th copy does ``behaviour[n]``: ``"lost"`` (never answered), ``("slow", s, v)``
    (answers ``v`` after ``s`` seconds), ``("fail", s)`` (fails after ``s`` seconds) or a value."""
    calls: list[int] = []

    async def read():
        calls.append(1)
        b = behaviour[min(len(calls), len(behaviour)) - 1]
        if b == "lost":
            await asyncio.get_running_loop().create_future()
        if isinstance(b, tuple):
            await asyncio.sleep(b[1])
            if b[0] == "fail":
                raise TransientError(-1001, f"disconnected {len(calls)}", 503)
            return b[2]
        return b

    return read, calls


async def test_a_startup_read_lost_on_the_way_is_asked_again_after_a_short_wait():
    """A read that protection waits for: when no answer came after ``timeout_s``, another copy is
    sent beside it (twice); the first answer wins."""
    read, calls = copies("lost", "lost", ["p"])
    assert await asyncio.wait_for(quick_read(read, "positions", timeout_s=0.02), 5) == ["p"]
    assert len(calls) == 3


async def test_a_slow_startup_read_is_not_abandoned_for_its_copies():
    """On a slow link the first copy still answers first: asking again must not throw it away."""
    read, calls = copies(("slow", 0.1, ["first"]), "lost", "lost")
    assert await asyncio.wait_for(quick_read(read, "positions", timeout_s=0.02), 5) == ["first"]
    assert len(calls) == 3


async def test_a_startup_read_raises_once_every_copy_has_failed():
    read, calls = copies(("fail", 0.05), ("fail", 0.0), ("fail", 0.0))
    with pytest.raises(TransientError, match="disconnected"):
        await asyncio.wait_for(quick_read(read, "positions", timeout_s=0.02), 5)
    assert len(calls) == 3


async def test_a_failed_startup_step_leaves_no_request_of_it_running():
    """One read of a startup step fails: the step's other reads are cancelled before it is retried,
    so no request of the failed attempt runs beside the new one."""
    from engine.exchange.binance.rest import gather_or_cancel

    cancelled: list[str] = []

    async def hangs(name):
        try:
            await asyncio.get_running_loop().create_future()
        except asyncio.CancelledError:
            cancelled.append(name)
            raise

    async def fails():
        raise TransientError(-1001, "disconnected", 503)

    with pytest.raises(TransientError):
        await asyncio.wait_for(gather_or_cancel(hangs("positions"), fails(), hangs("open orders")), 5)
    assert sorted(cancelled) == ["open orders", "positions"]
    assert await gather_or_cancel(asyncio.sleep(0, "a"), asyncio.sleep(0, "b")) == ["a", "b"]
