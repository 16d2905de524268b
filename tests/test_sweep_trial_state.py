"""A trial of a sweep with local storage keeps its resumable state in its own directory and hands Ray only its
final checkpoint (trainables.tune_trainable): Ray never holds, so never deletes, an intermediate one."""

from pathlib import Path

import pytest

from frozen_slt.config.experiment import ExperimentConfig
from frozen_slt.training.loop import Reporter, fit
from trainables.tune_trainable import STATE_FILE, TICKET_FILE, TuneStore

# a fresh store asks Ray for a checkpoint it restored; outside a Tuner Ray answers None, with this warning
pytestmark = pytest.mark.filterwarnings("ignore:`get_checkpoint` is meant to only be called:UserWarning")


class Handed(Reporter):
    """Records, at every epoch's report, the directory the store would hand to Ray with it."""

    def __init__(self, store: TuneStore):
        self.store, self.handed = store, []

    def on_epoch(self, metrics):
        self.handed.append((metrics["epoch"], self.store.pending))
        self.store.discard()


def config(epochs: int = 2) -> ExperimentConfig:
    return ExperimentConfig.from_settings({"model": "conv2", "dataset": "digits", "epochs": epochs, "batch_size": 256,
                                           "sparsity": 0.5, "freeze_ratio": 0.5})


def test_only_the_final_state_goes_to_ray_and_the_trial_s_own_state_stays(tmp_path):
    store = TuneStore(tmp_path / "trial", config(), shared=True)
    reporter = Handed(store)
    fit(config(), reporter, store)
    assert reporter.handed == [(0, None), (1, None), (2, tmp_path / "trial")]
    assert sorted(path.name for path in (tmp_path / "trial").iterdir()) == sorted([STATE_FILE, TICKET_FILE])


def test_a_trial_killed_after_its_last_save_hands_its_final_state_to_ray_again(tmp_path):
    fit(config(), Reporter(), TuneStore(tmp_path / "trial", config(), shared=True))
    (tmp_path / "trial" / TICKET_FILE).unlink()  # killed between the state and the ticket
    again = TuneStore(tmp_path / "trial", config(), shared=True)
    state = again.load()
    assert state["epoch"] == 2 and again.pending == tmp_path / "trial" and (tmp_path / "trial" / TICKET_FILE).is_file()


def test_an_unfinished_trial_continues_from_its_own_state(tmp_path):
    short, longer = config(1), config(2)
    fit(short, Reporter(), TuneStore(tmp_path / "trial", short, shared=True))  # the state of epoch 1 of 2, as it were
    resumed = TuneStore(tmp_path / "trial", longer, shared=True)
    assert resumed.load()["epoch"] == 1 and resumed.pending is None


def test_without_a_state_directory_every_epoch_goes_to_ray_from_a_scratch_directory(tmp_path):
    store = TuneStore(tmp_path / "scratch", config(), shared=False)
    reporter = Handed(store)
    fit(config(), reporter, store)
    assert [handed for _, handed in reporter.handed] == [tmp_path / "scratch"] * 3
    assert not Path(tmp_path / "scratch").exists()  # removed after each report
