"""Reading a sweep's outcome back while it runs and after: Ray's result files and experiment snapshot in
its storage, and the sweep's MLflow store (through MLflow's client, or sqlite directly where a poll must be
quick)."""

import json
import sqlite3
from pathlib import Path

from mlflow.tracking import MlflowClient


def results(storage: Path, sweep: str) -> dict[str, list[dict]]:
    """Ray's reported results of each trial of ``sweep`` (its result.json files), by trial id; a line being
    written just now is left out."""
    found = {}
    for path in storage.glob(f"{sweep}-*/train_trial_*/result.json"):
        lines = []
        for line in path.read_text().splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                break
        if lines:
            found[lines[0]["trial_id"]] = lines
    return found


def sweep_runs(store: Path, sweep: str):
    """The parent run of ``sweep`` in the head's MLflow store and its child runs."""
    client = MlflowClient(f"sqlite:///{store}")
    runs = client.search_runs([client.get_experiment_by_name("frozen-slt").experiment_id], max_results=1000)
    (parent,) = [run for run in runs if run.data.tags.get("sweep", "").startswith(f"{sweep}-")]
    children = [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return client, parent, children


def terminated_in_ray(storage: Path, sweep: str) -> dict[str, str]:
    """``{trial id: status}`` in Ray's last experiment snapshot of ``sweep``."""
    (path,) = storage.glob(f"{sweep}-*/experiment_state-*.json")
    states = [json.loads(state) for state, _ in json.loads(path.read_text())["trial_data"]]
    return {state["trial_id"]: state["status"] for state in states}


def trials_running_on(store: Path, address: str) -> dict[str, int]:
    """``{Ray trial id: last epoch logged}`` of the RUNNING child runs tagged with node ``address`` in the head's
    MLflow store, read with sqlite directly (the driver logs each result as it arrives; Ray's result.json in
    the storage is synced later)."""
    query = ("select trial.value, max(metrics.step) from runs "
             "join tags node on node.run_uuid = runs.run_uuid and node.key = 'node_ip' and node.value = ? "
             "join tags trial on trial.run_uuid = runs.run_uuid and trial.key = 'ray_trial_id' "
             "join metrics on metrics.run_uuid = runs.run_uuid and metrics.key = 'val_accuracy' "
             "where runs.status = 'RUNNING' group by trial.value")
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=0.1) as connection:
            return dict(connection.execute(query, (address,)).fetchall())
    except sqlite3.Error:  # not created yet, or locked for a moment
        return {}
