"""One default-sweep trial, broken down: where its wall time goes, directly and under Ray Tune.

The trial is a point of ``sweeps/configs/digits.toml`` (Conv6 on digits, 6 epochs, batch 32; by default
the frozen source k = 0.5, f = 0.4, proportional lock share), on one thread as the sweep runs it.

* ``direct``: a fresh Python process calls :func:`frozen_slt.training.loop.fit` with a checkpoint store that
  writes like the sweep's (one fsync'd checkpoint per evaluation). The phases are timed by wrapping the
  functions ``fit`` calls (data, model build, optimizer, training epochs, evaluations, checkpoints):
  what is measured is exactly what ``fit`` does.
* ``ray``: ``--trials`` such points (seeds 0, 1, ...) as one Ray Tune experiment through the sweep's
  own trainable (``trainables.tune_trainable.train_trial``), one trial at a time, with actors reused
  between trials as the sweep does (``--no-reuse-actors``: a new worker process per trial, Ray's
  default). The trainable is wrapped so that it times the same phases inside the worker plus
  ``tune.report`` (which persists the final checkpoint into the storage; earlier epochs' state stays in the
  trial's own directory, as in a sweep with local storage); the driver times ``ray.init`` and
  ``Tuner.fit``. The Ray overhead of a trial is ``Tuner.fit`` minus the in-worker ``fit``, per trial.

    python benchmarks/trial.py                           # both, about a minute and a half on 2 cores
    python benchmarks/trial.py --mode ray --no-reuse-actors
    python benchmarks/trial.py --mode direct --family dense
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POINTS = {
    "frozen": {"family": "frozen", "sparsity": 0.5, "freeze_ratio": 0.4, "lock_share": "proportional", "seed": 0},
    "pruned": {"family": "pruned", "sparsity": 0.5, "freeze_ratio": 0.4, "seed": 0},
    "dense": {"family": "dense", "sparsity": 0.5, "seed": 0},
    "weight_trained": {"family": "weight_trained", "seed": 0},
}
#: fit's collaborators, timed by wrapping them in frozen_slt.training.loop's namespace (fit looks them up there).
PHASES = {"load_dataset": "data", "build_network": "model build", "make_optimizer": "optimizer",
          "train_epoch": "training steps", "evaluate_splits": "evaluations", "_save": "checkpoints"}


def install_timers(totals: dict[str, float]) -> None:
    """Wrap fit's collaborators (and ``tune.report`` when Ray is loaded) so their seconds add up in ``totals``."""
    import frozen_slt.training.loop as train

    def timed(function, phase):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                totals[phase] += time.perf_counter() - start
        return wrapper

    for name, phase in PHASES.items():
        setattr(train, name, timed(getattr(train, name), phase))
    if "ray.tune" in sys.modules:
        from ray import tune

        tune.report = timed(tune.report, "reporting (tune.report)")


def base_and_config(point: dict):
    sys.path.insert(0, str(ROOT))
    from frozen_slt.config.points import point_config
    from sweeps.spec import DEFAULT_CONFIG, load_sweep_spec

    base = load_sweep_spec(DEFAULT_CONFIG).base_config()
    return base, point_config(base, point)


def direct_child(point: dict, spawned: float) -> dict:
    """Run in a fresh process: the trial through ``fit`` directly, timed by phase."""
    started = time.time()
    import torch

    from frozen_slt.training.checkpoint import write_checkpoint
    from frozen_slt.training.loop import fit

    base, config = base_and_config(point)
    imported = time.time()
    torch.set_num_threads(1)
    totals: dict[str, float] = defaultdict(float)
    install_timers(totals)
    with tempfile.TemporaryDirectory() as directory:
        class Store:  # writes like the sweep's TuneStore: one fsync'd state file per evaluation
            def load(self):
                return None

            def save(self, state):
                write_checkpoint(Path(directory) / "state.pt", state)

        fit_start = time.perf_counter()
        fit(config, store=Store())
        fit_seconds = time.perf_counter() - fit_start
    phases = {"process start and imports": imported - spawned, **totals}
    phases["rest of fit (bookkeeping)"] = fit_seconds - sum(totals.values())
    return {"phases": phases, "fit": fit_seconds, "total": time.time() - spawned,
            "python start to first line": started - spawned}


def run_direct(family: str) -> dict:
    spawned = time.time()
    output = subprocess.run([sys.executable, __file__, "--direct-child", family, str(spawned)], check=True,
                            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout
    return json.loads(output.strip().splitlines()[-1])


def timed_trial(config, base, fault=None, state_root=None, report_dir=None):
    """The sweep's trainable, timed by phase inside the worker.

    Tune ends a trial as soon as it reports ``done``, before the trainable returns, so the timings so far
    are written to ``report_dir`` just before every ``tune.report`` (the last report's own time is not in them).
    """
    entered = time.time()
    from ray import tune

    import frozen_slt.training.loop as train
    from trainables.tune_trainable import train_trial

    for name in PHASES:  # undo a previous trial's timers in this (reused) worker
        setattr(train, name, inspect.unwrap(getattr(train, name)))
    tune.report = inspect.unwrap(tune.report)
    totals: dict[str, float] = defaultdict(float)
    install_timers(totals)
    start = time.perf_counter()
    report = tune.report
    record = Path(report_dir, f"{entered:.6f}-{os.getpid()}.json")  # one file per trial, whatever worker runs it

    def report_and_record(*args, **kwargs):
        record.write_text(json.dumps(
            {"entered": entered, "left": time.time(), "fit": time.perf_counter() - start, "phases": totals,
             "pid": os.getpid()}))
        return report(*args, **kwargs)

    report_and_record.__wrapped__ = report
    tune.report = report_and_record
    train_trial(config["point"], base, fault, state_root)


def run_ray(family: str, trials: int, reuse_actors: bool) -> list[dict]:
    """``trials`` copies of the point (differing only in seed) run one after another in one Tuner."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private local Ray for one measurement
    sys.path.insert(0, str(ROOT))
    import ray
    from ray import tune

    from sweeps.cluster import start_ray

    base, _ = base_and_config(POINTS[family])
    points = [{**POINTS[family], "seed": seed} for seed in range(trials)]
    with tempfile.TemporaryDirectory() as directory:
        begin = time.time()
        start_ray(None, ROOT / "trainables", log_to_driver=False)
        initialised = time.time()
        trainable = tune.with_resources(tune.with_parameters(
            timed_trial, base=base.to_dict(), state_root=str(Path(directory) / "trial-state"), report_dir=directory),
            {"cpu": 1})
        tuner = tune.Tuner(trainable, param_space={"point": tune.grid_search(points)},
                           tune_config=tune.TuneConfig(max_concurrent_trials=1, reuse_actors=reuse_actors),
                           run_config=tune.RunConfig(name="trial-benchmark", storage_path=str(Path(directory) / "ray"),
                                                     verbose=0, checkpoint_config=tune.CheckpointConfig(num_to_keep=None)))
        fit_start = time.time()
        grid = tuner.fit()
        fit_end = time.time()
        if grid.errors:
            raise SystemExit(f"a trial failed: {grid.errors[0]}")
        workers = sorted((json.loads(path.read_text()) for path in Path(directory).glob("*.json")), key=lambda w: w["entered"])
        ray.shutdown()
    results, previous_end = [], fit_start
    for index, worker in enumerate(workers):
        following = workers[index + 1]["entered"] if index + 1 < len(workers) else fit_end
        phases = {"ray.init (driver)": initialised - begin if index == 0 else 0.0,
                  "from the previous trial's last report (or Tuner.fit) to this trial's first line": worker["entered"] - previous_end,
                  **worker["phases"], "rest of fit (bookkeeping)": worker["fit"] - sum(worker["phases"].values())}
        previous_end = worker["left"]
        results.append({"phases": phases, "fit": worker["fit"], "pid": worker["pid"],
                        "span": following - (fit_start if index == 0 else workers[index - 1]["left"])})
    results[-1]["tuner_fit"] = fit_end - fit_start
    return results


def show(title: str, result: dict) -> None:
    print(title)
    for phase, seconds in result["phases"].items():
        print(f"  {phase:<52} {seconds:7.2f} s")
    print(f"  {'fit as a whole':<52} {result['fit']:7.2f} s")


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--direct-child":
        print(json.dumps(direct_child(POINTS[sys.argv[2]], float(sys.argv[3]))))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("direct", "ray", "both"), default="both")
    parser.add_argument("--family", choices=sorted(POINTS), default="frozen")
    parser.add_argument("--trials", type=int, default=2, help="trials run one after another under Ray")
    parser.add_argument("--no-reuse-actors", action="store_true", help="a new worker process per trial (Ray's default)")
    args = parser.parse_args()
    from paired import load_average

    print(f"point {POINTS[args.family]}, load average {load_average()}")
    direct = None
    if args.mode in ("direct", "both"):
        direct = run_direct(args.family)
        show(f"direct: a fresh process calling fit ({direct['total']:.2f} s in all)", direct)
    if args.mode in ("ray", "both"):
        reuse = not args.no_reuse_actors
        ray_results = run_ray(args.family, args.trials, reuse)
        for index, result in enumerate(ray_results, start=1):
            show(f"Ray Tune, trial {index} of {args.trials} (worker pid {result['pid']}, reuse_actors={reuse}): "
                 f"{result['span']:.2f} s from the previous trial's last report to the next trial's first line", result)
        tuner_fit = ray_results[-1]["tuner_fit"]
        fits = sum(result["fit"] for result in ray_results)
        print(f"Tuner.fit {tuner_fit:.2f} s for {args.trials} trials; fit in the workers {fits:.2f} s; "
              f"Ray overhead per trial {(tuner_fit - fits) / args.trials:.2f} s")
        if direct:
            print("fit in a worker / fit direct: " + ", ".join(f"{r['fit'] / direct['fit']:.2f}x" for r in ray_results))
    print(f"load average {load_average()}")


if __name__ == "__main__":
    main()
