"""The Ray Tune function trainable: one trial = one :func:`frozen_slt.training.loop.fit` run.

The reporter forwards every evaluated epoch to ``tune.report``; the store is the trial's resumable
state, so a retried or resumed trial continues from its last epoch. Where it keeps that state:

- A sweep with local storage (a path every worker reaches) gives each trial a state directory of its own
  (``state_root/<trial id>``), replaced atomically every epoch; only the last epoch's state, with the
  ticket, is handed to Ray as a checkpoint. Ray's checkpoint manager deletes a superseded checkpoint as
  soon as a newer one arrives, but the experiment snapshot a resumed sweep reads is written only every
  few seconds (and synced in the background): a driver killed in between left a snapshot naming
  checkpoints that no longer existed, and the resumed Ray logged "Error handling checkpoint ... Path not
  found" deleting them again, or gave up on the trial, unable to restore it. Ray now never holds an
  intermediate checkpoint and never deletes one, so its snapshot cannot name one that is gone.
- Remote storage (s3://, ...), which the workers may reach only through Ray: every epoch's state goes
  to Ray as a checkpoint, written to a scratch directory in the trial's directory of the Ray session and
  removed after the report; the gap above remains there.

A resumed trial first reports its state's epoch again: its state may be ahead of what Ray and MLflow
saw (a kill between the save and the report); MLflow and the scheduler ignore an epoch seen before.

What a finished trial's final checkpoint holds (``[storage] keep``):

- ``"lean"`` (the default): its ticket file (none for the weight-trained baseline) and its final result
  (``result.json``, the metrics of its last report), in a folder ``final/`` of the trial's state; no
  model, optimizer or random state. That is what the sweep reads back (the ticket for the fronts' tables,
  ``frozen-slt eval``/``export`` and MLflow); at most about 0.2 MB instead of about 15 MB for the digits
  sweep's Conv-6. Ray restoring a finished trial from it (a kill before its snapshot recorded the trial
  finished, and no state of the trial's own) reports that result again and trains nothing.
- ``"all"``: the whole final training state next to the ticket, as resume reads it, to continue training.

The state a running trial resumes from is the same in both modes; only the final checkpoint differs. With
remote storage the checkpoints before the final one are whole states, and Ray keeps the newest two (the
sweep's CheckpointConfig), so a finished trial leaves its last whole state there besides the lean one.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from frozen_slt.config.experiment import ExperimentConfig
from frozen_slt.config.points import point_config
from frozen_slt.files import write_atomically
from frozen_slt.imports import allow, is_import_path
from frozen_slt.ticket import write_ticket
from frozen_slt.training.checkpoint import read_checkpoint, write_checkpoint
from frozen_slt.training.loop import Reporter, fit

STATE_FILE = "state.pt"
#: The trial's ticket file (docs/ticket-format.md), written into its final checkpoint.
TICKET_FILE = "ticket.slt"
#: The final result of a lean final checkpoint: the metrics of the trial's last report.
RESULT_FILE = "result.json"
#: The folder of a trial's state that becomes its lean final checkpoint.
FINAL_DIR = "final"
#: What a finished trial's final checkpoint keeps (module docstring).
KEEP_MODES = ("lean", "all")
#: Result key, true only on the result of the last epoch of the budget. Ray sets ``done`` on the last
#: result of every trial, also on one a scheduler stopped early, so ``done`` cannot tell them apart.
FULL_BUDGET = "full_budget"


def trial_point(trial_config: dict[str, Any]) -> dict[str, Any]:
    """The search point inside a Ray trial's config: a grid trial nests it under ``"point"`` (one
    ``grid_search`` over whole points), an Optuna trial's config is the point itself."""
    return dict(trial_config.get("point", trial_config))


def trained_full_budget(result: dict[str, Any]) -> bool:
    """Whether ``result`` is the last epoch of its trial's budget. A result from before this key existed
    (when no scheduler could stop a trial early) falls back on ``done``."""
    return bool(result.get(FULL_BUDGET, result.get("done")))


class InjectedFault(RuntimeError):
    """Raised by the fault drill (``--inject-fault``) to exercise retries from checkpoints."""


class TuneStore:
    """A trial's resumable state for ``fit`` (see module docstring): ``load`` the newest, ``save`` each epoch.

    ``shared``: ``directory`` is the trial's state directory (local storage); else a scratch directory
    for a checkpoint on its way to Ray. :attr:`pending` is the directory to hand to Ray with the next
    report, None when that report carries no checkpoint. The final checkpoint of a ticket trial also
    holds the ticket file of its best-validation epoch, so the sweep finds it in the trial's last
    checkpoint in the storage, wherever the trial ran. ``keep``: what that final checkpoint holds besides
    (module docstring).
    """

    def __init__(self, directory: Path, config: ExperimentConfig, shared: bool = False, keep: str = "lean") -> None:
        if keep not in KEEP_MODES:
            raise ValueError(f"keep must be one of {', '.join(KEEP_MODES)}, not {keep!r}")
        self.directory, self.config, self.shared, self.keep = directory, config, shared, keep
        self.pending: Path | None = None

    @property
    def final_directory(self) -> Path:
        """The directory handed to Ray as the final checkpoint: the whole state (``all``) or ``final/`` (``lean``)."""
        return self.directory if self.keep == "all" else self.directory / FINAL_DIR

    def load(self) -> dict[str, Any] | None:
        """The trial's own state when it has one, else Ray's checkpoint (remote storage, or a sweep begun
        before trials kept their own state), else None. A lean final checkpoint holds no state to load:
        :meth:`finished_result` finds it first."""
        if self.shared and (self.directory / STATE_FILE).is_file():
            state = read_checkpoint(self.directory / STATE_FILE)
            if self._final(state):  # killed after its last save: the final report hands its checkpoint to Ray again
                self._write_ticket(state, missing_only=True)
                self.pending = self.final_directory
            return state
        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as directory:
            return read_checkpoint(Path(directory) / STATE_FILE)

    def finished_result(self) -> dict[str, Any] | None:
        """The final result in the lean final checkpoint Ray restored this trial from (it had finished, but
        Ray's last snapshot held it running), else None: the trial has a state to resume from, or none."""
        if self.shared and (self.directory / STATE_FILE).is_file():
            return None
        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as directory:
            result = Path(directory) / RESULT_FILE
            if (Path(directory) / STATE_FILE).is_file() or not result.is_file():
                return None
            return json.loads(result.read_text())

    def save(self, state: dict[str, Any]) -> None:
        if not self.shared:
            shutil.rmtree(self.directory, ignore_errors=True)  # the last epoch's, or one left by a killed attempt
        self.directory.mkdir(parents=True, exist_ok=True)
        write_checkpoint(self.directory / STATE_FILE, state)  # atomic: a kill leaves the old state or the new one
        if self._final(state):
            self._write_ticket(state)
        self.pending = self.final_directory if self._final(state) else None if self.shared else self.directory

    def hand(self, payload: dict[str, Any]) -> Path | None:
        """The directory to hand to Ray with the report of ``payload`` (:attr:`pending`), None if none; a lean
        final checkpoint gets ``payload`` as its result first."""
        if self.pending is not None and self.keep == "lean" and self.pending == self.final_directory:
            write_atomically(self.pending / RESULT_FILE, json.dumps(payload, sort_keys=True).encode())
        return self.pending

    def _final(self, state: dict[str, Any]) -> bool:
        return state["epoch"] >= self.config.train.epochs

    def _write_ticket(self, state: dict[str, Any], missing_only: bool = False) -> None:
        path = self.final_directory / TICKET_FILE
        if not self.config.weight_trained and not (missing_only and path.is_file()):
            write_ticket(path, self.config, state)  # atomic too

    def discard(self) -> None:
        """After a report: the scratch directory goes; a trial's own state stays (the sweep removes it)."""
        if not self.shared and self.pending is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
        self.pending = None


class TuneReporter(Reporter):
    """Adds the ticket size, family and config hash to every epoch's metrics (which carry the running best) and reports them to Tune."""

    def __init__(self, store: TuneStore, config: ExperimentConfig, fault: dict[str, Any] | None = None):
        self.store, self.config, self.fault = store, config, fault
        self.size_bits = 0

    def on_start(self, info: dict[str, Any]) -> None:
        memory = info["memory"]
        self.size_bits = memory["weight_trained_bits"] if self.config.weight_trained else memory["ticket_bits"]
        if info["resumed_epoch"] is not None and info["history"]:
            # Resumed: report the state's epoch again (this session needs a result, and the kill may have come
            # between its save and its report). A final state goes to Ray with it unless Ray restored it.
            if tune.get_checkpoint() is not None:
                self.store.pending = None
            self._report(self._payload(info["history"][-1]))
        self.store.discard()

    def on_epoch(self, metrics: dict[str, Any]) -> None:
        self._maybe_fail(metrics["epoch"])
        self._report(self._payload(metrics))

    def _report(self, payload: dict[str, Any]) -> None:
        directory = self.store.hand(payload)
        tune.report(payload, checkpoint=tune.Checkpoint.from_directory(str(directory)) if directory is not None else None)
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


def state_directory(state_root: str | None) -> Path:
    """The trial's state directory ``state_root/<trial id>`` (local storage), else a scratch directory inside
    the trial's directory of the Ray session (see module docstring)."""
    context = tune.get_context()
    if state_root is not None:
        return Path(state_root) / context.get_trial_id()
    return Path(context.get_trial_dir()) / "pending-checkpoint"


def train_trial(point: dict[str, Any], base: dict[str, Any], fault: dict[str, Any] | None = None,
                state_root: str | None = None, keep: str = "lean") -> None:
    """Ray Tune function trainable. ``point`` is the trial's search point, ``base`` an ExperimentConfig dict,
    ``keep`` what its final checkpoint holds (module docstring).

    ``base`` comes from the sweep driver, which imported its model and dataset only when they were built-in,
    from a zoo, or named on its command line (docs/method.md §13): the trial may import them too."""
    for name in (base.get("model"), base.get("dataset")):
        if is_import_path(name):
            allow(name)
    config = point_config(ExperimentConfig.from_dict(base), trial_point(point))
    _use_assigned_cpus()
    store = TuneStore(state_directory(state_root), config, shared=state_root is not None, keep=keep)
    finished = store.finished_result()
    if finished is not None:  # restored from its lean final checkpoint: its result again, nothing to train
        tune.report(finished)
        return
    try:
        fit(config, TuneReporter(store, config, fault), store)
    finally:
        store.discard()
