"""A trial of a sweep with local storage keeps its resumable state in its own directory and hands Ray only its
final checkpoint (trainables.tune_trainable): Ray never holds, so never deletes, an intermediate one. What
that final checkpoint holds is ``[storage] keep``: ``lean`` its ticket file and final result, ``all`` also
the whole training state."""

import json
import shutil
from pathlib import Path

import pytest
from ray import tune

from frozen_slt.config.experiment import ExperimentConfig
from frozen_slt.ticket import read_ticket
from frozen_slt.training.checkpoint import check_fit_state, read_checkpoint
from frozen_slt.training.loop import Reporter, fit
from sweeps.spec import KEEP_MODES as SPEC_KEEP_MODES
from trainables import tune_trainable
from trainables.tune_trainable import (
    FINAL_DIR,
    KEEP_MODES,
    RESULT_FILE,
    STATE_FILE,
    TICKET_FILE,
    TuneStore,
)

# a fresh store asks Ray for a checkpoint it restored; outside a Tuner Ray answers None, with this warning
pytestmark = pytest.mark.filterwarnings("ignore:`get_checkpoint` is meant to only be called:UserWarning")


class Handed(Reporter):
    """Records, at every epoch's report, the directory the store hands to Ray with it and what it holds then
    (a scratch directory is gone after the report)."""

    def __init__(self, store: TuneStore):
        self.store, self.handed, self.held = store, [], {}

    def on_epoch(self, metrics):
        directory = self.store.hand({"epoch": metrics["epoch"], "best_val_accuracy": metrics["best_val_accuracy"]})
        self.handed.append((metrics["epoch"], directory))
        if directory is not None:
            self.held[metrics["epoch"]] = {path.name: path.read_bytes() for path in directory.iterdir() if path.is_file()}
        self.store.discard()


def config(epochs: int = 2, weight_trained: bool = False) -> ExperimentConfig:
    settings = {"model": "conv2", "dataset": "digits", "epochs": epochs, "batch_size": 256}
    settings |= {"weight_trained": True} if weight_trained else {"sparsity": 0.5, "freeze_ratio": 0.5}
    return ExperimentConfig.from_settings(settings)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The same ticket trial trained once in each mode, in a state directory of its own: ``{keep: (store, reporter)}``."""
    runs = {}
    for keep in KEEP_MODES:
        store = TuneStore(tmp_path_factory.mktemp(keep) / "trial", config(), shared=True, keep=keep)
        reporter = Handed(store)
        fit(config(), reporter, store)
        runs[keep] = store, reporter
    return runs


def test_only_the_final_checkpoint_goes_to_ray_and_the_trial_s_own_state_stays(trained):
    whole, lean = trained["all"][0].directory, trained["lean"][0].directory
    assert trained["all"][1].handed == [(0, None), (1, None), (2, whole)]
    assert trained["lean"][1].handed == [(0, None), (1, None), (2, lean / FINAL_DIR)]
    assert sorted(path.name for path in whole.iterdir()) == sorted([STATE_FILE, TICKET_FILE])
    assert sorted(path.name for path in lean.iterdir()) == sorted([FINAL_DIR, STATE_FILE])
    # the state a killed trial resumes from is the same whatever the final checkpoint keeps
    states = [read_checkpoint(store.directory / STATE_FILE) for store, _ in trained.values()]
    assert all(state["epoch"] == 2 and state["optimizer"]["state"] for state in states)
    assert [{**entry, "seconds": 0} for entry in states[0]["history"]] == [{**entry, "seconds": 0} for entry in states[1]["history"]]


def test_a_lean_final_checkpoint_holds_the_ticket_and_the_final_result_only(trained):
    held, full = trained["lean"][1].held[2], trained["all"][1].held[2]
    assert sorted(held) == sorted([TICKET_FILE, RESULT_FILE])  # no model, optimizer, scheduler or random state
    assert json.loads(held[RESULT_FILE]) == {"epoch": 2, "best_val_accuracy": read_ticket(
        trained["lean"][0].directory / FINAL_DIR / TICKET_FILE).val_accuracy}
    assert held[TICKET_FILE] == full[TICKET_FILE]  # the same ticket file, byte for byte
    assert 10 * sum(map(len, held.values())) < sum(map(len, full.values()))


def test_keep_all_hands_ray_the_whole_training_state_with_the_ticket(trained):
    store, reporter = trained["all"]
    assert sorted(reporter.held[2]) == sorted([STATE_FILE, TICKET_FILE])
    state = read_checkpoint(store.directory / STATE_FILE)
    check_fit_state(state, config().config_hash(), 2, "the final checkpoint")  # optimizer, scheduler, rng: resumable
    assert read_ticket(store.directory / TICKET_FILE).epoch == state["best"]["epoch"]


@pytest.mark.parametrize("keep", KEEP_MODES)
def test_a_trial_killed_after_its_last_save_hands_its_final_checkpoint_to_ray_again(trained, tmp_path, keep):
    shutil.copytree(trained[keep][0].directory, tmp_path / "trial")
    (tmp_path / "trial" / FINAL_DIR / RESULT_FILE).unlink(missing_ok=True)  # killed before its final report
    again = TuneStore(tmp_path / "trial", config(), shared=True, keep=keep)
    (again.final_directory / TICKET_FILE).unlink()  # killed between the state and the ticket
    state = again.load()
    assert state["epoch"] == 2 and again.pending == again.final_directory and (again.final_directory / TICKET_FILE).is_file()
    handed = again.hand({"epoch": 2})
    assert sorted(path.name for path in handed.iterdir()) == sorted(
        [TICKET_FILE, RESULT_FILE] if keep == "lean" else [STATE_FILE, TICKET_FILE])


def test_an_unfinished_trial_continues_from_its_own_state(tmp_path):
    short, longer = config(1), config(2)
    fit(short, Reporter(), TuneStore(tmp_path / "trial", short, shared=True))  # the state of epoch 1 of 2, as it were
    resumed = TuneStore(tmp_path / "trial", longer, shared=True)
    assert resumed.load()["epoch"] == 1 and resumed.pending is None


@pytest.mark.parametrize("keep", KEEP_MODES)
def test_without_a_state_directory_every_epoch_goes_to_ray_from_a_scratch_directory(tmp_path, keep):
    store = TuneStore(tmp_path / "scratch", config(), shared=False, keep=keep)
    reporter = Handed(store)
    fit(config(), reporter, store)
    final = tmp_path / "scratch" / (FINAL_DIR if keep == "lean" else "")
    assert [handed for _, handed in reporter.handed] == [tmp_path / "scratch"] * 2 + [final]
    assert STATE_FILE in reporter.held[1]  # every epoch before the last: the whole state, to resume from
    assert sorted(reporter.held[2]) == sorted([TICKET_FILE, RESULT_FILE] if keep == "lean" else [STATE_FILE, TICKET_FILE])
    assert not Path(tmp_path / "scratch").exists()  # removed after each report


def test_the_weight_trained_baseline_keeps_its_final_result_alone(tmp_path):
    baseline = config(1, weight_trained=True)
    store = TuneStore(tmp_path / "trial", baseline, shared=True)
    reporter = Handed(store)
    fit(baseline, reporter, store)
    assert sorted(reporter.held[1]) == [RESULT_FILE]


def test_ray_restoring_a_finished_trial_from_its_lean_checkpoint_gets_its_result_back(trained, monkeypatch, tmp_path):
    lean, whole = trained["lean"][0].final_directory, trained["all"][0].directory
    restored = TuneStore(tmp_path / "scratch", config(), shared=False)
    monkeypatch.setattr(tune_trainable.tune, "get_checkpoint", lambda: tune.Checkpoint.from_directory(str(lean)))
    assert restored.finished_result() == json.loads((lean / RESULT_FILE).read_text())
    own = TuneStore(trained["lean"][0].directory, config(), shared=True)  # a trial's own state comes first
    assert own.finished_result() is None
    monkeypatch.setattr(tune_trainable.tune, "get_checkpoint", lambda: tune.Checkpoint.from_directory(str(whole)))
    assert restored.finished_result() is None and restored.load()["epoch"] == 2  # a whole state: resumed as before


def test_keep_takes_the_modes_the_sweep_file_allows():
    assert KEEP_MODES == SPEC_KEEP_MODES
    with pytest.raises(ValueError, match="lean, all"):
        TuneStore(Path("unused"), config(), keep="none")
