"""The Ray Tune function trainable: one trial = one :func:`frozen_slt.train.fit` run.

The reporter forwards every evaluated epoch to ``tune.report`` together with that epoch's checkpoint;
the store reads ``tune.get_checkpoint()``, so a retried or resumed trial continues from its last epoch.

A checkpoint is written to a directory of the trial's own before Ray copies it into the storage, and
that directory is removed after the report. ``tune.report`` blocks until the driver takes the result,
so a driver killed meanwhile leaves it behind: it lives under a directory the sweep clears when it
starts again (``pending_root``), or, without one, in the trial's directory of the Ray session.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from frozen_slt.checkpoint import read_checkpoint, write_checkpoint
from frozen_slt.config import ExperimentConfig
from frozen_slt.ticket import write_ticket
from frozen_slt.train import Reporter, fit

from .points import point_config, trial_point

STATE_FILE = "state.pt"
#: The trial's ticket file (docs/ticket-format.md), written into its final checkpoint.
TICKET_FILE = "ticket.slt"
#: Result key, true only on the result of the last epoch of the budget. Ray sets ``done`` on the last
#: result of every trial, also on one a scheduler stopped early, so ``done`` cannot tell them apart.
FULL_BUDGET = "full_budget"


def trained_full_budget(result: dict[str, Any]) -> bool:
    """Whether ``result`` is the last epoch of its trial's budget. A result from before this key existed
    (when no scheduler could stop a trial early) falls back on ``done``."""
    return bool(result.get(FULL_BUDGET, result.get("done")))


class InjectedFault(RuntimeError):
    """Raised by the fault drill (``--inject-fault``) to exercise retries from checkpoints."""


class TuneStore:
    """Checkpoint store on top of Ray: load from ``tune.get_checkpoint``, save into ``directory`` for the next report.

    The final checkpoint of a ticket trial also holds the ticket file of its best-validation epoch, so
    the sweep finds it in the trial's last checkpoint in the storage, wherever the trial ran.
    """

    def __init__(self, directory: Path, config: ExperimentConfig) -> None:
        self.directory, self.config = directory, config
        self.pending: Path | None = None

    def load(self) -> dict[str, Any] | None:
        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as directory:
            return read_checkpoint(Path(directory) / STATE_FILE)

    def save(self, state: dict[str, Any]) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)  # the last epoch's, or one left by a killed attempt
        self.directory.mkdir(parents=True)
        self.pending = self.directory
        write_checkpoint(self.pending / STATE_FILE, state)
        if not self.config.weight_trained and state["epoch"] >= self.config.train.epochs:
            write_ticket(self.pending / TICKET_FILE, self.config, state)

    def discard(self) -> None:
        if self.pending is not None:
            shutil.rmtree(self.pending, ignore_errors=True)
            self.pending = None


class TuneReporter(Reporter):
    """Adds the ticket size, family and config hash to every epoch's metrics (which carry the running best) and reports them to Tune."""

    def __init__(self, store: TuneStore, config: ExperimentConfig, fault: dict[str, Any] | None = None):
        self.store, self.config, self.fault = store, config, fault
        self.size_bits = 0

    def on_start(self, info: dict[str, Any]) -> None:
        memory = info["memory"]
        self.size_bits = memory["weight_trained_bits"] if self.config.weight_trained else memory["ticket_bits"]
        finished = info["resumed_epoch"] is not None and info["resumed_epoch"] >= info["epochs"]
        if finished and info["history"]:
            # Resumed after the last checkpoint: report the final epoch again so this session has a result.
            tune.report(self._payload(info["history"][-1]))

    def on_epoch(self, metrics: dict[str, Any]) -> None:
        self._maybe_fail(metrics["epoch"])
        checkpoint = tune.Checkpoint.from_directory(str(self.store.pending)) if self.store.pending else None
        tune.report(self._payload(metrics), checkpoint=checkpoint)
        self.store.discard()

    def _payload(self, metrics: dict[str, Any]) -> dict[str, Any]:
        return {
            **metrics,
            "ticket_bits": self.size_bits,
            "family": self.config.family,
            "config_hash": self.config.config_hash(),
            "done": metrics["epoch"] >= self.config.train.epochs,
            FULL_BUDGET: metrics["epoch"] >= self.config.train.epochs,
        }

    def _maybe_fail(self, epoch: int) -> None:
        if not self.fault or epoch != self.fault["epoch"]:
            return
        marker = Path(self.fault["marker_dir"]) / f"{self.config.config_hash()}.failed"
        if not marker.exists():
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
            raise InjectedFault(f"fault drill: injected failure at epoch {epoch} (retries resume from the checkpoint)")


def _use_assigned_cpus() -> None:
    """Keep PyTorch to the trial's CPU share so packed trials do not oversubscribe the cores."""
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    if cpus:
        torch.set_num_threads(max(1, int(cpus)))


def pending_directory(pending_root: str | None) -> Path:
    """Where this trial writes a checkpoint until Ray has copied it: ``pending_root/<trial id>`` (a
    directory the sweep clears when it starts), else inside the trial's directory of the Ray session."""
    context = tune.get_context()
    if pending_root is not None:
        return Path(pending_root) / context.get_trial_id()
    return Path(context.get_trial_dir()) / "pending-checkpoint"


def train_trial(point: dict[str, Any], base: dict[str, Any], fault: dict[str, Any] | None = None,
                pending_root: str | None = None) -> None:
    """Ray Tune function trainable. ``point`` is the trial's search point, ``base`` an ExperimentConfig dict."""
    config = point_config(ExperimentConfig.from_dict(base), trial_point(point))
    _use_assigned_cpus()
    store = TuneStore(pending_directory(pending_root), config)
    try:
        fit(config, TuneReporter(store, config, fault), store)
    finally:
        store.discard()
