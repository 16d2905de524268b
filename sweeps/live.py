"""Live fronts: while a sweep runs, the parent run's hypervolume history and its front files, kept current.

After each finished trial the driver logs ``hypervolume_<family>`` and ``front_size_<family>`` of every
family the sweep maps on the parent run, with step = the number of trials finished so far, so MLflow's
chart view draws how the fronts grew. A trial counts as finished once its child run is completed
FINISHED (sweeps.trial_runs): it trained its whole budget (the weight-trained baseline too), or a
scheduler stopped it early (a step that moves no front). A failed trial does not count: a resumed sweep
retries it, and it counts when it finishes. A family without a full-budget trial yet has hypervolume 0
and an empty front.

Every hypervolume is taken against one reference point, fixed from the sweep's plan before training
(sweeps.space.largest_ticket_bits), the one of the final fronts: the history does not jump when a larger
ticket finishes, and its last value is the published one.

The front tables, plot and text (sweeps.fronts.write_front_files) are refreshed as parent artifacts when a
trial has finished since the last refresh, at most once per ``[tracking] refresh_s`` seconds (0: after
every trial); the end of the sweep writes them once more.

A resumed driver, and the end of every sweep, rebuild the finished trials from the FINISHED child runs in
the order they ended, and the steps already logged from the parent's metric history: a step a killed
driver did not log is logged then, from the trials finished by it, and no step is ever logged twice.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from mlflow.entities import Metric

from frozen_slt.config.experiment import ExperimentConfig

from .fronts import compute_fronts, write_front_files
from .outcome import record_of
from .tickets import TICKET_TAG, artifact_uri
from .trial_runs import PARENT_TAG, STOP_EPOCH_TAG, STOP_REASON_TAG, TRIAL_TAG


@dataclass(frozen=True)
class LiveSettings:
    """What the live fronts need of a sweep: the hypervolume reference size (bits), the refresh interval
    (seconds), the families it maps, where its front files go and the plot's title."""

    reference_size: float
    refresh_s: float
    families: tuple[str, ...]
    directory: str
    title: str
    seeds: tuple[int, ...] = ()  # the seeds each configuration trains (sweeps.fronts: a configuration is complete with all)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "families": list(self.families), "seeds": list(self.seeds)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LiveSettings:
        return cls(float(data["reference_size"]), float(data["refresh_s"]), tuple(data["families"]),
                   str(data["directory"]), str(data["title"]), tuple(int(seed) for seed in data.get("seeds", ())))


def read_live_settings(state_path: str | Path | None) -> LiveSettings | None:
    """The live settings the sweep's state file holds (the runner writes them at each start), None without."""
    if state_path is None or not Path(state_path).is_file():
        return None
    live = json.loads(Path(state_path).read_text()).get("live")
    return None if live is None else LiveSettings.from_dict(live)


def _point_of(params: dict[str, str]) -> dict[str, Any]:
    """A trial's search point from its child run's ``point.*`` params (MLflow keeps them as text)."""
    point: dict[str, Any] = {}
    for key, kind in (("family", str), ("sparsity", float), ("freeze_ratio", float), ("seed", int)):
        if f"point.{key}" in params:
            point[key] = kind(params[f"point.{key}"])
    share = params.get("point.lock_share")
    if share is not None:
        point["lock_share"] = share if share == "proportional" else float(share)
    return point


def finished_entry(run, base: ExperimentConfig) -> tuple[str, dict[str, Any] | None, bool] | None:
    """``(trial id, record, stopped)`` of a FINISHED child run: the row :func:`sweeps.outcome.record_of` makes
    of the trial's last result, rebuilt from the run's params, final metrics and tags (None for a stopped
    trial that logged no epoch: it counts, and has nothing to draw); None for a full-budget run without its
    final metrics (a completion without a result, which did not count)."""
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    stopped = STOP_EPOCH_TAG in tags
    trial_id = tags[TRIAL_TAG]
    if stopped:
        if "ticket_bits" not in metrics or "best_val_accuracy" not in metrics:
            return trial_id, None, True
        values = {"best_val_accuracy": metrics["best_val_accuracy"],
                  "best_test_accuracy": metrics.get("best_test_accuracy", float("nan")), "best_epoch": None}
    elif "final_val_accuracy" in metrics:
        values = {"best_val_accuracy": metrics["final_val_accuracy"], "best_test_accuracy": metrics["final_test_accuracy"],
                  "best_epoch": int(metrics["best_epoch"])}
    else:
        return None
    record = record_of({**values, "ticket_bits": int(metrics["ticket_bits"]), "trial_id": trial_id}, _point_of(params), base)
    record["mlflow_run_id"] = run.info.run_id
    if stopped:
        epoch = tags[STOP_EPOCH_TAG]
        record.update(stopped_at_epoch=int(epoch) if epoch.isdigit() else None, stop_reason=tags.get(STOP_REASON_TAG, ""))
    elif tags.get(TICKET_TAG):
        record.update(ticket_file=tags[TICKET_TAG], ticket_artifact=artifact_uri(run.info.run_id, trial_id))
    return trial_id, record, stopped


class LiveFronts:
    """The finished trials of one sweep, in the order they finished, and what the parent run shows of them
    (see module docstring). ``clock`` (seconds, monotonic) paces the refreshes."""

    def __init__(self, client, parent_id: str, settings: LiveSettings, base: ExperimentConfig,
                 clock: Callable[[], float] = time.monotonic):
        self.client, self.parent_id, self.settings, self.base, self.clock = client, parent_id, settings, base, clock
        self.finished: list[tuple[str, dict[str, Any] | None, bool]] = []  # (trial id, record, stopped), in finishing order
        self.counted: set[str] = set()
        self.step = 0  # the last step logged
        self.fronts = self._fronts()
        self._refreshed_at: float | None = None
        self._pending = False  # a trial finished since the last refresh

    def restore(self) -> int:
        """Rebuild the finished trials from the parent's FINISHED child runs and the steps logged from its
        metric history; log the steps missing (a driver killed between a trial's completion and its step).
        Returns the number of steps it logged."""
        experiment_id = self.client.get_run(self.parent_id).info.experiment_id
        runs = self.client.search_runs(
            [experiment_id], max_results=10000,
            filter_string=f"tags.`{PARENT_TAG}` = '{self.parent_id}' and attributes.status = 'FINISHED'")
        runs = sorted((run for run in runs if TRIAL_TAG in run.data.tags),
                      key=lambda run: (run.info.end_time or 0, run.data.tags[TRIAL_TAG]))
        logged = self.logged_steps()
        self.finished, self.counted, written = [], set(), 0
        for run in runs:
            entry = finished_entry(run, self.base)
            if entry is None or entry[0] in self.counted:
                continue
            self._append(entry)
            if len(self.finished) > logged:
                self._log(len(self.finished), self._fronts())
                written += 1
        self.step = max(logged, len(self.finished))
        self.fronts = self._fronts()
        return written

    def logged_steps(self) -> int:
        """The last step of the parent's hypervolume history (0: none logged)."""
        return max((metric.step for family in self.settings.families
                    for metric in self.client.get_metric_history(self.parent_id, f"hypervolume_{family}")), default=0)

    def add(self, trial_id: str, record: dict[str, Any], stopped: bool = False) -> bool:
        """Count a finished trial: log the next step and refresh the files if due. False (nothing done) for a
        trial counted before, as one a resumed Ray ran to its end again."""
        if trial_id in self.counted:
            return False
        self._append((trial_id, record, stopped))
        self.step += 1
        self.fronts = self._fronts()
        self._log(self.step, self.fronts)
        self._pending = True
        self.refresh_if_due()
        return True

    def hypervolumes(self) -> dict[str, float | None]:
        """Each mapped family's current hypervolume; None for a family no full-budget trial of which finished."""
        families = self.fronts["families"]
        return {family: families[family]["hypervolume"] if family in families else None for family in self.settings.families}

    def refresh_if_due(self) -> bool:
        """Write the front files and log them on the parent run, if a trial finished since the last refresh
        and ``refresh_s`` has passed since it. Returns whether it did."""
        now = self.clock()
        if not self._pending or (self._refreshed_at is not None and now - self._refreshed_at < self.settings.refresh_s):
            return False
        records, stopped = self.records()
        for path in write_front_files(self.fronts, records, Path(self.settings.directory), self.settings.title, stopped):
            self.client.log_artifact(self.parent_id, str(path))
        self._refreshed_at, self._pending = now, False
        return True

    def records(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The full-budget records (the fronts' input) and those of the trials a scheduler stopped."""
        return ([record for _, record, stopped in self.finished if not stopped],
                [record for _, record, stopped in self.finished if stopped and record is not None])

    def _append(self, entry: tuple[str, dict[str, Any] | None, bool]) -> None:
        record = entry[1]
        if record is not None and record.get("seeds_expected") is None and self.settings.seeds:
            record["seeds_expected"] = list(self.settings.seeds)  # a record rebuilt from MLflow does not name them
        self.finished.append(entry)
        self.counted.add(entry[0])

    def _fronts(self) -> dict[str, Any]:
        return compute_fronts(self.records()[0], reference_size=self.settings.reference_size)

    def _log(self, step: int, fronts: dict[str, Any]) -> None:
        now = int(time.time() * 1000)
        metrics = []
        for family in self.settings.families:
            data = fronts["families"].get(family)
            metrics.append(Metric(f"hypervolume_{family}", data["hypervolume"] if data else 0.0, now, step))
            metrics.append(Metric(f"front_size_{family}", len(data["front"]) if data else 0, now, step))
        self.client.log_batch(self.parent_id, metrics=metrics)
