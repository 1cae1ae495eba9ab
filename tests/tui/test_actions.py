"""The actions table is the single source of keys, palette entries and help rows."""

from __future__ import annotations

import re

from tui.actions import ACTIONS, bindings, palette_actions
from tui.app import PerpdeckApp
from tui.fake import FakeFacade


def test_ids_and_keys_are_unique():
    ids = [a.id for a in ACTIONS]
    keys = [k for a in ACTIONS for k in a.keys]
    assert len(ids) == len(set(ids))
    assert len(keys) == len(set(keys))


def test_every_action_has_an_app_method():
    for action in ACTIONS:
        assert callable(getattr(PerpdeckApp, f"action_{action.action}", None)), action.action


def test_palette_titles_read_area_colon_verb():
    for action in ACTIONS:
        assert re.fullmatch(r"[a-z]+: [a-z][a-z ]*", action.title), action.title


def test_app_bindings_come_from_the_table():
    app_bindings = {b.id: b for b in PerpdeckApp.BINDINGS if getattr(b, "id", None)}
    for action, binding in zip(ACTIONS, bindings(), strict=True):
        assert app_bindings[action.id] == binding
        assert binding.key.split(",") == list(action.keys)
        assert binding.action == action.action


def test_the_required_keys_are_bound():
    by_key = {k: a.action for a in ACTIONS for k in a.keys}
    assert by_key["h"] == "halt"
    assert by_key["r"] == "resume"
    assert by_key["F"] == by_key["ctrl+f"] == "flatten"
    assert by_key["s"] == "switch_strategy"
    assert by_key["question_mark"] == "show_help"
    assert by_key["ctrl+p"] == "command_palette"
    assert by_key["q"] == "quit"


def test_the_palette_offers_everything_but_itself():
    assert [a.action for a in palette_actions()] == [a.action for a in ACTIONS if a.action != "command_palette"]


def test_the_app_takes_its_facade_as_an_argument():
    facade = FakeFacade()
    assert PerpdeckApp(facade).facade is facade
