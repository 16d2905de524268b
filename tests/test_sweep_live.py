"""Live fronts (sweeps.live): the parent run's hypervolume history gets one step per finished trial, never a step
twice, also across a resumed driver; the front files are refreshed at most once per interval; the reference
point comes from the sweep's plan; the progress lines show each family's hypervolume. No Ray: a real MLflow
sqlite store, fake trials and a fake clock."""

import io
import json
import shutil
from dataclasses import replace
from types import SimpleNamespace

import pytest
from mlflow.tracking import MlflowClient
from sweep_runs import grid_sweep

from frozen_slt.cli.plan import plan_report
from frozen_slt.config.experiment import ExperimentConfig
from frozen_slt.config.points import point_config
from frozen_slt.config.settings import parse_toml
from frozen_slt.errors import SweepConfigError
from sweeps.fronts import compute_fronts, reference_for
from sweeps.live import LiveFronts, LiveSettings
from sweeps.outcome import record_of
from sweeps.progress import ProgressCallback
from sweeps.space import _box_corners, grid_points, largest_ticket_bits
from sweeps.spec import sweep_spec_from_dict
from sweeps.tracking import MlflowTrialCallback, SweepTracker

BASE = ExperimentConfig.from_settings({"model": "conv2", "dataset": "digits", "epochs": 2})
POINTS = {  # trial id -> (point, ticket bits, best val accuracy)
    "t1": ({"family": "frozen", "sparsity": 0.5, "freeze_ratio": 0.6, "lock_share": "proportional", "seed": 0}, 400, 0.6),
    "t2": ({"family": "dense", "sparsity": 0.5, "seed": 0}, 1000, 0.7),
    "t3": ({"family": "pruned", "sparsity": 0.5, "freeze_ratio": 0.3, "lock_share": 0.0, "seed": 0}, 700, 0.65),
    "t4": ({"family": "frozen", "sparsity": 0.7, "freeze_ratio": 0.3, "lock_share": 0.25, "seed": 1}, 650, 0.8),
    "t5": ({"family": "weight_trained", "seed": 0}, 32000, 0.9),
}
FAMILIES = ("dense", "pruned", "frozen")


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def result(trial_id, epoch=2):
    point, bits, accuracy = POINTS[trial_id]
    return {"trial_id": trial_id, "epoch": epoch, "done": epoch == 2, "full_budget": epoch == 2, "ticket_bits": bits,
            "best_val_accuracy": accuracy, "best_test_accuracy": accuracy - 0.05, "best_epoch": epoch,
            "val_accuracy": accuracy}


def trial(trial_id, epoch=2):
    return SimpleNamespace(trial_id=trial_id, config={"point": POINTS[trial_id][0]}, last_result=result(trial_id, epoch),
                           checkpoint=None, status="RUNNING")


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory):
    """An MLflow sqlite store with its tables made (seconds), copied by each test that needs one."""
    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def store(tmp_path, empty_store):
    """``(tracking URI, parent run id)`` of a fresh store in ``tmp_path``."""
    shutil.copyfile(empty_store, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return uri, SweepTracker(uri, "frozen-slt", tmp_path / "artifacts").open_parent("sweep", {"search": "grid"})


def settings(tmp_path, refresh_s=60.0):
    return LiveSettings(reference_for(2000), refresh_s, FAMILIES, str(tmp_path / "results"), "live test")


def history(client, parent, key):
    return [(metric.step, metric.value) for metric in sorted(client.get_metric_history(parent, key), key=lambda m: m.step)]


def callback(tmp_path, uri, parent, refresh_s=60.0, clock=None):
    state = tmp_path / "sweep.json"
    state.write_text(json.dumps({"live": settings(tmp_path, refresh_s).to_dict()}))
    made = MlflowTrialCallback(uri, parent, BASE.to_dict(), str(tmp_path / "tickets"), None, str(state))
    made.setup()
    if clock is not None:
        made._live.clock = clock
    return made


def test_each_finished_trial_is_one_step_and_a_trial_counted_before_is_not_counted_again(tmp_path, store):
    uri, parent = store
    client = MlflowClient(uri)
    live = LiveFronts(client, parent, settings(tmp_path), BASE, clock=Clock())
    records = {tid: record_of(result(tid), {"point": POINTS[tid][0]}, BASE) for tid in POINTS}
    assert live.add("t1", records["t1"]) and live.add("t2", records["t2"])
    assert not live.add("t1", records["t1"])  # a resumed Ray ran it to its end again
    assert live.add("t5", records["t5"])  # the baseline counts a step and moves no front
    assert [step for step, _ in history(client, parent, "hypervolume_frozen")] == [1, 2, 3]
    # a family none of whose trials finished has an empty front, hypervolume 0, until its first one
    assert history(client, parent, "hypervolume_pruned") == [(1, 0.0), (2, 0.0), (3, 0.0)]
    assert [value for _, value in history(client, parent, "front_size_dense")] == [0, 1, 1]
    dense = history(client, parent, "hypervolume_dense")
    assert dense[0][1] == 0 and dense[1][1] == dense[2][1] > 0
    # every value is the hypervolume of the trials finished by its step, against the planned reference
    expected = compute_fronts([records["t1"], records["t2"]], reference_size=settings(tmp_path).reference_size)
    assert dense[1][1] == expected["families"]["dense"]["hypervolume"]
    assert live.hypervolumes() == {"dense": dense[2][1], "pruned": None, "frozen": history(client, parent, "hypervolume_frozen")[-1][1]}


def test_front_files_are_refreshed_at_most_once_per_interval_and_a_held_back_refresh_comes_later(tmp_path, store):
    uri, parent = store
    client, clock = MlflowClient(uri), Clock()
    live = LiveFronts(client, parent, settings(tmp_path, refresh_s=60), BASE, clock=clock)
    plot = tmp_path / "results" / "pareto_fronts.png"
    records = {tid: record_of(result(tid), {"point": POINTS[tid][0]}, BASE) for tid in POINTS}

    def artifacts():
        return sorted(artifact.path for artifact in client.list_artifacts(parent))

    live.add("t1", records["t1"])  # the first finished trial refreshes
    assert artifacts() == ["pareto_front_frozen.csv", "pareto_fronts.json", "pareto_fronts.png", "pareto_fronts.txt"]
    written = plot.stat().st_mtime_ns
    clock.now += 59
    live.add("t2", records["t2"])  # within the interval: held back
    assert "pareto_front_dense.csv" not in artifacts() and plot.stat().st_mtime_ns == written
    assert not live.refresh_if_due()
    clock.now += 1
    assert live.refresh_if_due()  # the interval has passed: the held-back refresh (Tune calls on_step often)
    assert "pareto_front_dense.csv" in artifacts() and "dense source: 1 configurations (1 trials)" in (plot.parent / "pareto_fronts.txt").read_text()
    clock.now += 600
    assert not live.refresh_if_due()  # nothing finished since
    every = LiveFronts(client, parent, settings(tmp_path, refresh_s=0), BASE, clock=Clock())
    every.restore()
    assert every.step == 2
    text = plot.parent / "pareto_fronts.txt"
    assert every.add("t3", records["t3"]) and "pareto_front_pruned.csv" in artifacts()  # 0: after every trial
    assert every.add("t4", records["t4"]) and "frozen source: 1 configurations (1 trials)" in text.read_text()  # at the same instant


def test_a_resumed_driver_continues_the_history_without_a_missing_or_a_repeated_step(tmp_path, store):
    uri, parent = store
    client, clock = MlflowClient(uri), Clock()
    first = callback(tmp_path, uri, parent, clock=clock)
    for trial_id in ("t1", "t2"):
        first.on_trial_start(0, [], trial(trial_id))
        first.on_trial_complete(0, [], trial(trial_id))
    stopped = trial("t4", epoch=1)  # a trial a scheduler stopped: a step, in no front
    first.on_trial_start(0, [], stopped)
    first.on_trial_result(0, [], stopped, stopped.last_result)
    first.on_trial_complete(0, [], stopped)
    first.on_trial_start(0, [], trial("t3"))
    failed = trial("t5")
    first.on_trial_start(0, [], failed)
    first.logger.finish_child(first.logger._children["t5"], None, error="boom")  # failed: retried later, not counted
    # the driver is killed right after t3's child run is completed, before its step is logged
    first.logger.finish_child(first.logger._children["t3"], result("t3"))
    assert [step for step, _ in history(client, parent, "hypervolume_dense")] == [1, 2, 3]

    resumed = callback(tmp_path, uri, parent)  # setup() rebuilds and logs the missing step 4
    assert resumed._live.step == 4 and resumed._live.counted == {"t1", "t2", "t3", "t4"}
    records, stopped_records = resumed._live.records()
    assert [r["trial_id"] for r in records] == ["t1", "t2", "t3"] and stopped_records[0]["stopped_at_epoch"] == 1
    assert stopped_records[0]["val_accuracy"] == 0.8
    # rebuilt from the child runs, a record is the one the finishing driver built from the trial's result
    assert {k: v for k, v in records[0].items() if k != "mlflow_run_id"} == \
        record_of(result("t1"), {"point": POINTS["t1"][0]}, BASE)
    for trial_id in ("t3", "t1"):  # the resumed Ray runs t3 (and, say, t1) to its end again: no new step
        resumed.on_trial_start(0, [], trial(trial_id))
        resumed.on_trial_complete(0, [], trial(trial_id))
    resumed.on_trial_start(0, [], failed)
    resumed.on_trial_complete(0, [], failed)  # the retried trial finishes: step 5
    steps = history(client, parent, "hypervolume_pruned")
    assert [step for step, _ in steps] == [1, 2, 3, 4, 5]
    assert steps[2][1] == 0 and steps[3][1] > 0  # step 3 is t4 (stopped: no front), step 4 is t3
    # the end of the sweep finds nothing to log, and the last value is the final fronts' hypervolume
    assert LiveFronts(client, parent, settings(tmp_path), BASE).restore() == 0
    final = compute_fronts([record_of(result(tid), {"point": POINTS[tid][0]}, BASE) for tid in ("t1", "t2", "t3", "t5")],
                           reference_size=settings(tmp_path).reference_size)
    for family in FAMILIES:
        assert history(client, parent, f"hypervolume_{family}")[-1] == (5, final["families"][family]["hypervolume"])


def test_the_progress_line_shows_each_familys_hypervolume():
    stream = io.StringIO()
    progress = ProgressCallback(stream, hypervolumes=lambda: {"dense": 0.8123, "pruned": None, "frozen": 0.9})
    progress.setup(total_num_samples=2)
    progress.on_trial_complete(0, [], trial("t2"))
    assert stream.getvalue().rstrip().endswith("HV dense 0.812 pruned - frozen 0.900")
    quiet = io.StringIO()
    ProgressCallback(quiet).on_trial_complete(0, [], trial("t2"))
    assert "HV" not in quiet.getvalue()


def spec_of(text):
    return sweep_spec_from_dict(parse_toml(text), "test")


def planned_bits(spec, point):
    return plan_report(point_config(spec.base_config(), point))["memory_bits"]["ticket"]


def test_the_reference_is_fixed_from_the_plan_for_grid_and_optuna():
    spec = spec_of(grid_sweep("plan", epochs=1, sparsity="[0.3, 0.7]", freeze="[0.2, 0.6]"))
    tickets = [point for point in grid_points(spec)[0] if point["family"] != "weight_trained"]
    sizes = [planned_bits(spec, point) for point in tickets]  # what `frozen-slt plan` says, point by point
    dense = [size for point, size in zip(tickets, sizes) if point["family"] == "dense"]
    assert largest_ticket_bits(spec) == max(sizes) == dense[0]  # with the dense family: its dense-source ticket
    sources = replace(spec, families=("pruned", "frozen"))
    largest = largest_ticket_bits(sources)
    assert largest == max(planned_bits(sources, p) for p in grid_points(sources)[0]) < dense[0]
    optuna = replace(spec, search="optuna", families=("frozen",), num_samples=4)
    corners = _box_corners(optuna)
    assert largest_ticket_bits(optuna) == max(planned_bits(optuna, p) for p in corners if p["family"] == "frozen")
    low = min(p["freeze_ratio"] for p in corners if p["family"] == "frozen")
    assert largest_ticket_bits(optuna) == max(planned_bits(optuna, p) for p in corners
                                              if p["family"] == "frozen" and p["freeze_ratio"] == low)
    assert largest_ticket_bits(replace(optuna, families=FAMILIES, num_samples=6)) == dense[0]


def test_the_refresh_interval_is_a_tracking_setting_outside_the_sweeps_identity():
    text = grid_sweep("refresh", epochs=1)
    assert spec_of(text).refresh_s == 60
    assert spec_of(text + "[tracking]\nrefresh_s = 0\n").refresh_s == 0
    assert spec_of(text + "[tracking]\nrefresh_s = 5\n").run_name == spec_of(text).run_name
    with pytest.raises(SweepConfigError, match=r"^\[tracking\] refresh_s must be a finite number >= 0, got -1$"):
        spec_of(text + "[tracking]\nrefresh_s = -1\n")


def test_a_configuration_enters_the_live_front_only_once_all_its_seeds_finished(tmp_path, store):
    uri, parent = store
    client = MlflowClient(uri)
    two_seeds = replace(settings(tmp_path), seeds=(0, 1))
    assert LiveSettings.from_dict(two_seeds.to_dict()) == two_seeds
    live = LiveFronts(client, parent, two_seeds, BASE, clock=Clock())
    point = POINTS["t2"][0]
    first = record_of(result("t2"), {"point": {**point, "seed": 0}}, BASE)  # a config without "seeds", as rebuilt from MLflow
    second = record_of({**result("t2"), "trial_id": "t2b", "best_val_accuracy": 0.5}, {"point": {**point, "seed": 1}}, BASE)
    assert live.add("t2", first)
    assert live.fronts["families"]["dense"]["front"] == [] and len(live.fronts["families"]["dense"]["incomplete"]) == 1
    assert live.add("t2b", second)
    (row,) = live.fronts["families"]["dense"]["front"]
    assert row["seed_count"] == 2 and row["val_accuracy"] == (0.7 + 0.5) / 2
    assert history(client, parent, "front_size_dense") == [(1, 0), (2, 1)]
