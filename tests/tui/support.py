"""Helpers shared by the console tests: waiting for the app, settling it for a screenshot."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from textual.pilot import Pilot
from textual.widgets import Input

WAIT_S = 3.0
"""The longest a test waits for the console to show something."""


async def wait_until(pilot: Pilot, condition: Callable[[], bool], timeout: float = WAIT_S) -> None:
    """Let the app run until ``condition()`` holds; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("the console did not reach the expected state in time")
        await pilot.pause(0.02)


async def settle(pilot: Pilot) -> None:
    """Stop cursor blinks and wait for workers, so a screenshot is stable."""
    for widget in pilot.app.screen.query(Input):
        widget.cursor_blink = False
    await pilot.app.screen.workers.wait_for_complete()
    await pilot.pause()
