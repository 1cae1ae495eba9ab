"""The header bar: one widget drawing every field, repainting only the rows that changed."""

from __future__ import annotations

from pathlib import Path

from textual.app import App, ComposeResult

import tui
from tui.fake import WALL_MS, seeded_snapshot
from tui.widgets.header import HeaderBar, HeaderField


class HeaderApp(App[None]):
    CSS_PATH = Path(tui.__file__).parent / "app.tcss"

    def compose(self) -> ComposeResult:
        yield HeaderBar(id="header")


def lines(bar: HeaderBar) -> list[str]:
    return [bar.render_line(y).text for y in range(3)]


def test_a_field_never_narrows_within_a_layout():
    field = HeaderField("equity", "equity")
    field.show("10,000.00")
    field.show("9.50")
    assert field.padded_value == "9.50     "  # as wide as "10,000.00": the fields after it stay put
    field.fit()
    assert field.padded_value == "9.50"


async def test_the_header_fills_its_rows_and_cuts_a_long_state_with_an_ellipsis():
    app = HeaderApp()
    async with app.run_test(size=(80, 3)) as pilot:
        bar = app.query_one(HeaderBar)
        snap = seeded_snapshot(state="HALTED", halt_reason="daily loss limit reached")
        bar.show(snap, WALL_MS, compact=True)
        await pilot.pause()
        first, second, third = lines(bar)
        assert first == " SIM    ■ HALTED — daily loss limit re…   mkt ● 0.4s  user ● 12s  12:34:56 UTC"
        assert second.startswith("eq 10,458.19  avail 7,915.62  uPnL -24.18  today +132.48")
        assert second.rstrip().endswith("strat ema_trend")  # right-aligned in the spare width
        assert third.startswith("trades 3/10  opened 3/10  streak 1/4  disabled rl_policy  guard ok")
        assert {len(line) for line in (first, second, third)} == {78}


async def test_the_header_repaints_only_the_rows_that_changed():
    app = HeaderApp()
    async with app.run_test(size=(120, 3)) as pilot:
        bar = app.query_one(HeaderBar)
        snap = seeded_snapshot()
        bar.show(snap, WALL_MS, compact=False)
        await pilot.pause()
        repainted: list[int] = []
        refresh = bar.refresh
        bar.refresh = lambda *regions, **kw: (repainted.extend(r.y for r in regions), refresh(*regions, **kw))[1]

        bar.show(snap, WALL_MS + 1_000, compact=False)  # only the stream ages (first row) moved

        assert repainted == [0]
        await pilot.pause()
        assert "user ● 13s" in lines(bar)[0]
