"""The graph path at sweep scale: the synthetic graph sweep's smoke run through Ray Tune and MLflow, and
the synthetic graph's difficulty (learnable, not trivial)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from frozen_slt.config.experiment import ExperimentConfig
from frozen_slt.training.loop import fit

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "sweeps" / "configs" / "synthetic-arxiv-gin.toml"
pytestmark = pytest.mark.slow
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1", "RAY_USAGE_STATS_ENABLED": "0"}


def test_synthetic_graph_sweep_smoke(tmp_path):
    command = [sys.executable, str(REPO / "sweeps" / "pareto.py"), "--smoke", "--quiet", "--config", str(CONFIG),
               "--storage", str(tmp_path / "ray"), "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    done = subprocess.run(command, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("frozen-slt")
    runs = client.search_runs([experiment.experiment_id])
    children = [run for run in runs if "mlflow.parentRunId" in run.data.tags]
    assert sorted(run.data.tags["family"] for run in children) == ["dense", "frozen"]
    for child in children:
        assert child.data.params["config.dataset"] == "synthetic-arxiv" and child.data.params["config.model"] == "gin"
        assert child.data.params["config.train.optimizer"] == "adamw" and 0.0 <= child.data.metrics["val_accuracy"] <= 1.0
    (results,) = (tmp_path / "ray").glob("synthetic-arxiv-gin-*.results")
    fronts = json.loads((results / "pareto_fronts.json").read_text())
    assert set(fronts["families"]) == {"dense", "frozen"}


def test_synthetic_graph_is_learnable_but_not_trivial():
    config = ExperimentConfig.from_settings({"model": "gin", "dataset": "synthetic-arxiv", "weight_trained": True,
                                             "epochs": 20, "device": "cpu"})
    result = fit(config)
    assert result.history[0]["val_accuracy"] < 0.1  # 40 classes: chance is 2.5 %
    # val/test measured 0.638/0.603 on the 2-core AMD EPYC of 2026-11-25 (README) and 0.635/0.607 on one of family 26
    # (2026-12-04): the bounds leave 0.3 of margin on either side
    assert 0.3 < result.val_accuracy < 0.9 and 0.3 < result.test_accuracy < 0.9
