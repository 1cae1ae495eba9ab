"""The command palette: one provider over the actions table."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from tui.actions import palette_actions


class ActionsProvider(Provider):
    """Offers every palette action of :data:`tui.actions.ACTIONS` as "area: verb"."""

    async def discover(self) -> Hits:
        for action in palette_actions():
            yield DiscoveryHit(action.title, partial(self.app.run_action, action.action), help=action.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for action in palette_actions():
            score = matcher.match(action.title)
            if score > 0:
                yield Hit(
                    score,
                    matcher.highlight(action.title),
                    partial(self.app.run_action, action.action),
                    text=action.title,
                    help=action.help,
                )
