"""The console over a :class:`~tui.fake.FakeFacade`, with the fake's fixed wall clock.

``make_app(**fake_kwargs)`` builds one; ``app`` is the seeded default, so this file can also be
handed to ``snap_compare`` by path or run with ``textual run``.
"""

from __future__ import annotations

from tui.app import PerpdeckApp
from tui.fake import FakeFacade

TEST_REFRESH_S = 0.1
"""Tests refresh at the fastest allowed rate so they wait less."""


def make_app(facade: FakeFacade | None = None, *, refresh_s: float = TEST_REFRESH_S, **fake_kwargs) -> PerpdeckApp:
    """A console over ``facade`` (or a new fake built from ``fake_kwargs``)."""
    facade = facade or FakeFacade(**fake_kwargs)
    return PerpdeckApp(facade, refresh_s=refresh_s, clock_ms=facade.wall_ms)


app = make_app()

if __name__ == "__main__":
    app.run()
