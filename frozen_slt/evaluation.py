"""Re-evaluating the best ticket a run saved: rebuild from seeds, load the saved state, evaluate."""

from __future__ import annotations

from typing import Any

from .data import load_dataset
from .network import build_network
from .errors import RunDirectoryError
from .rundir import RunDirectory
from .train import evaluate, resolve_device


def evaluate_run(run: RunDirectory, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Val/test accuracy of the run's best-validation epoch, recomputed, next to the recorded values.

    ``overrides`` may change where things are (``data_dir``, ``device``), not what was trained.
    """
    config = run.read_config().with_overrides(overrides or {})
    state = run.store.load()
    if state is None:
        raise RunDirectoryError(f"{run.path} has no intact checkpoint to evaluate")
    if state["config_hash"] != config.config_hash():
        raise RunDirectoryError(f"the checkpoint in {run.path} belongs to config {state['config_hash']}, not {config.config_hash()}")
    device = resolve_device(config.train.device)
    network = build_network(config, device)
    if state["weights_fingerprint"] != network.fingerprint:
        raise RunDirectoryError("the random weights regenerated from the seeds differ from the trained ones")
    best = state["best"]
    network.load_saved_state(best["model"])
    data = load_dataset(config.dataset, config.data, device)
    report: dict[str, Any] = {"epoch": best["epoch"]}
    for split in ("val", "test"):
        report.update(evaluate(network, data, split, config))
        report[f"recorded_{split}_accuracy"] = best[f"{split}_accuracy"]
    report["realised_sparsity"] = network.realised_sparsity()
    return report
