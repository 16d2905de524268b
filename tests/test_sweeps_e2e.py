"""End-to-end sweeps through Ray Tune, Optuna and MLflow on the embedded digits data (CPU, offline).

Each test runs `python sweeps/pareto.py` as a real process with its own sqlite MLflow store and Ray
results directory, and reads the outcome back through MLflow's client and Ray's files. A cluster of
several nodes is tested through `ray up` in tests/test_cluster_onprem.py.

Ray runs with its token authentication on, as users run it (see tests/sweep_runs.py).
"""

import contextlib
import csv
import json
import signal
import subprocess
import time
import urllib.error
from collections import Counter
from pathlib import Path

import mlflow
import optuna
import pytest
from dashboard import optuna_dashboard, studies, studies_once
from hostile import frozen_slt
from ray_processes import (
    MARK,
    gcs_answers,
    http_status_without_token,
    is_loopback,
    listening_sockets,
    marked_processes,
    wait_for,
    wait_until_gone,
)
from sweep_runs import (
    assert_no_duplicate_epochs,
    mlflow_runs,
    run_sweep,
    sweep_command,
    write_sweep,
)

from frozen_slt.ticket import read_ticket

pytestmark = pytest.mark.slow


def watch_listening_sockets(command, cwd, env):
    """Run ``command`` to its end, collecting the TCP sockets its process tree listens on and, as soon as
    they listen, what the GCS answers a client without the token, one with a wrong one and one with the
    token, and what the runtime-env agent answers an HTTP request without a token."""
    with open(cwd / "out.txt", "w") as out, open(cwd / "err.txt", "w") as err:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=err)
        sockets, answers = {}, {}
        while process.poll() is None:
            sockets.update(listening_sockets(process.pid))
            for (_, port), (line, ip, _) in list(sockets.items()):
                if "gcs_server" in line and "the token" not in answers:
                    address = f"127.0.0.1:{port}"
                    answers["no token"] = gcs_answers(address, {**env, "RAY_AUTH_MODE": "disabled", "RAY_AUTH_TOKEN": ""})
                    answers["wrong token"] = gcs_answers(address, {**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0" * 64})
                    answers["the token"] = gcs_answers(address, {**env, "RAY_AUTH_MODE": "token"})
                if "RuntimeEnvAgent" in line and "agent" not in answers:
                    answers["agent"] = http_status_without_token(ip, port)
            time.sleep(0.5)
    result = subprocess.CompletedProcess(command, process.returncode, (cwd / "out.txt").read_text(), (cwd / "err.txt").read_text())
    return result, process.pid, sockets, answers


def test_smoke_sweep_records_parent_children_metrics_and_artifacts(tmp_path, marked_env):
    result, driver, sockets, answers = watch_listening_sockets(sweep_command(tmp_path, "--smoke"), tmp_path, marked_env)
    assert result.returncode == 0, result.stderr[-3000:]
    # Ray 2.60 binds its GCS, raylet and workers to every interface (and the runtime-env agent to the node's
    # address) whatever node address it is given; what guards them is token authentication, which ray.init
    # turns on for a local Ray (RAY_AUTH_MODE unset) and hands to every process it starts
    commands = {line.split()[0].rsplit("/", 1)[-1] for line, _, _ in sockets.values()}
    assert {"gcs_server", "raylet"} <= commands
    exposed = {key: value for key, value in sockets.items() if not is_loopback(value[1])}
    # the GCS and the runtime-env agent are probed below; setproctitle hides the agent's environment
    unchecked = {key: value for key, value in exposed.items()
                 if key[0] != driver and value[2] != "token" and not any(name in value[0] for name in ("gcs_server", "RuntimeEnvAgent"))}
    assert unchecked == {}
    # no dashboard head listens (the raylet's own command line names the dashboard agent it starts)
    assert not any("ray/dashboard/dashboard.py" in line for line, _, _ in sockets.values())
    assert answers["the token"] == "ANSWERED"  # the probe can tell an open GCS from a closed one
    assert answers["no token"].startswith("REFUSED") and answers["wrong token"].startswith("REFUSED"), answers
    assert answers["agent"] == 401
    assert "dense source" in result.stdout and "frozen source" in result.stdout
    # Ray's own chatter stays out of the sweep's output: no configuration box, no TensorBoard hint, no INFO lines
    assert not any(word in result.stdout + result.stderr for word in ("Configuration for experiment", "tensorboard", "INFO worker.py"))
    assert "to opt out" not in result.stdout + result.stderr  # Ray's invitation to switch its token authentication off
    client, parents, children = mlflow_runs(tmp_path)
    assert len(parents) == 1 and len(children) == 2
    parent = parents[0]
    assert all(child.data.tags["mlflow.parentRunId"] == parent.info.run_id for child in children)
    assert {child.data.tags["family"] for child in children} == {"dense", "frozen"}
    assert parent.data.tags["git_revision"] and parent.data.tags["version.torch"] != "not installed"
    assert parent.data.params["search"] == "grid"
    experiment = parent.info.experiment_id  # the summary leads to the runs page and the parent's front plot
    assert f"mlflow ui --backend-store-uri sqlite:///{tmp_path / 'mlflow.db'} --host 127.0.0.1" in result.stdout
    assert f"http://127.0.0.1:5000/#/experiments/{experiment}/runs?workflowType=machine_learning" in result.stdout
    assert f"/#/experiments/{experiment}/runs/{parent.info.run_id}/artifacts/pareto_fronts.png?" in result.stdout
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.params["config.ticket.sparsity"] == "0.5"
        metrics = child.data.metrics
        assert 0 <= metrics["final_val_accuracy"] <= 1 and metrics["ticket_bits"] > 0
        assert [m.step for m in client.get_metric_history(child.info.run_id, "val_accuracy")] == [0, 1]
    assert parent.data.metrics["hypervolume_frozen"] > 0 and parent.data.metrics["hypervolume_dense"] > 0
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"pareto_fronts.png", "pareto_fronts.json", "pareto_front_dense.csv", "pareto_front_frozen.csv"} <= artifacts
    fronts = json.loads(Path(client.download_artifacts(parent.info.run_id, "pareto_fronts.json", str(tmp_path))).read_text())
    assert fronts["reference"]["accuracy"] == 0.0 and set(fronts["families"]) == {"dense", "frozen"}
    frozen = fronts["families"]["frozen"]["front"][0]
    dense = fronts["families"]["dense"]["front"][0]
    assert frozen["size_bits"] < dense["size_bits"]  # half frozen: about half the mask bits
    # every finished ticket trial hands back its ticket file: in its child run and named by the front tables
    by_run = {child.info.run_id: child for child in children}
    for point in (frozen, dense):
        child = by_run[point["mlflow_run_id"]]
        assert [a.path for a in client.list_artifacts(child.info.run_id, "ticket")] == [f"ticket/{point['trial_id']}.slt"]
        ticket = read_ticket(point["ticket_file"])
        assert ticket.config_hash == child.data.tags["config_hash"] == point["config_hash"]
        assert ticket.val_accuracy == point["val_accuracy"] and ticket.mask.numel() + 64 * (1 + (point is frozen)) == point["size_bits"]
        assert point["ticket_artifact"] == f"runs:/{child.info.run_id}/ticket/{point['trial_id']}.slt"
        downloaded = mlflow.artifacts.download_artifacts(point["ticket_artifact"], dst_path=str(tmp_path / "dl"),
                                                         tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
        assert Path(downloaded).read_bytes() == Path(point["ticket_file"]).read_bytes()
    with open(Path(client.download_artifacts(parent.info.run_id, "pareto_front_frozen.csv", str(tmp_path)))) as handle:
        assert next(csv.DictReader(handle))["ticket_file"] == frozen["ticket_file"]
    assert Path(frozen["ticket_file"]).name in result.stdout
    # [storage] keep = "lean" (the default): a finished trial's checkpoint in the storage holds its ticket and final
    # result, no training state, and the ticket in it is the one handed back, which eval and export read
    for point in (frozen, dense):
        (checkpoint,) = (tmp_path / "ray").glob(f"digits-*/train_trial_{point['trial_id']}_*/checkpoint_*")
        held = {path.name: path for path in checkpoint.iterdir()}
        assert sorted(held) == ["result.json", "ticket.slt"]
        assert json.loads(held["result.json"].read_text())["full_budget"] is True
        assert held["ticket.slt"].read_bytes() == Path(point["ticket_file"]).read_bytes()
        assert held["result.json"].stat().st_size < 16_000 and held["ticket.slt"].stat().st_size < 200_000
    ticket = checkpoint / "ticket.slt"
    evaluated = frozen_slt("eval", str(ticket), "--device", "cpu", cwd=tmp_path)
    assert evaluated.returncode == 0 and f"val {100 * dense['val_accuracy']:.2f}%" in evaluated.stdout, evaluated.stderr
    exported = frozen_slt("export", str(ticket), "--dense-module", str(tmp_path / "dense.pt"), cwd=tmp_path)
    assert exported.returncode == 0 and (tmp_path / "dense.pt").stat().st_size > 0, exported.stderr


def ray_snapshot(tmp_path):
    """Trial ids in Ray's last experiment snapshot: all of them, and those TERMINATED."""
    trials = {}
    for path in (tmp_path / "ray").glob("*/experiment_state-*.json"):
        try:
            states = [json.loads(state) for state, _ in json.loads(path.read_text())["trial_data"]]
        except (OSError, ValueError):  # being replaced just now: the next poll reads it
            continue
        trials.update({state["trial_id"]: state["status"] for state in states})
    return set(trials), {trial for trial, status in trials.items() if status == "TERMINATED"}


def kill_after_two_trials(tmp_path, marked_env, *args):
    """Start a sweep, SIGKILL its driver once two trials finished and Ray's last experiment snapshot holds
    every trial MLflow has seen; check that its GCS and raylet died with it; the Ray trial ids MLflow had
    seen finish by then. (Ray snapshots every 10 s or more by default: a trial started or finished after
    its last snapshot is unknown to a resumed Ray, a gap of Ray's that this test does not cover, so this
    driver snapshots at every step of Ray's loop.)"""
    process = subprocess.Popen(sweep_command(tmp_path, *args), cwd=tmp_path, env={**marked_env, "TUNE_GLOBAL_CHECKPOINT_S": "0"},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline:
        # the state file appears once the driver has created the MLflow tables: only then read them
        if list((tmp_path / "ray").glob("*.sweep.json")):
            children = mlflow_runs(tmp_path)[2]
            finished = {c.data.tags.get("ray_trial_id") for c in children if c.info.status == "FINISHED"}
            known, terminated = ray_snapshot(tmp_path)
            if len(finished) >= 2 and finished <= terminated and {c.data.tags.get("ray_trial_id") for c in children} <= known:
                break
        time.sleep(0.2)
    ours = (tmp_path, Path(marked_env["RAY_TMPDIR"]))
    names = {p.name() for p in marked_processes(marked_env[MARK], ours)}
    assert {"gcs_server", "raylet"} <= names and any("RuntimeEnvAgent" in name for name in names)  # the marks reach Ray
    process.send_signal(signal.SIGKILL)
    process.wait()
    # the killed driver's GCS and raylet die with it; its agents would linger a minute: the resume ends them
    assert wait_for(lambda: not {"gcs_server", "raylet"} & {p.name() for p in marked_processes(marked_env[MARK], ours)},
                    timeout=30)
    return {c.data.tags["ray_trial_id"] for c in mlflow_runs(tmp_path)[2] if c.info.status == "FINISHED"}


def test_killed_sweep_resumes_with_its_scheduler_and_completes_every_trial_exactly_once(tmp_path, marked_env):
    # 5 trials in this order: baseline, pruned and frozen at k = 0.5, then at k = 0.95 (f = 0.3 for both). MO-ASHA
    # has one rung, at epoch 1. At k = 0.95 a conv4 stays at chance on digits (k = 0.5 is far above it after one
    # epoch), so the pruned k = 0.95 trial, which has the same size as the k = 0.5 one, is dominated at the rung.
    config = write_sweep(tmp_path, epochs=3, families='["pruned", "frozen"]', sparsity="[0.5, 0.95]", freeze="[0.3]",
                         scheduler="mo-asha")
    finished_before = kill_after_two_trials(tmp_path, marked_env, "--config", str(config), "--max-concurrent", "1")
    assert 2 <= len(finished_before) < 5  # the baseline and the pruned k = 0.5 trial at least
    ours = (tmp_path, Path(marked_env["RAY_TMPDIR"]))
    trial_dirs = lambda: {p.name.split("_")[3]: p for p in (tmp_path / "ray").glob("small-*/train_trial_*")}  # noqa: E731
    lines_before = {key: len((path / "result.json").read_text().splitlines()) for key, path in trial_dirs().items()
                    if (path / "result.json").exists()}
    (state,) = (tmp_path / "ray").glob("small-*.sweep.json")
    trial_state = state.with_name(state.name.replace(".sweep.json", ".trial-state"))
    assert trial_state.is_dir()  # the unfinished trials continue from their own state
    (trial_state / "00000_00009").mkdir(parents=True, exist_ok=True)  # the state of a trial Ray does not know
    (trial_state / "00000_00009" / "state.pt").write_bytes(b"\0" * 4096)

    resumed = run_sweep(tmp_path, "--config", str(config), "--resume", env=marked_env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Error handling checkpoint" not in resumed.stderr and "Traceback" not in resumed.stderr, resumed.stderr[-3000:]
    assert "processes left by the killed driver of this sweep" in resumed.stderr
    assert wait_until_gone(marked_env[MARK], ours) == []  # no stray Ray process of either run
    assert not trial_state.exists() and not list((tmp_path / "tmp").glob("frozen-slt-checkpoint-*"))
    client, parents, children = mlflow_runs(tmp_path)
    assert len(parents) == 1 and len(children) == 5 and parents[0].info.status == "FINISHED"
    assert max(Counter(c.data.tags["ray_trial_id"] for c in children).values()) == 1
    assert all(c.info.status == "FINISHED" for c in children)
    assert_no_duplicate_epochs(client, children)
    # every run holds its params, one the kill caught between creating it and logging them too
    assert all({"point.family", "config.model", "config.ticket.sparsity"} <= set(c.data.params) for c in children)
    # the scheduler's log survived the kill: every ticket trial was recorded at the rung exactly once, and the
    # pruned k = 0.95 trial, which reached the rung after the kill, was ranked against the k = 0.5 one recorded before
    (log,) = (tmp_path / "ray").glob("small-*.scheduler.json")
    decisions = json.loads(log.read_text())["decisions"]
    assert sorted(Counter((d["trial_id"], d["rung"]) for d in decisions).values()) == [1, 1, 1, 1]
    by_point = {(c.data.tags["family"], c.data.params["point.sparsity"]): c for c in children if c.data.tags["family"] != "weight_trained"}
    weak = by_point[("pruned", "0.95")]
    assert weak.data.tags["stopped_at_epoch"] == "1" and "final_val_accuracy" not in weak.data.metrics
    assert weak.data.tags["stop_reason"].startswith("rung at epoch 1: not among the best 1 of 2 trials of its family")
    stopped = {c.data.tags["ray_trial_id"]: int(c.data.tags["stopped_at_epoch"]) for c in children if "stopped_at_epoch" in c.data.tags}
    assert stopped == {d["trial_id"]: d["epoch"] for d in decisions if not d["go_on"]}
    assert "stopped_at_epoch" not in by_point[("pruned", "0.5")].data.tags
    dirs = trial_dirs()
    assert len(dirs) == 5
    for child in children:
        trial = child.data.tags["ray_trial_id"]
        epochs = [json.loads(line)["epoch"] for line in (dirs[trial.split("_")[1]] / "result.json").read_text().splitlines()]
        assert epochs[-1] == stopped.get(trial, 3)  # a stopped trial never trained past its rung
        if trial in finished_before:  # finished trials were not run again
            assert len(epochs) == lines_before[trial.split("_")[1]]
    assert f"mo-asha stopped {len(stopped)} of 5 trials early" in resumed.stdout
    fronts = json.loads(next((tmp_path / "ray").glob("small-*.results/pareto_fronts.json")).read_text())
    assert fronts["families"]["pruned"]["trials"] == 1  # the stopped trial is not on any front
    assert fronts["early_stopping"]["epochs_saved"] == 2 * len(stopped)
    for family in ("pruned", "frozen"):  # a step per finished trial, stopped ones too, across the kill
        history = sorted(client.get_metric_history(parents[0].info.run_id, f"hypervolume_{family}"), key=lambda m: m.step)
        assert [m.step for m in history] == [1, 2, 3, 4, 5]
        assert history[-1].value == fronts["families"][family]["hypervolume"]


def test_trials_that_keep_failing_are_reported(tmp_path):
    config = write_sweep(tmp_path, name="fragile", baseline="false", max_failures=0)  # --smoke: dense and frozen
    failing = run_sweep(tmp_path, "--config", str(config), "--smoke", "--inject-fault", "1")
    assert failing.returncode == 1
    assert failing.stdout.count("FAILED ") == 2 and "fault drill" in failing.stdout
    _, parents, children = mlflow_runs(tmp_path)
    assert len(children) == 2 and all(c.info.status == "FAILED" and "fault drill" in c.data.tags["error"] for c in children)
    assert parents[0].info.status == "FAILED"  # a trial gave up


def test_killed_size_aware_search_resumes_and_its_study_holds_only_full_budget_values(tmp_path, marked_env):
    # The weight-trained baseline, then four pruned trials of one point (Optuna ranges of width 0): the same size
    # and, trained alike, the same accuracy at MO-ASHA's rung (epoch 1), where a tie goes to the earlier trial, so
    # the first goes on and the other three stop there, two or three of them after the kill (ranked against the
    # first, recorded before it). Each config fails once at epoch 2 and continues from its epoch-1 checkpoint.
    config = write_sweep(tmp_path, name="searched", search="optuna", epochs=3, samples=4, families='["pruned"]',
                         scheduler="mo-asha", optuna_sparsity="[0.5, 0.5]", optuna_freeze="[0.3, 0.3]")
    args = ("--config", str(config), "--max-concurrent", "1", "--inject-fault", "2")
    finished_before = kill_after_two_trials(tmp_path, marked_env, *args)
    assert 2 <= len(finished_before) < 5
    (database,) = (tmp_path / "ray").glob("searched-*.optuna.db")
    # optuna-dashboard, opened on the interrupted sweep's study, watches the resumed sweep fill it
    with optuna_dashboard(f"sqlite:///{database}") as get:
        ((name, before),) = studies(get).items()
        assert before["objective_names"] == ["val_accuracy"] and before["directions"] == ["maximize"]
        with open(tmp_path / "out.txt", "w") as out, open(tmp_path / "err.txt", "w") as err:
            command = [part for part in sweep_command(tmp_path, *args) if part != "--quiet"]  # its start lines too
            driver = subprocess.Popen(command, cwd=tmp_path, env=marked_env, stdout=out, stderr=err)
            watched = []
            while driver.poll() is None:
                with contextlib.suppress(urllib.error.HTTPError):  # the sweep writing the study just then
                    watched.append(len(studies(get)[name]["trials"]))
                time.sleep(0.5)
        told = len(optuna.load_study(study_name=name, storage=f"sqlite:///{database}").trials)
        shown = studies_once(get, lambda shown: len(shown[name]["trials"]) == told)[name]
    resumed = subprocess.CompletedProcess(driver.args, driver.returncode, (tmp_path / "out.txt").read_text(),
                                          (tmp_path / "err.txt").read_text())
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # the command that opens its studies live, at its start and in its summary
    assert resumed.stdout.count(f"optuna-dashboard sqlite:///{database} --host 127.0.0.1 --port 8080") == 2
    assert watched and watched == sorted(watched) and len(before["trials"]) <= watched[0]  # listed while it ran
    assert wait_until_gone(marked_env[MARK], (tmp_path, Path(marked_env["RAY_TMPDIR"]))) == []
    client, parents, children = mlflow_runs(tmp_path)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == 5 and all(c.info.status == "FINISHED" for c in children)
    assert max(Counter(c.data.tags["ray_trial_id"] for c in children).values()) == 1
    assert_no_duplicate_epochs(client, children)  # each retry resumed after epoch 1 instead of starting over
    stopped = [c for c in children if "stopped_at_epoch" in c.data.tags]
    (full,) = [c for c in children if c.data.tags["family"] == "pruned" and c not in stopped]
    assert len(stopped) == 3 and {c.data.tags["stopped_at_epoch"] for c in stopped} == {"1"}
    assert full.data.params["ticket.k"] == "0.5" and full.data.params["ticket.f"] == "0.3" and "box.u_sparsity" in full.data.params
    assert full.data.params["study"] == "pruned-size0" and parents[0].data.params["family_budgets.pruned"] == "4"
    (summary,) = optuna.get_all_study_summaries(f"sqlite:///{database}")  # one study: the pruned family's one size
    assert summary.study_name.endswith(".pruned-size0")
    study = optuna.load_study(study_name=summary.study_name, storage=f"sqlite:///{database}")
    states = Counter(t.state.name for t in study.trials if t.state.name != "FAIL")  # FAIL: asked just before the kill
    assert states == {"COMPLETE": 1, "PRUNED": 3}  # nothing counted twice, nothing left running
    (complete,) = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert complete.values == [full.data.metrics["final_val_accuracy"]]  # the full budget's value, not a rung's
    assert [(t["number"], t["state"], t.get("values")) for t in shown["trials"]] == [
        (t.number, t.state.name.capitalize(), t.values) for t in study.trials]  # the dashboard shows the study's trials
    (log,) = (tmp_path / "ray").glob("searched-*.scheduler.json")
    decisions = json.loads(log.read_text())["decisions"]
    assert [d["go_on"] for d in decisions] == [True, False, False, False]
    assert len({d["trial_id"] for d in decisions}) == 4
    failed_once = {path.stem for path in (tmp_path / "ray").glob("*.faults/*.failed")}
    assert failed_once == {c.data.tags["config_hash"] for c in children}  # the baseline's and the pruned point's
    assert "mo-asha stopped 3 of 5 trials early" in resumed.stdout


SEEDED_SWEEP = """
name = "seeded"
families = ["dense", "frozen"]
weight_trained_baseline = false
[experiment]
model = "conv2"
dataset = "digits"
epochs = 1
batch_size = 256
[grid]
sparsity = [0.5]
freeze_ratio = [0.5]
seeds = [0, 1]
"""


def test_a_grid_with_two_seeds_draws_its_fronts_on_the_means_of_its_configurations(tmp_path):
    import statistics

    config = tmp_path / "seeded.toml"
    config.write_text(SEEDED_SWEEP)
    result = run_sweep(tmp_path, "--config", str(config))
    assert result.returncode == 0, result.stderr[-3000:]
    client, parents, children = mlflow_runs(tmp_path)
    assert len(children) == 4
    fronts = json.loads(next((tmp_path / "ray").glob("seeded-*.results/pareto_fronts.json")).read_text())
    for family in ("dense", "frozen"):
        runs = sorted((c for c in children if c.data.tags["family"] == family), key=lambda c: int(c.data.params["point.seed"]))
        values = [c.data.metrics["final_val_accuracy"] for c in runs]
        (row,) = fronts["families"][family]["front"]
        assert row["seeds"] == [0, 1] and row["seed_count"] == row["seeds_expected"] == 2 and row["complete"]
        assert row["val_accuracy"] == pytest.approx(statistics.fmean(values), abs=1e-12)
        assert row["val_accuracy_std"] == pytest.approx(statistics.stdev(values), abs=1e-12)
        assert (row["val_accuracy_min"], row["val_accuracy_max"]) == (min(values), max(values))
        tests = [c.data.metrics["final_test_accuracy"] for c in runs]
        assert row["test_accuracy"] == pytest.approx(statistics.fmean(tests), abs=1e-12)
        # the row's ticket is the seed closest to the mean (the lower seed on a tie), its file and its run
        closest = min(range(2), key=lambda s: (round(abs(values[s] - row["val_accuracy"]), 12), s))
        assert row["ticket_seed"] == closest and row["mlflow_run_id"] == runs[closest].info.run_id
        assert read_ticket(row["ticket_file"]).val_accuracy == values[closest] == row["ticket_val_accuracy"]
        assert parents[0].data.metrics[f"hypervolume_{family}"] == pytest.approx(fronts["families"][family]["hypervolume"])
        assert parents[0].data.metrics[f"configurations_{family}"] == 1
        (line,) = [line for line in result.stdout.splitlines() if line.strip().startswith(f"{row['size_bits']:,}")]
        assert f"{100 * row['val_accuracy']:.2f} ± {100 * row['val_accuracy_std']:.2f}" in line and " 2/2 " in line
    assert "dense source: 1 configurations (2 trials)" in result.stdout
    with open(next((tmp_path / "ray").glob("seeded-*.results/pareto_front_frozen.csv"))) as handle:
        assert next(csv.DictReader(handle))["seeds"] == "0 1"


def test_an_optuna_search_with_repeats_tells_its_study_the_mean_of_the_seeds(tmp_path):
    import statistics

    config = write_sweep(tmp_path, name="repeated", search="optuna", baseline="false", epochs=1, samples=1,
                         families='["dense"]')
    config.write_text(config.read_text().replace("[optuna]\n", "[optuna]\nrepeats = 2\n"))
    result = run_sweep(tmp_path, "--config", str(config))
    assert result.returncode == 0, result.stderr[-3000:]
    _, _, children = mlflow_runs(tmp_path)
    runs = sorted(children, key=lambda c: int(c.data.params["point.seed"]))
    assert [c.data.params["point.seed"] for c in runs] == ["0", "1"]  # one configuration, trial_seed and trial_seed + 1
    assert runs[0].data.params["point.sparsity"] == runs[1].data.params["point.sparsity"]
    values = [c.data.metrics["final_val_accuracy"] for c in runs]
    (database,) = (tmp_path / "ray").glob("repeated-*.optuna.db")
    (summary,) = optuna.get_all_study_summaries(f"sqlite:///{database}")
    (trial,) = optuna.load_study(study_name=summary.study_name, storage=f"sqlite:///{database}").trials
    assert trial.state.name == "COMPLETE" and trial.values == [pytest.approx(statistics.fmean(values), abs=1e-12)]
    fronts = json.loads(next((tmp_path / "ray").glob("repeated-*.results/pareto_fronts.json")).read_text())
    (row,) = fronts["families"]["dense"]["front"]
    assert row["seeds"] == [0, 1] and row["val_accuracy"] == pytest.approx(trial.values[0], abs=1e-12)
