"""A sweep of a converted model end to end (docs/method.md §13): torchvision's VisionTransformer, its arguments in
[experiment.model_args], on digits with its channel repeated, searched by the size-aware Optuna strategy with
MO-ASHA, through Ray Tune and MLflow; its fronts' tickets are version-2 files that evaluate in a fresh process."""

import json

import pytest
from hostile import frozen_slt
from sweep_runs import mlflow_runs, run_sweep

from frozen_slt.ticket import read_ticket

pytestmark = pytest.mark.slow

SWEEP = """
name = "vit"
search = "optuna"
families = ["dense", "frozen"]
weight_trained_baseline = true
[experiment]
model = "torchvision:VisionTransformer"
dataset = "digits"
input_channels = 3
epochs = 2
batch_size = 64
lr = 0.05
[experiment.model_args]
patch_size = 4
num_layers = 1
num_heads = 2
hidden_dim = 16
mlp_dim = 32
[optuna]
num_samples = 4
strategy = "size-aware"
sparsity = [0.3, 0.7]
freeze_ratio = [0.3, 0.7]
[scheduler]
kind = "mo-asha"
grace_epochs = 1
reduction_factor = 2
[resources]
cpus_per_trial = 1
"""


def test_a_sweep_of_a_converted_model_runs_end_to_end(tmp_path, marked_env):
    (tmp_path / "vit.toml").write_text(SWEEP)
    done = run_sweep(tmp_path, "--config", str(tmp_path / "vit.toml"), timeout=900, env=marked_env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "dense source" in done.stdout and "frozen source" in done.stdout
    client, parents, children = mlflow_runs(tmp_path)
    assert len(parents) == 1 and len(children) == 5  # 4 ticket trials and the baseline
    assert parents[0].data.params["experiment.model_args.patch_size"] == "4"
    assert parents[0].data.tags["version.torchvision"] != "not installed"
    for child in children:
        assert child.data.params["config.model"] == "torchvision:VisionTransformer"
        assert child.data.params["config.model_args.hidden_dim"] == "16" and child.data.params["config.data.input_channels"] == "3"
    (results,) = (tmp_path / "ray").glob("vit-*.results")
    fronts = json.loads((results / "pareto_fronts.json").read_text())
    tickets = [point["ticket_file"] for family in fronts["families"].values() for point in family["front"]]
    assert tickets
    ticket = read_ticket(tickets[0])
    assert ticket.version == 2 and ticket.config.model_args["patch_size"] == 4
    evaluated = frozen_slt("eval", tickets[0], "--device", "cpu", cwd=tmp_path)
    assert evaluated.returncode == 0 and f"val {100 * ticket.val_accuracy:.2f}%" in evaluated.stdout, evaluated.stderr
