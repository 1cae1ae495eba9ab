"""The training view and keys (issue 8): t/T reach the trainer through the facades, the pane shows
every field of its view, and without a trainer the keys say training is not available."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.events import Halt, StartTraining, StopTraining
from engine.facade import TRAINING_UNAVAILABLE, TrainingUnavailable, TrainingView, route_training, training_view
from tests.tui.snapshot_apps.perpdeck_app import make_app
from tests.tui.support import wait_until
from tui.app import PerpdeckApp
from tui.fake import WALL_MS, FakeFacade, FakeTrainer, seeded_training
from tui.launch import SessionFacade
from tui.screens.main import MainScreen
from tui.screens.training import TrainingScreen
from tui.widgets.training import BAR_WIDTH, TrainingPanel, progress_bar, training_lines


def panel_text(view: TrainingView | None) -> str:
    return "\n".join("".join(text for text, _tone in line) for line in training_lines(view))


def notes(app) -> list[str]:
    return [n.message for n in app._notifications]


# -- keys, over the fake facade -------------------------------------------------------------------


async def test_t_starts_the_trainer_and_the_pane_shows_it_running():
    trainer = FakeTrainer()
    app = make_app(FakeFacade(trainer=trainer))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("3")
        assert isinstance(app.screen, TrainingScreen)
        panel = app.screen.query_one(TrainingPanel)
        await wait_until(pilot, lambda: panel.view is not None and panel.view.state == "idle")

        await pilot.press("t")

        assert trainer.calls == ["start"]
        assert app.facade.commands == [StartTraining()]
        await wait_until(pilot, lambda: panel.view.state == "running")
        assert any("training starting" in n for n in notes(app))


async def test_shift_t_stops_a_running_trainer_and_t_resumes_it():
    trainer = FakeTrainer(seeded_training())
    app = make_app(FakeFacade(trainer=trainer))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("T")
        assert trainer.calls == ["stop"]
        assert trainer.view().state == "stopped"
        await pilot.press("t")
        assert trainer.calls == ["stop", "start"]
        assert any("from its checkpoint" in n for n in notes(app))


async def test_keys_that_would_do_nothing_send_nothing_and_say_why():
    trainer = FakeTrainer(seeded_training())  # running
    app = make_app(FakeFacade(trainer=trainer))
    async with app.run_test() as pilot:
        await pilot.press("t")  # already running
        assert trainer.calls == [] and app.facade.commands == []
        assert any("already running" in n for n in notes(app))
    stopping = FakeTrainer(replace(seeded_training(), state="stopping"))
    app = make_app(FakeFacade(trainer=stopping))
    async with app.run_test() as pilot:
        await pilot.press("t")
        assert stopping.calls == [] and any("still stopping" in n for n in notes(app))
    idle = FakeTrainer()
    app = make_app(FakeFacade(trainer=idle))
    async with app.run_test() as pilot:
        await pilot.press("T")  # not running
        assert idle.calls == [] and app.facade.commands == []
        assert any("not running (idle)" in n for n in notes(app))


async def test_without_a_trainer_the_keys_say_training_is_not_available():
    app = make_app()  # a fake facade without a trainer
    async with app.run_test() as pilot:
        await pilot.press("t", "T")
        assert app.facade.commands == []
        assert notes(app).count(TRAINING_UNAVAILABLE) >= 1
        await pilot.press("3")
        panel = app.screen.query_one(TrainingPanel)
        await wait_until(pilot, lambda: panel.shown)
        assert panel.view is None


# -- routing through the session facade (what engine/cli.py builds) ----------------------------------


async def test_keys_reach_the_trainer_through_the_session_facade_before_and_after_the_engine_is_up():
    trainer = FakeTrainer()
    session = SessionFacade("sim", trainer=trainer)
    app = PerpdeckApp(session, refresh_s=0.1, clock_ms=lambda: WALL_MS)
    async with app.run_test() as pilot:
        await pilot.press("t")  # the engine session is still starting
        assert trainer.calls == ["start"] and session.pending == []
        engine = FakeFacade()
        session.attach(engine)
        await wait_until(pilot, lambda: app.snapshot is not None and app.snapshot.run_id == engine.snapshot().run_id)
        assert app.snapshot.training == trainer.view()
        await pilot.press("T", "h")
        assert trainer.calls == ["start", "stop"]
        assert engine.commands == [Halt("operator")]  # training commands never reach the engine


def test_session_facade_without_a_trainer_refuses_training_commands_and_queues_the_rest():
    session = SessionFacade("sim")
    with pytest.raises(TrainingUnavailable, match="not available"):
        session.submit(StartTraining())
    session.submit(Halt("x"))
    assert session.pending == [Halt("x")]
    assert session.snapshot().training is None
    engine = FakeFacade()
    session.attach(engine)
    with pytest.raises(TrainingUnavailable):
        session.submit(StopTraining())  # the engine's facade has no trainer either
    assert engine.commands == [Halt("x")]


def test_route_training_leaves_other_commands_alone():
    trainer = FakeTrainer()
    assert route_training(trainer, Halt()) is False
    assert route_training(trainer, StartTraining()) is True
    assert route_training(trainer, StopTraining()) is True
    assert trainer.calls == ["start", "stop"]


def test_a_trainer_whose_view_fails_shows_failed_not_an_exception():
    class Broken(FakeTrainer):
        def view(self):
            raise RuntimeError("lost the thread")

    v = training_view(Broken())
    assert v.state == "failed" and "lost the thread" in v.detail


# -- what the pane says -------------------------------------------------------------------------------


def test_pane_shows_every_field_of_the_view():
    text = panel_text(seeded_training())
    for expected in ("running", "cuda:0 (NVIDIA H100 80GB HBM3)", "48.2%", "48,200 / 100,000 steps",
                     "412 steps/s", "2m05s", "+0.0123", "+3.41%", "-12.3456", "0.0456", "0.0123",
                     "state/rl/sac-20250115/ckpt-048000.zip", "checkpoint saved at step 48,000"):
        assert expected in text, expected


def test_pane_without_figures_shows_dashes_and_no_eta_once_stopped():
    v = TrainingView(state="stopped", device="cpu", steps=500, total_steps=0)
    text = panel_text(v)
    assert "500 steps" in text and "%" not in text.split("\n")[1]
    assert "Speed       —" in text
    assert "ETA             —" in text
    stopped = panel_text(replace(seeded_training(), state="stopped"))
    assert "2m05s" not in stopped  # an ETA means nothing once stopped


def test_pane_without_a_trainer_says_how_to_enable_it():
    text = panel_text(None)
    assert "not available" in text and "perpdeck[rl]" in text and "[rl] enabled = true" in text


@given(st.integers(min_value=0, max_value=10**9), st.integers(min_value=1, max_value=10**9))
def test_progress_bar_has_a_fixed_width_and_fills_in_proportion(steps, total):
    bar = progress_bar(steps, total)
    assert len(bar) == BAR_WIDTH
    filled = len(bar.rstrip("░"))
    share = min(1.0, steps / total)
    assert abs(filled - share * BAR_WIDTH) <= 1


async def test_3_toggles_the_training_view_and_esc_goes_back():
    app = make_app(FakeFacade(trainer=FakeTrainer()))
    async with app.run_test() as pilot:
        await pilot.press("3")
        assert isinstance(app.screen, TrainingScreen)
        await pilot.press("3")
        assert isinstance(app.screen, MainScreen)
        await pilot.press("3", "escape")
        assert isinstance(app.screen, MainScreen)


async def test_l_filters_the_log_of_the_view_on_top():
    app = make_app(FakeFacade(trainer=FakeTrainer()))
    async with app.run_test() as pilot:
        await pilot.press("3", "l")
        from tui.widgets.log import LogView

        assert app.screen.query_one(LogView).level == "INFO"
        assert app.main_screen.query_one(LogView).level == "ALL"
        assert "INFO and above" in app.screen.query_one("#training-log-pane").border_title


def test_runtime_facade_routes_training_commands_to_its_trainer(tmp_path):
    from engine.facade import RuntimeFacade
    from tests.tui.test_engine_keys import make_runtime

    run, rt, plain = make_runtime(tmp_path, with_positions=False)
    trainer = FakeTrainer()
    facade = RuntimeFacade(rt, trainer=trainer)
    facade.submit(StartTraining())
    assert trainer.calls == ["start"] and rt.commands.empty()  # never queued for the engine
    assert facade.snapshot().training == trainer.view() and trainer.view().state == "running"
    assert plain.snapshot().training is None
    with pytest.raises(TrainingUnavailable):
        plain.submit(StopTraining())
    assert rt.commands.empty()
