"""Multi-objective asynchronous successive halving (MO-ASHA) for a sweep's trials, as a Ray Tune scheduler.

Rungs lie at ``grace_epochs · η^i`` epochs, below the trials' epoch budget. When a ticket trial first
reports an epoch at or past a rung, its running best validation accuracy and its ticket size (known
before training) are recorded at that rung, and it goes on only if it is among the best ⌈n/η⌉ of the n
trials of its own family recorded there, in :func:`sweeps.dominance.promotion_order` (non-dominated
rank over accuracy ↑ and size ↓, then the hypervolume each adds to its layer, then accuracy, size,
arrival). The decision is taken once, asynchronously, against the trials recorded so far (ASHA's rule:
the first trial at a rung always goes on), and never revised. Families (dense, pruned, frozen) are ranked apart so that every
family's front is mapped; the weight-trained baseline is never stopped.

Every decision is appended to a JSON log written atomically before Ray acts on it (Ray 2.60 keeps no
scheduler state across ``Tuner.restore``). The log is the whole state: a sweep resumed after a kill
finds every recorded result and decision again, answers a replayed epoch with the decision already
taken (nothing is recorded or promoted twice) and ends a restored trial it had stopped before the
trial trains again.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from frozen_slt.files import write_atomically

from .dominance import promotion_order

#: The result keys a decision reads (see trainables.tune_trainable).
EPOCH, ACCURACY, SIZE, FAMILY = "epoch", "best_val_accuracy", "ticket_bits", "family"
NEVER_STOPPED = ("weight_trained",)


def decide(table: list[dict[str, Any]], trial_id: str, reduction_factor: float) -> tuple[bool, str]:
    """Whether ``trial_id`` goes on from a rung, given the rung's ``table`` of one family (entries with
    ``trial_id``, ``accuracy`` and ``bits``, in the order they were recorded, ``trial_id`` among them),
    and why in words."""
    order = promotion_order([(entry["bits"], entry["accuracy"]) for entry in table])
    position = order.index(next(i for i, entry in enumerate(table) if entry["trial_id"] == trial_id))
    keep = math.ceil(len(table) / reduction_factor)
    verdict = "among" if position < keep else "not among"
    return position < keep, (f"{verdict} the best {keep} of {len(table)} trials of its family at this rung "
                             f"(placed {position + 1}: non-dominated sorting over val accuracy and ticket bits)")


class MultiObjectiveAsha(FIFOScheduler):
    """MO-ASHA over (best validation accuracy ↑, ticket bits ↓), family by family; see module docstring.

    ``state_path`` is the JSON log of its decisions: read on first use (a resumed sweep), written on
    every decision. Only plain values are pickled with it (Ray stores the scheduler in the Tuner's
    state), so the log on disk, never a stale copy, is what a restored sweep continues from.
    """

    _supports_buffered_results = False  # decide on every epoch's result as it comes, never on a batch

    def __init__(self, rungs: tuple[int, ...], reduction_factor: float, state_path: str) -> None:
        super().__init__()
        if not rungs or reduction_factor <= 1:
            raise ValueError(f"MO-ASHA needs at least one rung and a reduction factor > 1, got {rungs}, {reduction_factor}")
        self.rungs, self.reduction_factor, self.state_path = tuple(rungs), float(reduction_factor), state_path
        self._log: list[dict[str, Any]] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_log": None}

    @property
    def log(self) -> list[dict[str, Any]]:
        """Every decision so far, in order (``trial_id``, ``family``, ``rung``, ``epoch``, ``accuracy``,
        ``bits``, ``go_on``, ``reason``)."""
        if self._log is None:
            self._log = read_decisions(self.state_path)
        return self._log

    def stopped(self) -> dict[str, dict[str, Any]]:
        """``{trial id: the decision that stopped it}``."""
        return {entry["trial_id"]: entry for entry in self.log if not entry["go_on"]}

    def on_trial_result(self, tune_controller, trial: Trial, result: dict[str, Any]) -> str:
        family = result.get(FAMILY)
        if family in NEVER_STOPPED or EPOCH not in result:
            return TrialScheduler.CONTINUE
        if trial.trial_id in self.stopped():
            return TrialScheduler.STOP  # a replayed epoch of a trial stopped before a kill
        decided = {entry["rung"] for entry in self.log if entry["trial_id"] == trial.trial_id}
        for rung in self.rungs:
            if rung <= result[EPOCH] and rung not in decided:
                if not self._record(trial.trial_id, family, rung, result)["go_on"]:
                    return TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def _record(self, trial_id: str, family: str, rung: int, result: dict[str, Any]) -> dict[str, Any]:
        entry = {"trial_id": trial_id, "family": family, "rung": rung, "epoch": int(result[EPOCH]),
                 "accuracy": float(result[ACCURACY]), "bits": int(result[SIZE])}
        table = [e for e in self.log if e["rung"] == rung and e["family"] == family] + [entry]
        go_on, why = decide(table, trial_id, self.reduction_factor)
        entry.update(go_on=go_on, reason=f"rung at epoch {rung}: {why}")
        self.log.append(entry)
        write_atomically(Path(self.state_path), json.dumps(
            {"rungs": list(self.rungs), "reduction_factor": self.reduction_factor, "decisions": self.log}, indent=1).encode())
        return entry

    def choose_trial_to_run(self, tune_controller) -> Trial | None:
        # a trial stopped before the driver was killed comes back PENDING: end it before it trains again
        stopped = self.stopped()
        for trial in tune_controller.get_trials():
            if trial.status == Trial.PENDING and trial.trial_id in stopped:
                tune_controller.stop_trial(trial)
        return super().choose_trial_to_run(tune_controller)

    def debug_string(self) -> str:
        return (f"MO-ASHA: rungs at epochs {', '.join(map(str, self.rungs))}, reduction factor {self.reduction_factor:g}, "
                f"{len(self.stopped())} trials stopped")


def read_decisions(state_path: str | Path | None) -> list[dict[str, Any]]:
    """The decision log of a sweep's MO-ASHA scheduler (empty when there is none)."""
    if state_path is None or not Path(state_path).is_file():
        return []
    return json.loads(Path(state_path).read_text())["decisions"]


def stop_records(state_path: str | Path | None) -> dict[str, dict[str, Any]]:
    """``{trial id: the decision that stopped it}`` from a scheduler's log on disk."""
    return {entry["trial_id"]: entry for entry in read_decisions(state_path) if not entry["go_on"]}
