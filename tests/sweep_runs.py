"""Helpers of the end-to-end sweep tests: a small sweep file, the sweep run as a real process with its own
MLflow store and Ray results, and its MLflow runs read back.

Ray runs as users run it: RAY_AUTH_MODE is left unset, so a local `ray.init` turns Ray's token
authentication on (Ray 2.60 cannot bind its services to 127.0.0.1, see README: Security). The token is
a fresh one in RAY_AUTH_TOKEN, so no test reads or writes ~/.ray/auth_token.
"""

import os
import secrets
import subprocess
import sys
from pathlib import Path

from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "sweeps" / "pareto.py"
ENV = {key: value for key, value in os.environ.items() if key != "RAY_AUTH_MODE"} | {
    "RAY_AUTH_TOKEN": secrets.token_hex(32), "PYTHONUNBUFFERED": "1", "RAY_USAGE_STATS_ENABLED": "0"}

SMALL_SWEEP = """
name = "{name}"
search = "{search}"
families = {families}
weight_trained_baseline = {baseline}
[experiment]
model = "conv4"
dataset = "digits"
epochs = {epochs}
batch_size = 64
lr = 0.05
[grid]
sparsity = {sparsity}
freeze_ratio = {freeze}
[optuna]
num_samples = {samples}
strategy = "size-aware"
sparsity = {optuna_sparsity}
freeze_ratio = {optuna_freeze}
[scheduler]
kind = "{scheduler}"
grace_epochs = 1
reduction_factor = 3
[resources]
cpus_per_trial = 1
max_failures = {max_failures}
"""


def grid_sweep(name: str, epochs: int, sparsity: str = "[0.5]", freeze: str = "[0.3, 0.6]", search: str = "grid",
               tail: str = "") -> str:
    """The text of a small conv2 sweep over the three families without a baseline, then ``tail`` (more of its
    [grid] section, or more sections)."""
    return (f'\nname = "{name}"\nsearch = "{search}"\nfamilies = ["dense", "pruned", "frozen"]\n'
            f'weight_trained_baseline = false\n[experiment]\nmodel = "conv2"\ndataset = "digits"\nepochs = {epochs}\n'
            f"[grid]\nsparsity = {sparsity}\nfreeze_ratio = {freeze}\n" + tail)


def write_sweep(tmp_path, name="small", search="grid", baseline="true", epochs=2, samples=3, max_failures=2,
                families='["dense", "pruned", "frozen"]', sparsity="[0.5]", freeze="[0.3, 0.6]", scheduler="fifo",
                optuna_sparsity="[0.1, 0.9]", optuna_freeze="[0.1, 0.9]"):
    path = tmp_path / f"{name}.toml"
    path.write_text(SMALL_SWEEP.format(name=name, search=search, baseline=baseline, epochs=epochs, samples=samples,
                                       max_failures=max_failures, families=families, sparsity=sparsity, freeze=freeze,
                                       scheduler=scheduler, optuna_sparsity=optuna_sparsity,
                                       optuna_freeze=optuna_freeze))
    return path


def sweep_command(tmp_path, *args):
    return [sys.executable, str(SCRIPT), "--quiet", "--storage", str(tmp_path / "ray"),
            "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", *args]


def run_sweep(tmp_path, *args, timeout=300, env=ENV):
    return subprocess.run(sweep_command(tmp_path, *args), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)


def mlflow_runs(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("frozen-slt")
    runs = client.search_runs([experiment.experiment_id], max_results=1000) if experiment else []
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return client, parents, children


def assert_no_duplicate_epochs(client, children):
    for child in children:
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "val_accuracy")]
        assert len(steps) == len(set(steps)), steps
