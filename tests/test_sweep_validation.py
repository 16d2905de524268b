"""A sweep is validated whole before Ray starts: bad input exits 2 with one line, starts no Ray and opens
no MLflow run; a parent run that is open never stays RUNNING when the sweep stops early."""

import json
from dataclasses import replace

import psutil
import pytest
import ray
from mlflow.entities import Param
from mlflow.tracking import MlflowClient
from sweep_runs import grid_sweep

from sweeps.outcome import SweepOutcome
from sweeps.pareto import main
from sweeps.space import plan_sweep
from sweeps.spec import CONFIG_DIR, load_sweep_spec, smoke_spec
from sweeps.tracking import PARENT_TAG, TRIAL_TAG, SweepTracker, TrialLogger

GOOD = grid_sweep("check", epochs=1)


def run_main(tmp_path, text, *args):
    path = tmp_path / "sweep.toml"
    path.write_text(text)
    return main(["--config", str(path), "--storage", str(tmp_path / "ray"), "--quiet",
                 "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", *args])


@pytest.mark.parametrize("text, args, needle", [
    (GOOD.replace('freeze_ratio = [0.3, 0.6]', 'freeze_ratio = [0.3]\nlock_share = "propotional"'), [],
     "[grid] lock_share must be a number in [0, 1] or \"proportional\", got 'propotional'"),
    (GOOD.replace('dataset = "digits"', 'dataset = "digits"\nlock_share = "propotional"'), [],
     "lock_share must be a number in [0, 1] or 'proportional', got 'propotional'"),
    (GOOD.replace("sparsity = [0.5]", "sparsity = 0.5"), [],
     "[grid] sparsity must be a non-empty list of distinct numbers in [0, 1], got 0.5"),
    (GOOD + "[optuna]\nnum_samples = 2.5\n", ["--search", "optuna"], "[optuna] num_samples must be an integer >= 1, got 2.5"),
    (GOOD, ["--search", "optuna", "--num-samples", "0"], "[optuna] num_samples must be an integer >= 1, got 0"),
    (GOOD.replace("[grid]", "[grid]\nseeds = [0, -1]"), [], "[grid] seeds must be a non-empty list of distinct integers >= 0"),
    (GOOD.replace("freeze_ratio = [0.3, 0.6]", "freeze_ratio = [0.3, 0.8]\nlock_share = 0.9"), [],
     "[grid] lock_share = 0.9 is infeasible for the frozen family at 1 (sparsity, freeze_ratio) pairs: "
     "(k=0.5, f=0.8) allows [0.375, 0.625]"),
    (GOOD.replace('["dense", "pruned", "frozen"]', '["pruned"]').replace("[0.3, 0.6]", "[0.6, 0.7]"), [],
     "the grid has no pruned point"),
    (GOOD.replace("[0.3, 0.6]", "[0.0, 0.6]"), [], "[grid] freeze_ratio 0 gives no pruned or frozen source"),
    (GOOD, ["--scheduler", "mo-asha"], "[scheduler] grace_epochs = 1 leaves no MO-ASHA rung below the 1 training epochs"),
    (GOOD, ["--num-samples", "8"], "--num-samples applies to an Optuna search, but sweep 'check' searches a grid"),
    (GOOD, ["--strategy", "tpe"], "--strategy applies to an Optuna search, but sweep 'check' searches a grid"),
    (GOOD + '[optuna]\nstrategy = "cmaes"\n', [], "unknown [optuna] strategy 'cmaes'; valid: gp, nsga2, random, size-aware, tpe"),
    (GOOD + '[optuna]\nsampler = "nsga2"\n', [], "unknown keys ['sampler'] in [optuna]"),
    (GOOD + "[optuna]\nfamily_shares = { dense = 1, frozen = 2 }\n", [],
     "[optuna] family_shares names ['dense', 'frozen'], but the sweep maps families ['dense', 'pruned', 'frozen']"),
    (GOOD + "[optuna]\nfamily_shares = { dense = 1, pruned = 0, frozen = 2 }\n", [],
     "[optuna] family_shares must be a table of numbers > 0 keyed by family"),
    (GOOD + "[optuna]\nfamily_shares = { dense = 1, pruned = 1, sparse = 2 }\n", [],
     "[optuna] family_shares must be a table of numbers > 0 keyed by family (dense, pruned, frozen), got"),
    (GOOD + '[optuna]\nfamily_shares = "even"\n', [], "[optuna] family_shares must be a table of numbers > 0"),
    (GOOD + "[optuna]\nfamily_shares = { dense = 1, pruned = true, frozen = 2 }\n", [],
     "[optuna] family_shares must be a table of numbers > 0"),
    (GOOD, ["--search", "optuna", "--num-samples", "2"], "num_samples = 2 cannot give each of the 3 families"),
    (GOOD + "[optuna]\nsparsity = [0.1, 0.3]\nfreeze_ratio = [0.5, 0.9]\n", ["--search", "optuna"],
     "a pruned source needs freeze_ratio <= sparsity"),
    (GOOD, ["--max-failures", "-1"], "[resources] max_failures must be an integer >= 0, got -1"),
    (GOOD, ["--smoke", "--search", "optuna", "--strategy", "tpe"],
     "--smoke trains a fixed grid of two one-epoch points (dense and frozen), so --search optuna, --strategy would be ignored"),
    (GOOD + "[tracking]\nrefresh_s = -1\n", [], "[tracking] refresh_s must be a finite number >= 0, got -1"),
    (GOOD + '[storage]\nkeep = "final"\n', [], "unknown [storage] keep 'final'; valid: all, lean"),
    (GOOD + '[storage]\nkeep_all = true\n', [], "unknown keys ['keep_all'] in [storage]"),
])
def test_bad_sweeps_exit_2_before_ray_or_mlflow_start(tmp_path, capsys, text, args, needle):
    children_before = {child.pid for child in psutil.Process().children(recursive=True)}
    assert run_main(tmp_path, text, *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("sweep: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert needle in err
    assert not ray.is_initialized()
    assert {child.pid for child in psutil.Process().children(recursive=True)} <= children_before  # no Ray processes
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "ray").exists()  # no MLflow run, no sweep state


def test_numeric_lock_share_names_each_infeasible_pair_and_its_range(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text(GOOD.replace("sparsity = [0.5]", "sparsity = [0.3, 0.5]").replace(
        "freeze_ratio = [0.3, 0.6]", "freeze_ratio = [0.4, 0.8]\nlock_share = 0.3"))
    with pytest.raises(Exception) as error:
        plan_sweep(load_sweep_spec(path))
    # s = 0.3 needs s >= 1 - k/f: (0.3, 0.4) needs 0.25 (fine), (0.3, 0.8) needs 0.625, (0.5, 0.8) needs 0.375
    message = str(error.value)
    assert "at 2 (sparsity, freeze_ratio) pairs: (k=0.3, f=0.8) allows [0.625, 0.875]; (k=0.5, f=0.8) allows [0.375, 0.625]" in message
    assert "docs/method.md §2" in message


def test_plan_skips_only_pruned_points_with_f_above_k_and_counts_them():
    spec = load_sweep_spec(CONFIG_DIR / "digits.toml")
    plan = plan_sweep(spec)
    assert len(plan.points) == 22 and len(plan.skipped) == 6
    assert all(note.startswith("pruned ") for note in plan.skipped)


def test_what_storage_keeps_is_a_sweep_setting_that_changes_nothing_the_sweep_computes(tmp_path):
    lean = load_sweep_spec(CONFIG_DIR / "digits.toml")
    (tmp_path / "digits.toml").write_text((CONFIG_DIR / "digits.toml").read_text().replace('keep = "lean"', 'keep = "all"'))
    whole = load_sweep_spec(tmp_path / "digits.toml")
    assert (lean.storage_keep, whole.storage_keep) == ("lean", "all")
    assert whole.run_name == lean.run_name  # the same sweep: it may be resumed keeping more or less


def test_optuna_plan_validates_without_fixing_points():
    spec = replace(load_sweep_spec(CONFIG_DIR / "digits.toml"), search="optuna")
    assert plan_sweep(spec).points == [] and plan_sweep(spec).skipped == []


def test_a_parent_run_never_stays_running(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"  # one store for both cases: creating one takes seconds
    tracker = SweepTracker(uri, "frozen-slt", tmp_path / "artifacts")
    client = MlflowClient(uri)
    for raised, status in ((RuntimeError("boom"), "FAILED"), (KeyboardInterrupt(), "KILLED")):
        parent = tracker.open_parent(f"sweep-{status}", {"search": "grid"})
        trial = TrialLogger(uri, parent).child(f"trial-{status}", "train_trial_00000", {}, {})
        done = TrialLogger(uri, parent).child(f"done-{status}", "train_trial_00001", {}, {})
        client.set_terminated(done, "FINISHED")
        assert client.get_run(parent).info.status == "RUNNING"
        with pytest.raises(type(raised)), tracker.parent_guard():
            raise raised
        assert client.get_run(parent).info.status == status
        assert client.get_run(trial).info.status == status and client.get_run(done).info.status == "FINISHED"


def test_a_resumed_trial_gets_the_params_a_killed_driver_had_not_logged(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    parent = SweepTracker(uri, "frozen-slt", tmp_path / "artifacts").open_parent("sweep", {"search": "grid"})
    client = MlflowClient(uri)
    params = {"point": {"family": "pruned", "sparsity": 0.95}, "ticket": {"k": 0.95}}
    # the driver was killed after creating the child run and before logging its params
    killed = client.create_run(client.get_run(parent).info.experiment_id, run_name="train_trial_00003",
                               tags={PARENT_TAG: parent, TRIAL_TAG: "t3"}).info.run_id
    client.log_batch(killed, params=[Param("point.family", "pruned")])  # killed part-way through the batch
    assert TrialLogger(uri, parent).child("t3", "train_trial_00003", {}, params) == killed
    assert client.get_run(killed).data.params == {"point.family": "pruned", "point.sparsity": "0.95", "ticket.k": "0.95"}
    # a run that has all its params is reused as it is
    assert TrialLogger(uri, parent).child("t3", "train_trial_00003", {}, params) == killed
    assert client.get_run(killed).data.params["point.sparsity"] == "0.95"


def test_a_stopped_sweep_is_killed_a_sweep_with_failed_trials_failed():
    assert SweepOutcome(unfinished=["a"], failed=[("b", "error")]).status == "KILLED"  # Ctrl-C: Tune returns early
    assert SweepOutcome(failed=[("b", "error")]).status == "FAILED"
    assert SweepOutcome().status == "FINISHED"


def test_a_sweep_recorded_in_one_mlflow_store_is_not_continued_in_another(tmp_path, capsys):
    path = tmp_path / "sweep.toml"
    path.write_text(GOOD)
    run_name = smoke_spec(load_sweep_spec(path)).run_name
    (tmp_path / "ray").mkdir()
    first = f"sqlite:///{tmp_path / 'first.db'}"
    (tmp_path / "ray" / f"{run_name}.sweep.json").write_text(json.dumps({"parent_run_id": "abc", "tracking_uri": first}))
    assert main(["--config", str(path), "--smoke", "--storage", str(tmp_path / "ray"),
                 "--tracking-uri", f"sqlite:///{tmp_path / 'other.db'}"]) == 2
    assert f"records into {first}, not sqlite:///{tmp_path / 'other.db'}; continue it with --tracking-uri {first}" \
        in capsys.readouterr().err
    assert not ray.is_initialized() and not (tmp_path / "other.db").exists()


def test_a_sweep_is_not_resumed_with_another_retry_budget(tmp_path, capsys, monkeypatch):
    # Ray restores the failure settings a sweep started with, so a changed --max-failures would be ignored
    from ray import tune

    path = tmp_path / "sweep.toml"
    path.write_text(GOOD)
    run_name = smoke_spec(load_sweep_spec(path)).run_name
    (tmp_path / "ray").mkdir()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (tmp_path / "ray" / f"{run_name}.sweep.json").write_text(
        json.dumps({"parent_run_id": "abc", "tracking_uri": uri, "max_failures": 2}))
    monkeypatch.setattr(tune.Tuner, "can_restore", staticmethod(lambda path, storage_filesystem=None: True))
    assert main(["--config", str(path), "--smoke", "--storage", str(tmp_path / "ray"), "--tracking-uri", uri,
                 "--max-failures", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"is not the 2 sweep {run_name} started with" in err
    assert "continue it with --max-failures 2" in err
    assert not ray.is_initialized() and not (tmp_path / "mlflow.db").exists()
