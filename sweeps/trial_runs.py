"""The child runs of a sweep's MLflow parent run: one per Ray trial, created on the trial's first event and
found again by its trial id tag after a resume, so a resumed or retried trial leaves no duplicate points.
"""

from __future__ import annotations

import time
from typing import Any

from mlflow.entities import Metric, Param, RunStatus
from mlflow.tracking import MlflowClient

from trainables.tune_trainable import trained_full_budget

PARENT_TAG = "mlflow.parentRunId"
TRIAL_TAG = "ray_trial_id"
EPOCH_METRICS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy",
                 "realised_sparsity", "lr", "best_val_accuracy", "best_test_accuracy")


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested settings as MLflow params: ``{"a": {"b": 1}}`` becomes ``{"a.b": "1"}`` (values cut at 6,000 characters)."""
    out = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = str(value)[:6000]
    return out


class TrialLogger:
    """Child runs under one parent: created on a trial's first event, found again after a resume.

    A child run found FINISHED is complete: :meth:`finish_child` set that status last, after its final
    metrics, tags and ticket. Ray's snapshot can still hold such a trial unfinished (a driver killed
    just after the trial ended), so the resumed Ray runs it again to its end; its completion is then
    not recorded a second time (:meth:`recorded_before`).
    """

    def __init__(self, tracking_uri: str, parent_id: str):
        self.client = MlflowClient(tracking_uri)
        self.parent_id = parent_id
        self.experiment_id = self.client.get_run(parent_id).info.experiment_id
        self._children: dict[str, str] = {}
        self._logged_epoch: dict[str, int] = {}
        self._finished_before: set[str] = set()  # run ids found FINISHED

    def recorded_before(self, trial_id: str) -> bool:
        """Whether ``trial_id``'s completion was recorded by an earlier driver of the sweep."""
        return self._children.get(trial_id) in self._finished_before

    def child(self, trial_id: str, trial_name: str, tags: dict[str, str], params: dict[str, Any]) -> str:
        if trial_id in self._children:
            return self._children[trial_id]
        found = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{self.parent_id}' and tags.`{TRIAL_TAG}` = '{trial_id}'"
        )
        if found:
            run_id, logged = found[0].info.run_id, found[0].data.params
            history = self.client.get_metric_history(run_id, "val_accuracy")
            self._logged_epoch[run_id] = max((m.step for m in history), default=-1)
            if found[0].info.status == "FINISHED":
                self._finished_before.add(run_id)
            else:
                self.client.update_run(run_id, status="RUNNING")
        else:
            run = self.client.create_run(self.experiment_id, run_name=trial_name,
                                         tags={PARENT_TAG: self.parent_id, TRIAL_TAG: trial_id, **tags})
            run_id, logged = run.info.run_id, {}
            self._logged_epoch[run_id] = -1
        # a found run misses the params a driver killed right after creating it had not logged yet
        missing = [Param(k, v) for k, v in flatten(params).items() if k not in logged]
        if missing:
            self.client.log_batch(run_id, params=missing)
        self._children[trial_id] = run_id
        return run_id

    def log_epoch(self, run_id: str, result: dict[str, Any]) -> None:
        """Per-epoch metrics with step = epoch; epochs already logged (a resumed trial) are skipped."""
        epoch = int(result["epoch"])
        if epoch <= self._logged_epoch.get(run_id, -1):
            return
        now = int(time.time() * 1000)
        metrics = [Metric(key, float(result[key]), now, epoch) for key in EPOCH_METRICS if key in result]
        self.client.log_batch(run_id, metrics=metrics)
        self._logged_epoch[run_id] = epoch

    def finish_child(self, run_id: str, result: dict[str, Any] | None, error: str | None = None,
                     stop: dict[str, Any] | None = None) -> None:
        """End a child run FINISHED (or FAILED with ``error``). A full-budget trial logs its final
        accuracies; one a scheduler stopped (``stop``: its decision) logs none, only its size, and is
        tagged ``stopped_at_epoch`` and ``stop_reason``. A run whose completion was recorded before is left
        as it is (see class docstring)."""
        if run_id in self._finished_before:
            return
        if stop is not None:
            self.client.set_tag(run_id, "stopped_at_epoch", str(stop["epoch"]))
            self.client.set_tag(run_id, "stop_reason", stop["reason"])
            if result and "ticket_bits" in result:
                self.client.log_batch(run_id, metrics=[Metric("ticket_bits", float(result["ticket_bits"]), int(time.time() * 1000), 0)])
        elif result and trained_full_budget(result):
            final = {"final_val_accuracy": result["best_val_accuracy"], "final_test_accuracy": result["best_test_accuracy"],
                     "ticket_bits": result["ticket_bits"], "best_epoch": result["best_epoch"]}
            now = int(time.time() * 1000)
            self.client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in final.items()])
        if error:
            self.client.set_tag(run_id, "error", error[:5000])
        self.client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED if error else RunStatus.FINISHED))
