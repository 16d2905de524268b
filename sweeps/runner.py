"""Running a sweep: Ray Tune trials, grid or Optuna search, MLflow records, resume, and the fronts at the end."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from frozen_slt.errors import SweepConfigError, SweepError
from frozen_slt.files import write_atomically
from trainables.tune_trainable import train_trial

from .cluster import (
    check_resources,
    local_ray_record,
    reap_local_ray,
    start_ray,
    warn_if_storage_is_not_shared,
)
from .fronts import compute_fronts, reference_for, write_front_files
from .live import LiveFronts, LiveSettings
from .outcome import SweepOutcome, collect, early_stopping_summary
from .progress import ProgressCallback
from .scheduler import MultiObjectiveAsha, stop_records
from .search import FamilySearch
from .space import SweepPlan, largest_ticket_bits, plan_sweep, search_budgets
from .spec import SweepSpec
from .stores import check_stores
from .tickets import artifact_uri, hand_back_ticket
from .tracking import SweepTracker, dashboard_instructions
from .trial_runs import retried_trials

TRAINABLES = Path(__file__).resolve().parents[1] / "trainables"


@dataclass(frozen=True)
class SweepOptions:
    """Where a sweep runs and records (not part of what it computes)."""

    storage: str  # Ray results: an absolute path, or a URI such as s3://bucket/prefix on a cluster
    local_dir: Path  # sweep state, Optuna study, front tables: the storage path itself when it is local
    tracking_uri: str
    address: str | None = None
    resume: bool = False
    inject_fault_epoch: int | None = None
    verbose: int = 1  # 0: final summary only, 1: a line per trial, 2: Ray's own tables and trial logs too


def _state_path(options: SweepOptions, spec: SweepSpec) -> Path:
    return options.local_dir / f"{spec.run_name}.sweep.json"


def _scheduler_path(spec: SweepSpec, options: SweepOptions) -> Path:
    return options.local_dir / f"{spec.run_name}.scheduler.json"


def _scheduler(spec: SweepSpec, options: SweepOptions) -> MultiObjectiveAsha | None:
    if spec.scheduler == "fifo":
        return None
    return MultiObjectiveAsha(spec.rungs(), spec.reduction_factor, str(_scheduler_path(spec, options)))


def optuna_url(spec: SweepSpec, options: SweepOptions) -> str:
    """The studies' storage: ``[optuna] storage``, else a sqlite database next to the sweep's state."""
    return spec.optuna_storage or f"sqlite:///{(options.local_dir / f'{spec.run_name}.optuna.db').resolve()}"


def _searcher(spec: SweepSpec, options: SweepOptions) -> FamilySearch:
    """One Optuna study per family (per family and size, size-aware), named ``<run name>.<family>...``."""
    url = optuna_url(spec, options)
    settings = {"strategy": spec.strategy, "budgets": search_budgets(spec), "sparsity_range": list(spec.sparsity_range),
                "freeze_range": list(spec.freeze_range), "seed": spec.sampler_seed, "trial_seed": spec.trial_seed,
                "baseline": spec.weight_trained_baseline, "prefix": spec.run_name,
                "repeats": spec.repeats}
    return FamilySearch(settings, url)


def _tuner(spec: SweepSpec, options: SweepOptions, plan: SweepPlan, callback, restore: bool):
    from ray import tune

    base = spec.base_config().to_dict()
    fault = None
    if options.inject_fault_epoch is not None:
        fault = {"epoch": options.inject_fault_epoch, "marker_dir": str(options.local_dir / f"{spec.run_name}.faults")}
    state_root = _trial_state_root(spec, options)
    trainable = tune.with_resources(
        tune.with_parameters(train_trial, base=base, fault=fault, state_root=None if state_root is None else str(state_root),
                             keep=spec.storage_keep),
        {"cpu": spec.cpus_per_trial, "gpu": spec.gpus_per_trial},
    )
    if restore:
        return tune.Tuner.restore(_experiment_path(options, spec), trainable, resume_unfinished=True, resume_errored=True)
    if spec.search == "grid":
        # "seeds": what every configuration expects, so its records can tell a configuration whose seeds did not all finish
        param_space = {"point": tune.grid_search(plan.points), "seeds": list(spec.expected_seeds())}
        search_alg, samples = None, 1
    else:
        search_alg = _searcher(spec, options)
        param_space, samples = {}, search_alg.total
    return tune.Tuner(
        trainable,
        param_space=param_space,
        # reuse_actors: a worker process runs trial after trial, so torch, torch._dynamo (the optimizer's first
        # call) and the dataset are imported and loaded once per worker, not per trial (benchmarks/trial.py).
        tune_config=tune.TuneConfig(search_alg=search_alg, scheduler=_scheduler(spec, options), num_samples=samples,
                                    max_concurrent_trials=spec.max_concurrent, reuse_actors=True),
        run_config=tune.RunConfig(
            name=spec.run_name, storage_path=options.storage, verbose=1 if options.verbose >= 2 else 0,
            # the MLflow callback runs first: it tells the progress lines which trials were reported before
            callbacks=[callback, *([ProgressCallback(reported_before=callback.recorded_before, hypervolumes=callback.hypervolumes)]
                                   if options.verbose >= 1 else [])],
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            # trials with a state directory hand Ray their final checkpoint alone, which must never be deleted;
            # remote storage gets every epoch's, of which the newest two are kept (trainables.tune_trainable)
            checkpoint_config=tune.CheckpointConfig(num_to_keep=None if state_root is not None else 2),
        ),
    )


def _trial_state_root(spec: SweepSpec, options: SweepOptions) -> Path | None:
    """Where trials keep their resumable state (local storage only; see trainables.tune_trainable)."""
    return options.local_dir / f"{spec.run_name}.trial-state" if "://" not in options.storage else None


def _remove_trial_state(spec: SweepSpec, options: SweepOptions, trials: set[str] | None = None) -> None:
    """Remove the state of ``trials`` (None: of every trial, and the folder). Only once Ray's experiment
    snapshot holds them finished (a resumed Ray restarts a trial it does not know finished, and that
    trial then continues from its state), or when a new Ray experiment begins (no trial of the last one
    resumes)."""
    root = _trial_state_root(spec, options)
    if root is None or not root.is_dir():
        return
    for directory in root.iterdir():
        if trials is None or directory.name in trials:
            shutil.rmtree(directory, ignore_errors=True)
    if trials is None or not any(root.iterdir()):
        shutil.rmtree(root, ignore_errors=True)


def _experiment_path(options: SweepOptions, spec: SweepSpec) -> str:
    return f"{options.storage.rstrip('/')}/{spec.run_name}"


def run_sweep(spec: SweepSpec, options: SweepOptions) -> SweepOutcome:
    """Run (or resume) the sweep to the end and record its fronts; see module docstring.

    Everything that can be checked without Ray is checked first (every grid point as a validated
    ExperimentConfig, the fault drill's epoch, every store the sweep writes (sweeps.stores), the sweep's
    state), so bad input starts no Ray and opens no MLflow run. Once the parent run is open, any
    exception ends it FAILED and an interrupt ends it KILLED, never RUNNING.
    """
    plan = plan_sweep(spec)
    live = _live_settings(spec, options)
    _check_fault_epoch(spec, options.inject_fault_epoch)
    check_stores(options.storage, options.local_dir, options.tracking_uri,
                 optuna_url(spec, options) if spec.search == "optuna" else None)
    restore, state = _prior_state(spec, options)
    import ray

    from .tracking import MlflowTrialCallback

    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")  # save the experiment state often: a kill loses little
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")  # those snapshots are wanted
    if options.verbose < 2:
        # Ray Tune's newer console output prints a configuration box and a TensorBoard hint even when silent
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    reap_local_ray(state.get("local_ray"))
    started = start_ray(options.address, TRAINABLES, log_to_driver=options.verbose >= 2)
    check_resources(spec.cpus_per_trial, spec.gpus_per_trial, ray.cluster_resources(),
                    [node["Resources"] for node in ray.nodes() if node.get("Alive")])
    warn_if_storage_is_not_shared(options.storage)
    options.local_dir.mkdir(parents=True, exist_ok=True)
    tracker = SweepTracker(options.tracking_uri, "frozen-slt", options.local_dir / "mlflow-artifacts")
    parent = tracker.open_parent(spec.run_name, _spec_params(spec), state.get("parent_run_id"))
    if spec.search == "optuna" and options.verbose >= 1:
        print("watch the Optuna studies live with\n" + "\n".join(f"  {line}" for line in dashboard_instructions(
            optuna_url(spec, options))), flush=True)
    with tracker.parent_guard():
        write_atomically(_state_path(options, spec), json.dumps(
            {"parent_run_id": parent, "tracking_uri": options.tracking_uri, "run_name": spec.run_name,
             # the retry budget Ray holds for this sweep (unknown for a sweep begun before it was recorded)
             "max_failures": state.get("max_failures") if restore else spec.max_failures,
             "local_ray": local_ray_record() if started else None,
             # read by the MLflow callback, also by one Ray stored with the experiment when it began (sweeps.live)
             "live": live.to_dict()}).encode())
        base = spec.base_config()
        scheduler_log = _scheduler_path(spec, options)
        if not restore:  # a scheduler log or trial state without its Ray experiment belongs to no run
            scheduler_log.unlink(missing_ok=True)
            _remove_trial_state(spec, options)
        callback = MlflowTrialCallback(options.tracking_uri, parent, base.to_dict(), str(_tickets_dir(spec, options)),
                                       str(scheduler_log), str(_state_path(options, spec)))
        grid = _tuner(spec, options, plan, callback, restore).fit()
        outcome = collect(grid, base, stop_records(scheduler_log))
        # fit() returns after Ray's last snapshot, which holds these trials finished; failed and unfinished ones resume
        _remove_trial_state(spec, options, None if outcome.complete else
                            {record["trial_id"] for record in outcome.records + outcome.stopped})
        outcome.skipped, outcome.experiment_id, outcome.parent_run_id = plan.skipped, tracker.experiment_id, parent
        _publish(spec, options, tracker, outcome, live)
    return outcome


def _check_fault_epoch(spec: SweepSpec, epoch: int | None) -> None:
    """The fault drill fails a trial in the report of a trained epoch, 1 to the budget (trainables.tune_trainable
    ``_maybe_fail``; epoch 0 is the evaluation before training, whose failure would test no checkpoint)."""
    epochs = spec.base_config().train.epochs
    if epoch is not None and not 1 <= epoch <= epochs:
        count = f"{epochs} {'epoch' if epochs == 1 else 'epochs'}"
        raise SweepConfigError(f"--inject-fault {epoch} is not an epoch the trials train: use 1 to {epochs} (the trials "
                               f"of sweep {spec.name!r}{' under --smoke' if spec.smoke else ''} train {count}; "
                               "epoch 0 is the evaluation before training)")


def _prior_state(spec: SweepSpec, options: SweepOptions) -> tuple[bool, dict[str, Any]]:
    """Whether Ray holds an interrupted run of this sweep, and the sweep's state file (parent run, store)."""
    from ray import tune

    restore = tune.Tuner.can_restore(_experiment_path(options, spec))
    if options.resume and not restore:
        raise SweepError(f"--resume: no interrupted sweep {spec.run_name} under {options.storage}")
    state_path = _state_path(options, spec)
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    if state.get("tracking_uri", options.tracking_uri) != options.tracking_uri:
        raise SweepError(f"sweep {spec.run_name} records into {state['tracking_uri']}, not {options.tracking_uri}; "
                         f"continue it with --tracking-uri {state['tracking_uri']} (or give it other --storage)")
    started_with = state.get("max_failures")
    if restore and started_with is not None and started_with != spec.max_failures:
        raise SweepConfigError(f"max_failures {spec.max_failures} (--max-failures or [resources] max_failures) is not the "
                               f"{started_with} sweep {spec.run_name} started with, and Ray keeps a sweep's retry budget "
                               f"when it resumes it; continue it with --max-failures {started_with}")
    return restore, state


def _results_dir(spec: SweepSpec, options: SweepOptions) -> Path:
    return options.local_dir / f"{spec.run_name}.results"


def _tickets_dir(spec: SweepSpec, options: SweepOptions) -> Path:
    return _results_dir(spec, options) / "tickets"


def _hand_back_tickets(spec: SweepSpec, options: SweepOptions, tracker: SweepTracker, outcome: SweepOutcome) -> None:
    """Give every finished ticket trial's record its ticket file and MLflow run (see sweeps.tickets), and the
    outcome the trials Ray retried (their child runs count the retries)."""
    runs = tracker.child_runs()
    run_ids = {trial_id: run.info.run_id for trial_id, run in runs.items()}
    outcome.retried = retried_trials(runs)
    for record in outcome.records:
        trial_id = record["trial_id"]
        record["mlflow_run_id"] = run_ids.get(trial_id, "")
        if record["family"] == "weight_trained" or not record["mlflow_run_id"]:
            continue
        path = hand_back_ticket(tracker.client, record["mlflow_run_id"], outcome.checkpoints.get(trial_id),
                                _tickets_dir(spec, options), trial_id)
        if path is not None:
            record["ticket_file"] = str(path)
            record["ticket_artifact"] = artifact_uri(record["mlflow_run_id"], trial_id)


def _spec_params(spec: SweepSpec) -> dict[str, Any]:
    params = {key: value for key, value in asdict(spec).items() if key != "experiment"} | {"experiment": spec.experiment}
    return params | ({"family_budgets": search_budgets(spec)} if spec.search == "optuna" else {})


def _live_settings(spec: SweepSpec, options: SweepOptions) -> LiveSettings:
    """The live fronts' settings: the hypervolume reference from the sweep's plan, the refresh interval, the
    families, the results folder, the plot's title and the seeds each configuration trains."""
    base = spec.base_config()
    return LiveSettings(reference_for(largest_ticket_bits(spec)), spec.refresh_s, spec.families,
                        str(_results_dir(spec, options)), f"{spec.name}: {base.model} on {base.dataset}",
                        tuple(spec.expected_seeds()))


def _publish(spec: SweepSpec, options: SweepOptions, tracker: SweepTracker, outcome: SweepOutcome,
             live: LiveSettings) -> None:
    """Fronts (on configurations: sweeps.fronts), tables, plot and text into the parent run, after the last
    step of its hypervolume history (any step a driver killed before it could log is logged first, see
    sweeps.live)."""
    _hand_back_tickets(spec, options, tracker, outcome)
    for record in outcome.records:  # a sweep begun before its trial configs named their seeds
        if record.get("seeds_expected") is None:
            record["seeds_expected"] = list(spec.expected_seeds())
    LiveFronts(tracker.client, outcome.parent_run_id, live, spec.base_config()).restore()
    outcome.fronts = compute_fronts(outcome.records, reference_size=live.reference_size)
    outcome.fronts["early_stopping"] = early_stopping_summary(spec, outcome)
    outcome.artifacts = write_front_files(outcome.fronts, outcome.records, Path(live.directory), live.title,
                                          stopped=outcome.stopped)
    tracker.publish(outcome.artifacts, outcome.fronts, outcome.status)
