"""Re-evaluating the best ticket a run saved: rebuild from seeds, load the saved state, evaluate."""

from __future__ import annotations

from typing import Any

from ..data import load_dataset
from ..errors import RunDirectoryError
from ..training.evaluate import evaluate_splits
from ..training.network import build_network, resolve_device
from .rundir import RunDirectory


def evaluate_run(run: RunDirectory, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Val/test accuracy of the best-validation ticket in the run's newest intact checkpoint, recomputed.

    Read-only: damaged checkpoints (and ones that are not this run's, see
    :func:`~frozen_slt.training.checkpoint.check_fit_state`) are skipped, not moved. ``overrides`` may change where things are
    (``data_dir``, ``device``), not what was trained. The report holds ``epoch`` (the ticket's epoch),
    ``checkpoint_epoch``, ``val_accuracy``/``test_accuracy`` (recomputed), ``recorded_*_accuracy`` (measured
    in training), ``realised_sparsity``, ``damaged`` (one message per skipped checkpoint), ``result``
    (result.json's best epoch and accuracies, None before the run finished) and ``matches_result``
    (whether the evaluated ticket is the one result.json reports; None without result.json).
    """
    config = run.read_config().with_overrides(overrides or {})
    state, damaged = run.store.newest_intact()
    if state is None:
        reasons = "".join(f"; {error}" for _, error in damaged)
        raise RunDirectoryError(f"{run.path} has no intact checkpoint to evaluate{reasons}")
    finished = run.load_result()
    device = resolve_device(config.train.device)
    network = build_network(config, device)
    if state["weights_fingerprint"] != network.fingerprint:
        raise RunDirectoryError("the random weights regenerated from the seeds differ from the trained ones")
    best = state["best"]
    network.load_saved_state(best["model"])
    data = load_dataset(config.dataset, config.data, device, config.dataset_args)
    report: dict[str, Any] = {"epoch": best["epoch"], "checkpoint_epoch": state["epoch"]}
    report.update(evaluate_splits(network, data, config))
    report.update({f"recorded_{split}_accuracy": best[f"{split}_accuracy"] for split in ("val", "test")})
    report["realised_sparsity"] = network.realised_sparsity()
    report["damaged"] = [str(error) for _, error in damaged]
    report["result"] = None if finished is None else {
        "best_epoch": finished.best_epoch, "val_accuracy": finished.val_accuracy, "test_accuracy": finished.test_accuracy}
    report["matches_result"] = None if finished is None else (
        (best["epoch"], best["val_accuracy"], best["test_accuracy"])
        == (finished.best_epoch, finished.val_accuracy, finished.test_accuracy))
    return report
