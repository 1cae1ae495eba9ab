"""``rl.worker.TrainerWorker`` implements ``engine.facade.TrainingControl``: start/stop from the
console's thread never block, the view is a frozen value with every field, start after stop resumes."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from engine.config import Settings
from engine.facade import TrainingControl, TrainingView
from rl.train import TrainResult
from rl.worker import TrainerWorker, build_trainer, rl_available


class FakeTrainer:
    """Posts progress, then blocks until stopped (or finishes at once when ``finish``)."""

    runs: list[bool] = []

    def __init__(self, settings, *, stop_event, on_progress, finish=False, fail=False):
        self.stop_event, self.on_progress, self.finish, self.fail = stop_event, on_progress, finish, fail
        self.running = threading.Event()

    def run(self, *, resume):
        FakeTrainer.runs.append(resume)
        if self.fail:
            raise RuntimeError("no data for rl.symbol")
        steps = 100 if self.finish else 40
        self.on_progress({"state": "running", "device": "cpu", "steps": steps, "total_steps": 100,
                          "steps_per_s": 50.0, "episode_reward": -1.5, "actor_loss": 0.5, "critic_loss": 0.1,
                          "ent_coef": 0.2, "eta_s": 1.2, "best_val_return_pct": 0.7, "checkpoint": "/x/last.zip"})
        WORKERS_STARTED.set()
        if not self.finish:
            self.stop_event.wait(30)
        return TrainResult("finished" if self.finish else "stopped", steps, 100, 0.7, None, "/x/last.zip", "cpu")


WORKERS_STARTED = threading.Event()


def make(**kw) -> TrainerWorker:
    WORKERS_STARTED.clear()
    FakeTrainer.runs = []
    return TrainerWorker(Settings(rl={"total_steps": 100}), resume_first=False,
                         trainer_factory=lambda s, **k: FakeTrainer(s, **k, **kw))


def test_it_is_a_training_control():
    w = make()
    for name in ("start", "stop", "view"):  # the protocol's methods, with its signatures
        assert name in TrainingControl.__dict__ and callable(getattr(w, name))
    v = w.view()
    assert isinstance(v, TrainingView) and v.state == "idle" and v.total_steps == 100


def test_start_stop_and_resume():
    w = make()
    w.start()
    assert WORKERS_STARTED.wait(10)
    v = w.view()
    assert dataclasses.asdict(v) == dataclasses.asdict(TrainingView(
        state="running", device="cpu", steps=40, total_steps=100, steps_per_s=50.0, episode_reward=-1.5,
        actor_loss=0.5, critic_loss=0.1, ent_coef=0.2, eta_s=1.2, best_val_return_pct=0.7,
        checkpoint="/x/last.zip", detail="starting (loading data and torch)"))
    w.start()  # already running: nothing happens
    w.stop()
    assert w.view().state in ("stopping", "stopped")
    assert w.join(10)
    assert w.view().state == "stopped" and "stopped at step 40" in w.view().detail
    WORKERS_STARTED.clear()
    w.start()  # resumes from the checkpoint
    assert WORKERS_STARTED.wait(10)
    w.stop()
    assert w.join(10)
    assert FakeTrainer.runs == [False, True]


def test_finished_and_failed_states():
    w = make(finish=True)
    w.start()
    assert w.join(10)
    assert w.view().state == "finished" and w.view().steps == 100
    w = make(fail=True)
    w.start()
    assert w.join(10)
    v = w.view()
    assert v.state == "failed" and "RuntimeError: no data for rl.symbol" in v.detail
    w.stop()  # stopping a dead worker is harmless
    assert w.view().state == "failed"


def test_view_is_the_same_frozen_value_until_progress():
    w = make()
    a, b = w.view(), w.view()
    assert a is b
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.steps = 3  # type: ignore[misc]


@pytest.mark.skipif(not rl_available(), reason="rl extra not installed")
def test_real_worker_trains_in_its_thread(tmp_path, btc):
    settings = Settings(state_dir=tmp_path, rl={"total_steps": 400, "learning_starts": 100, "net_arch": [16],
                                                "batch_size": 32, "episode_steps": 100, "eval_every_steps": 200})
    from rl.train import Trainer

    w = TrainerWorker(settings, trainer_factory=lambda s, **k: Trainer(s, data=btc, **k))
    w.start()
    assert w.join(60)
    v = w.view()
    assert v.state == "finished" and v.steps == 400 and v.device == "cpu"
    assert v.best_val_return_pct is not None and v.checkpoint.endswith("last.zip")
    assert v.steps_per_s and v.steps_per_s > 0
    assert isinstance(build_trainer(settings), TrainerWorker)
