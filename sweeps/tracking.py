"""MLflow records of a sweep: one parent run, one nested child run per trial, written from the driver.

Logging from the driver (a Tune callback) keeps one writer per store and works on a cluster whose
workers cannot reach the tracking server. A resumed sweep finds its parent run again (its id is kept in
the sweep's state file) and each child by the Ray trial id tag; epochs already logged are not logged
again, so a resumed or retried trial leaves no duplicate points. As trials finish, the parent run gets the
hypervolume history and refreshed front files (sweeps.live).
"""

from __future__ import annotations

import logging
import subprocess
import time
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient
from ray import tune

from frozen_slt.config.experiment import ExperimentConfig
from frozen_slt.config.points import coordinates, point_config
from trainables.tune_trainable import trained_full_budget, trial_point

from .live import LiveFronts, read_live_settings
from .outcome import record_of
from .scheduler import stop_records
from .tickets import artifact_uri, hand_back_ticket
from .trial_runs import (  # noqa: F401 (tests import them from here)
    PARENT_TAG,
    TRIAL_TAG,
    TrialLogger,
    flatten,
)

log = logging.getLogger(__name__)

PACKAGES = ("frozen-slt", "torch", "torchvision", "torch-geometric", "ray", "optuna", "mlflow", "numpy")


def default_tracking_uri() -> str:
    """A sqlite database in the working directory (MLflow 3 refuses a plain directory store by default)."""
    return f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def browse_instructions(tracking_uri: str, experiment_id: str, run_id: str, artifact: str | None = None) -> list[str]:
    """How to look at a sweep in the MLflow UI: the command that serves a local store on 127.0.0.1 (none
    for a tracking server) and the three pages to open, the experiment's runs, the parent run's
    artifacts (showing ``artifact``) and its metric charts (the hypervolume history). MLflow 3 opens an
    experiment on its GenAI overview; these routes of its UI (hash router, ``workflowType`` picks the
    model-training view) go straight to the pages."""
    lines = []
    if tracking_uri.startswith(("http://", "https://")):
        base = tracking_uri.rstrip("/")
    else:
        base = "http://127.0.0.1:5000"
        lines.append(f"mlflow ui --backend-store-uri {tracking_uri} --host 127.0.0.1 --port 5000")
    view = "?workflowType=machine_learning"
    lines.append(f"runs:   {base}/#/experiments/{experiment_id}/runs{view}")
    lines.append(f"fronts: {base}/#/experiments/{experiment_id}/runs/{run_id}/artifacts{'/' + artifact if artifact else ''}{view}")
    lines.append(f"charts: {base}/#/experiments/{experiment_id}/runs/{run_id}/model-metrics{view}")
    return lines


def dashboard_instructions(storage_url: str) -> list[str]:
    """How to watch an Optuna-mode sweep's studies in optuna-dashboard, live while it runs: the command that
    serves them on 127.0.0.1 and the page to open."""
    return [f"optuna-dashboard {storage_url} --host 127.0.0.1 --port 8080", "studies: http://127.0.0.1:8080/dashboard"]


def git_revision() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[f"version.{name}"] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[f"version.{name}"] = "not installed"
    return versions


class SweepTracker:
    """The sweep's MLflow experiment and parent run."""

    def __init__(self, tracking_uri: str, experiment_name: str, artifact_root: Path):
        self.client = MlflowClient(tracking_uri)
        experiment = self.client.get_experiment_by_name(experiment_name)
        if experiment is None:
            self.experiment_id = self.client.create_experiment(experiment_name, artifact_location=artifact_root.resolve().as_uri())
        else:
            self.experiment_id = experiment.experiment_id
        self.parent_id = ""

    def open_parent(self, run_name: str, params: dict[str, Any], parent_id: str | None = None) -> str:
        """Reuse ``parent_id`` (a resumed sweep) or create the parent run with provenance tags and params."""
        if parent_id is not None:
            self.parent_id = parent_id
            self.client.update_run(parent_id, status="RUNNING")
            return parent_id
        tags = {"git_revision": git_revision(), **package_versions(), "sweep": run_name}
        run = self.client.create_run(self.experiment_id, run_name=run_name, tags=tags)
        self.parent_id = run.info.run_id
        self.client.log_batch(self.parent_id, params=[Param(k, v) for k, v in flatten(params).items()])
        return self.parent_id

    @contextmanager
    def parent_guard(self) -> Iterator[None]:
        """Inside it, an interrupt (Ctrl-C) ends the parent run KILLED and any other exception FAILED, so a
        sweep that stops early never leaves its parent RUNNING; the exception goes on."""
        try:
            yield
        except KeyboardInterrupt:
            self.end("KILLED")
            raise
        except BaseException:
            self.end("FAILED")
            raise

    def child_runs(self) -> dict[str, Any]:
        """``{Ray trial id: MLflow run}`` of the parent's child runs."""
        children = self.client.search_runs([self.experiment_id], max_results=10000,
                                           filter_string=f"tags.`{PARENT_TAG}` = '{self.parent_id}'")
        return {child.data.tags[TRIAL_TAG]: child for child in children if TRIAL_TAG in child.data.tags}

    def end(self, status: str) -> None:
        """End the parent run with ``status``, and with it every child run still RUNNING (trials the sweep
        stopped); a resumed sweep sets them RUNNING again."""
        running = self.client.search_runs(
            [self.experiment_id], max_results=10000,
            filter_string=f"tags.`{PARENT_TAG}` = '{self.parent_id}' and attributes.status = 'RUNNING'")
        for child in running:
            self.client.set_terminated(child.info.run_id, "KILLED" if status == "KILLED" else "FAILED")
        self.client.set_terminated(self.parent_id, status)

    def publish(self, artifacts: list[Path], fronts: dict[str, Any], status: str) -> None:
        """Front tables, plot, the configuration counts and the early-stopping counts into the parent run, which
        then ends with ``status`` (FINISHED only if every trial did). The hypervolumes and front sizes are its
        metric history, logged as the trials finished (sweeps.live), whose last step holds the final ones."""
        for path in artifacts:
            self.client.log_artifact(self.parent_id, str(path))
        now = int(time.time() * 1000)
        # the fronts are drawn on configurations (mean over their seeds): how many were complete, how many not
        metrics = [Metric(f"configurations_{family}", data["configurations"], now, 0) for family, data in fronts["families"].items()]
        metrics += [Metric(f"incomplete_{family}", len(data["incomplete"]), now, 0) for family, data in fronts["families"].items()]
        summary = fronts.get("early_stopping", {})
        metrics += [Metric(key, summary[key], now, 0) for key in ("trials_stopped", "epochs_trained", "epochs_saved") if key in summary]
        if metrics:
            self.client.log_batch(self.parent_id, metrics=metrics)
        self.end(status)


class MlflowTrialCallback(tune.Callback):
    """Tune callback (runs in the driver) that mirrors every trial into a child run of the parent.

    It holds only plain values, so Ray can store it with the experiment and bring it back on restore (a
    resumed sweep runs the callback it stored). It also keeps the parent's live fronts (sweeps.live), with
    the settings the sweep's state file holds for the driver now running, rebuilt from MLflow at each start.
    """

    scheduler_log: str | None = None  # the MO-ASHA decision log, to tag the trials it stopped (None: FIFO)
    state_path: str | None = None  # the sweep's state file, with the live fronts' settings (None: no live fronts)
    _live: LiveFronts | None = None  # also for a callback pickled before it existed

    def __init__(self, tracking_uri: str, parent_id: str, base_config: dict[str, Any], tickets_dir: str,
                 scheduler_log: str | None = None, state_path: str | None = None):
        self.tracking_uri, self.parent_id, self.base_config = tracking_uri, parent_id, base_config
        self.tickets_dir, self.scheduler_log, self.state_path = tickets_dir, scheduler_log, state_path
        self._logger: TrialLogger | None = None
        self._live = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_logger": None, "_live": None}

    def setup(self, stop=None, num_samples=None, total_num_samples=None, **info):
        # before any trial event of this driver: the trials finished before (a resumed sweep) and the steps logged
        settings = read_live_settings(self.state_path)
        self._live = None
        if settings is not None:
            self._live = LiveFronts(self.logger.client, self.parent_id, settings, ExperimentConfig.from_dict(self.base_config))
            self._live.restore()

    def hypervolumes(self) -> dict[str, float | None]:
        """Each mapped family's hypervolume now ({} without live fronts), for the progress lines."""
        return self._live.hypervolumes() if self._live is not None else {}

    def _count(self, trial, run_id: str, result: dict[str, Any] | None, stop: dict[str, Any] | None = None,
               ticket: Path | None = None) -> None:
        """Count a finished trial in the live fronts (a trial without a result did not finish anything)."""
        if self._live is None or not result:
            return
        record = record_of(result, trial.config, self._live.base)
        record["mlflow_run_id"] = run_id
        if stop is not None:
            epoch = stop["epoch"]
            record.update(stopped_at_epoch=None if epoch is None else int(epoch), stop_reason=stop["reason"])
        elif ticket is not None:
            record.update(ticket_file=str(ticket), ticket_artifact=artifact_uri(run_id, trial.trial_id))
        self._live.add(trial.trial_id, record, stopped=stop is not None)

    def on_step(self, iteration, trials, **info):
        if self._live is not None:
            self._live.refresh_if_due()  # a refresh the interval held back, once it has passed

    @property
    def logger(self) -> TrialLogger:
        if self._logger is None:
            self._logger = TrialLogger(self.tracking_uri, self.parent_id)
        return self._logger

    def _run_id(self, trial) -> str:
        point = trial_point(trial.config)
        config = point_config(ExperimentConfig.from_dict(self.base_config), point)
        tags = {"family": config.family, "config_hash": config.config_hash()}
        params = {"point": dict(point), "ticket": coordinates(point), "config": config.to_dict()}
        if "box" in trial.config:  # an Optuna trial: its study and the box coordinates its sampler chose (sweeps.boxes)
            params["box"], params["study"] = dict(trial.config["box"]), trial.config["study"]
        return self.logger.child(trial.trial_id, str(trial), tags, params)

    def on_trial_start(self, iteration, trials, trial, **info):
        self._run_id(trial)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        run_id = self._run_id(trial)
        self.logger.log_epoch(run_id, result)
        self.logger.note_node(run_id, result)

    def on_trial_recover(self, iteration, trials, trial, **info):
        # Ray calls this after the trial failed (its error file written) and before it is scheduled again
        self.logger.note_retry(self._run_id(trial), trial.num_failures, last_error(trial))

    def recorded_before(self, trial_id: str) -> bool:
        """Whether an earlier driver of the sweep recorded ``trial_id``'s completion (TrialLogger)."""
        return self.logger.recorded_before(trial_id)

    def on_trial_complete(self, iteration, trials, trial, **info):
        run_id = self._run_id(trial)
        result = trial.last_result or None
        if result and not trained_full_budget(result):  # stopped early by the scheduler: no ticket, no final values
            stop = stop_records(self.scheduler_log).get(trial.trial_id) or {"epoch": result.get("epoch"),
                                                                             "reason": "stopped before its last epoch"}
            self.logger.finish_child(run_id, result, stop=stop)
            self._count(trial, run_id, result, stop=stop)
            return
        ticket = hand_back_ticket(self.logger.client, run_id, trial.checkpoint, self.tickets_dir, trial.trial_id)
        self.logger.finish_child(run_id, result)
        self._count(trial, run_id, result, ticket=ticket)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.logger.finish_child(self._run_id(trial), None, error=last_error(trial))


def last_error(trial) -> str:
    """The last line of a failed trial's error trace (``SomeError: message``).

    Ray writes the trace next to the trial's local staging copy first and syncs it to the storage path
    later, so the local file is read first and the stored one only as a fallback.
    """
    local = Path(trial.error_file) if trial.error_file else None
    trace = local.read_text() if local is not None and local.is_file() else (trial.get_error() or "")
    lines = [line for line in str(trace).splitlines() if line.strip()]
    return lines[-1] if lines else "trial failed (Ray kept no error trace)"
