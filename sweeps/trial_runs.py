"""The child runs of a sweep's MLflow parent run: one per Ray trial, created on the trial's first event and
found again by its trial id tag after a resume, so a resumed or retried trial leaves no duplicate points.

Each child run also says where its trial ran (tags ``node_ip`` and ``hostname``: the node of its latest
result; ``ran_on``: every node it reported from, in order) and how often Ray retried it (``retries``,
with ``last_retry_error``), as on a cluster that lost a node.
"""

from __future__ import annotations

import time
from typing import Any

from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.tracking import MlflowClient

from trainables.tune_trainable import trained_full_budget

from .outcome import node_label

PARENT_TAG = "mlflow.parentRunId"
TRIAL_TAG = "ray_trial_id"
EPOCH_METRICS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy",
                 "realised_sparsity", "lr", "best_val_accuracy", "best_test_accuracy")
RAN_ON_TAG = "ran_on"
RETRIES_TAG = "retries"
RETRY_ERROR_TAG = "last_retry_error"
STOP_EPOCH_TAG, STOP_REASON_TAG = "stopped_at_epoch", "stop_reason"  # on the run of a trial a scheduler stopped


def retried_trials(runs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{trial id: {"retries", "error", "ran_on"}}`` of the child runs ``runs`` (``{trial id: MLflow run}``) whose
    trial Ray retried: how often, the last line of the error before the last retry, and the nodes it ran on."""
    retried = {}
    for trial_id, run in runs.items():
        tags = run.data.tags
        if int(tags.get(RETRIES_TAG, 0)) > 0:
            retried[trial_id] = {"retries": int(tags[RETRIES_TAG]), "error": tags.get(RETRY_ERROR_TAG, ""),
                                 "ran_on": tags.get(RAN_ON_TAG, "")}
    return retried


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
        self._ran_on: dict[str, list[str]] = {}  # run id -> node labels, in the order the trial reported from them

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
            ran_on = found[0].data.tags.get(RAN_ON_TAG)
            self._ran_on[run_id] = ran_on.split(", ") if ran_on else []
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

    def note_node(self, run_id: str, result: dict[str, Any]) -> None:
        """Tag the run with the node ``result`` came from when it differs from the last one recorded (one
        write per node, not per epoch). A run whose completion was recorded before is left as it is."""
        label = node_label(result)
        history = self._ran_on.setdefault(run_id, [])
        if label is None or run_id in self._finished_before or (history and history[-1] == label):
            return
        history.append(label)
        tags = [RunTag("node_ip", str(result["node_ip"])), RunTag("hostname", str(result.get("hostname", "?"))),
                RunTag(RAN_ON_TAG, ", ".join(history))]
        self.client.log_batch(run_id, tags=tags)

    def note_retry(self, run_id: str, failures: int, error: str) -> None:
        """Ray is retrying the trial after its ``failures``-th failure, whose last line is ``error``."""
        self.client.log_batch(run_id, tags=[RunTag(RETRIES_TAG, str(failures)), RunTag(RETRY_ERROR_TAG, error[:5000])])

    def finish_child(self, run_id: str, result: dict[str, Any] | None, error: str | None = None,
                     stop: dict[str, Any] | None = None) -> None:
        """End a child run FINISHED (or FAILED with ``error``). A full-budget trial logs its final
        accuracies; one a scheduler stopped (``stop``: its decision) logs none, only its size, and is
        tagged ``stopped_at_epoch`` and ``stop_reason``. A run whose completion was recorded before is left
        as it is (see class docstring)."""
        if run_id in self._finished_before:
            return
        if stop is not None:
            self.client.set_tag(run_id, STOP_EPOCH_TAG, str(stop["epoch"]))
            self.client.set_tag(run_id, STOP_REASON_TAG, stop["reason"])
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
