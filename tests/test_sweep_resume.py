"""A sweep whose driver is killed between two of Ray's experiment snapshots resumes cleanly: no trial restores
from a checkpoint that was deleted since, Ray deletes none twice, and a trial that had finished is not
recorded or reported a second time (issue 22, item 6), and the parent's hypervolume history goes on with no
step missing or repeated (issue 25, item 2).

Ray snapshots its experiment every TUNE_GLOBAL_CHECKPOINT_S seconds (2 in a sweep) or when it must; here
it is 1000 for the killed driver, so that the kill lands after the last snapshot, as it can in any sweep.
"""

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ray_processes import MARK, wait_until_gone
from sweep_runs import SCRIPT, mlflow_runs, write_sweep

pytestmark = pytest.mark.slow


def finished_children(database: Path) -> int:
    """Child runs FINISHED in the sweep's MLflow store, read with sqlite directly (fast enough to kill in time)."""
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=0.1) as connection:
            return connection.execute("select count(*) from runs join tags on tags.run_uuid = runs.run_uuid where "
                                      "tags.key = 'mlflow.parentRunId' and runs.status = 'FINISHED'").fetchone()[0]
    except sqlite3.Error:  # not created yet, or locked for a moment
        return 0


def test_a_driver_killed_between_ray_snapshots_resumes_without_checkpoint_errors_or_duplicates(tmp_path, marked_env):
    # Two trials side by side (one CPU each): when the first finishes, the driver is killed, the other one still
    # training, several checkpoints after Ray's last snapshot.
    config = write_sweep(tmp_path, epochs=4, families='["dense"]', sparsity="[0.5]", freeze="[0.3]")
    config.write_text(config.read_text() + '[storage]\nkeep = "all"\n')  # the killed sweeps of test_sweeps_e2e keep "lean"
    command = [sys.executable, str(SCRIPT), "--config", str(config), "--storage", str(tmp_path / "ray"),
               "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    driver = subprocess.Popen(command, cwd=tmp_path, env={**marked_env, "TUNE_GLOBAL_CHECKPOINT_S": "1000"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while finished_children(tmp_path / "mlflow.db") < 1 and time.time() < deadline and driver.poll() is None:
        time.sleep(0.01)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    client, _, children = mlflow_runs(tmp_path)
    (first,) = [child.data.tags["family"] for child in children if child.info.status == "FINISHED"]
    assert len(children) == 2  # killed in time: the other trial still trains
    later = {"dense": "weight-trained dense baseline", "weight_trained": "dense  k=0.5"}[first]

    resumed = subprocess.run(command, cwd=tmp_path, env=marked_env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # before: "Error handling checkpoint ... Path not found" (a checkpoint deleted after the snapshot, deleted
    # again), or "Could not recover from checkpoint as it does not exist on storage anymore" and the trial failed
    for text in ("Error handling checkpoint", "Path not found", "does not exist on storage", "Traceback"):
        assert text not in resumed.stderr, resumed.stderr[-3000:]
    client, parents, children = mlflow_runs(tmp_path)
    assert parents[0].info.status == "FINISHED" and len(children) == 2
    for child in children:
        assert child.info.status == "FINISHED"
        for key in ("final_val_accuracy", "ticket_bits", "best_epoch"):  # the first trial's were logged twice
            assert len(client.get_metric_history(child.info.run_id, key)) == 1, (child.data.tags["family"], key)
        steps = [metric.step for metric in client.get_metric_history(child.info.run_id, "val_accuracy")]
        assert steps == [0, 1, 2, 3, 4]
    # the resumed driver reports only the trial that finished after the kill
    lines = [line for line in resumed.stdout.splitlines() if line.startswith("[")]
    assert len(lines) == 1 and later in lines[0], resumed.stdout
    assert "HV dense 0." in lines[0]  # the family's hypervolume once the trial finished
    # one step per finished trial, across the kill (which may land before the first trial's step was logged),
    # the last of them the published hypervolume
    published = json.loads(next((tmp_path / "ray").glob("*.results/pareto_fronts.json")).read_text())
    for key, final in (("hypervolume_dense", published["families"]["dense"]["hypervolume"]),
                       ("front_size_dense", len(published["families"]["dense"]["front"]))):
        history = sorted(client.get_metric_history(parents[0].info.run_id, key), key=lambda metric: metric.step)
        assert [metric.step for metric in history] == [1, 2] and history[-1].value == final, (key, history)
    assert not list((tmp_path / "ray").glob("*.trial-state"))  # the trials' own state goes once the sweep is done
    # keep = "all": each finished trial's checkpoint is its whole final state, with the ticket of a ticket trial
    held = sorted(sorted(path.name for path in checkpoint.iterdir()) for checkpoint in (tmp_path / "ray").glob("small-*/*/checkpoint_*"))
    assert held == [["state.pt"], ["state.pt", "ticket.slt"]]
    assert wait_until_gone(marked_env[MARK], (tmp_path, Path(marked_env["RAY_TMPDIR"]))) == []
