"""The outcome of a sweep: its trials sorted from Ray's results into full-budget records (the fronts' only
input), trials a scheduler stopped, failed and unfinished ones, what early stopping saved, and where the
trials ran (the node of each trial's last result, and the trials Ray retried)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from frozen_slt.config.experiment import ExperimentConfig
from frozen_slt.config.points import point_config
from trainables.tune_trainable import trained_full_budget, trial_point

from .spec import SweepSpec


@dataclass
class SweepOutcome:
    records: list[dict[str, Any]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # grid points left out: pruned with f > k
    stopped: list[dict[str, Any]] = field(default_factory=list)  # trials MO-ASHA stopped early (not in fronts)
    epochs_trained: int = 0  # over all trials, by the last epoch each reported
    epochs_saved: int = 0  # the epochs the stopped trials did not train
    checkpoints: dict[str, Any] = field(default_factory=dict)  # trial id -> its last Ray checkpoint
    nodes: dict[str, str] = field(default_factory=dict)  # trial id -> the node of its last result (node_label)
    retried: dict[str, dict[str, Any]] = field(default_factory=dict)  # trial id -> retries, error, ran_on (MLflow)
    fronts: dict[str, Any] = field(default_factory=dict)
    artifacts: list[Path] = field(default_factory=list)
    experiment_id: str = ""
    parent_run_id: str = ""

    @property
    def complete(self) -> bool:
        return not self.failed and not self.unfinished

    @property
    def status(self) -> str:
        """The parent run's final status: KILLED when the sweep was stopped before its end (Ctrl-C: Tune
        returns with trials unfinished), FAILED when a trial gave up, else FINISHED."""
        return "KILLED" if self.unfinished else "FAILED" if self.failed else "FINISHED"


def node_label(result: dict[str, Any]) -> str | None:
    """``"10.0.0.2 (gpu-2)"``: the node a Ray result came from (Ray adds ``node_ip`` and ``hostname`` to every
    reported result), or None for a result without them."""
    if not result.get("node_ip"):
        return None
    return f"{result['node_ip']} ({result.get('hostname', '?')})"


def trial_record(result, base: ExperimentConfig) -> dict[str, Any]:
    """A trial's row from its last result (best validation accuracy so far, its test accuracy, size)."""
    return record_of(result.metrics, result.config, base)


def record_of(metrics: dict[str, Any], trial_config: dict[str, Any], base: ExperimentConfig) -> dict[str, Any]:
    """:func:`trial_record` from a trial's last reported ``metrics`` and its Ray config (a trial object's
    ``last_result`` and ``config``, as the driver's callbacks see them)."""
    point = trial_point(trial_config)
    config = point_config(base, point)
    return {
        "family": config.family, "size_bits": metrics["ticket_bits"], "val_accuracy": metrics["best_val_accuracy"],
        "test_accuracy": metrics["best_test_accuracy"], "best_epoch": metrics["best_epoch"],
        "sparsity": None if config.weight_trained else config.ticket.sparsity,
        "freeze_ratio": config.ticket.freeze_ratio, "lock_share": config.ticket.lock_share,
        "seed": point.get("seed"), "config_hash": config.config_hash(), "trial_id": metrics.get("trial_id"),
        # the seeds its configuration trains (sweeps.fronts); None for a trial config from before they were named
        "seeds_expected": trial_config.get("seeds"),
    }


def collect(grid, base: ExperimentConfig, stops: dict[str, dict[str, Any]]) -> SweepOutcome:
    """Sort the trials: full-budget records (the fronts' only input), stopped, failed, unfinished;
    ``stops`` is the scheduler's ``{trial id: stopping decision}``."""
    outcome = SweepOutcome()
    for result in grid:
        metrics = result.metrics or {}
        trial = metrics.get("trial_id") or Path(result.path).name
        outcome.epochs_trained += int(metrics.get("epoch", 0))
        if node_label(metrics):
            outcome.nodes[trial] = node_label(metrics)
        if result.error is not None:
            outcome.failed.append((trial, str(result.error).strip().splitlines()[-1][:300]))
        elif trained_full_budget(metrics):
            record = trial_record(result, base)
            outcome.records.append(record)
            outcome.checkpoints[record["trial_id"]] = result.checkpoint
        elif trial in stops:
            record = trial_record(result, base)
            record.update(stopped_at_epoch=int(metrics["epoch"]), stop_reason=stops[trial]["reason"])
            outcome.stopped.append(record)
            outcome.epochs_saved += base.train.epochs - record["stopped_at_epoch"]
        else:
            outcome.unfinished.append(trial)
    return outcome


def early_stopping_summary(spec: SweepSpec, outcome: SweepOutcome) -> dict[str, Any]:
    """The scheduler, how many trials it stopped, the epochs trained in all and the epochs the stops saved."""
    return {"scheduler": spec.scheduler, "trials": len(outcome.records) + len(outcome.stopped),
            "trials_stopped": len(outcome.stopped), "epochs_trained": outcome.epochs_trained,
            "epochs_saved": outcome.epochs_saved, "stopped": outcome.stopped}


def placement_lines(outcome: SweepOutcome) -> list[str]:
    """The summary's lines on where the trials ran: how many ended on each node, and each trial Ray retried
    (a node lost, a failure) with how often, the nodes it ran on and the error before its last retry."""
    lines = []
    if outcome.nodes:
        counts = sorted(Counter(outcome.nodes.values()).items())
        lines.append("trials per node (where each ended): " + ", ".join(f"{node} {count}" for node, count in counts))
    for trial, retry in sorted(outcome.retried.items()):
        times = "once" if retry["retries"] == 1 else f"{retry['retries']} times"
        lines.append(f"retried {trial} {times} from its last checkpoint, ran on {retry['ran_on'] or '?'}; "
                     f"before the last retry: {retry['error']}")
    return lines
