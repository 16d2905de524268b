"""The main job: a sweep of strong-lottery-ticket trials and the accuracy-versus-size Pareto fronts.

    python sweeps/pareto.py                      # the embedded default: digits, three source families
    python sweeps/pareto.py --config sweeps/configs/cifar10-conv6.toml --search optuna --gpus-per-trial 0.25
    python sweeps/pareto.py --smoke              # two one-epoch trials, seconds

A sweep interrupted in any way continues when the same command is run again (or with --resume).
Exit status: 0 when every trial finished, 1 when some failed or did not finish (a first Ctrl-C lets
Ray save and stop: 1), 2 on bad input (found before Ray starts or any MLflow run is opened), 130 when a
second Ctrl-C cuts the stop short.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import the project's packages, not sibling files
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from frozen_slt.errors import FrozenSLTError, SweepConfigError  # noqa: E402
from frozen_slt.imports import allow, is_import_path  # noqa: E402
from sweeps.fronts import format_fronts  # noqa: E402
from sweeps.outcome import placement_lines  # noqa: E402
from sweeps.runner import SweepOptions, optuna_url, run_sweep  # noqa: E402
from sweeps.spec import (  # noqa: E402
    DEFAULT_CONFIG,
    STRATEGIES,
    load_sweep_spec,
    smoke_spec,
)
from sweeps.tracking import (  # noqa: E402
    browse_instructions,
    dashboard_instructions,
    default_tracking_uri,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sweeps/pareto.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="sweep config (TOML); default: %(default)s")
    parser.add_argument("--model", help="replace [experiment] model; a model given by import path (not a built-in "
                        "name, torchvision:NAME or pyg:NAME) is imported only when named here (docs/method.md §13)")
    parser.add_argument("--dataset", help="replace [experiment] dataset; a dataset by import path is imported only when "
                        "named here")
    parser.add_argument("--search", choices=("grid", "optuna"), help="override the config's search")
    parser.add_argument("--num-samples", type=int, help="an Optuna search's ticket configurations (split over the families; "
                                                           "each trains [optuna] repeats seeds, default 1)")
    parser.add_argument("--strategy", choices=STRATEGIES, help="override the config's [optuna] strategy")
    parser.add_argument("--scheduler", choices=("fifo", "mo-asha"),
                        help="override the config's [scheduler] kind: fifo trains every trial to its end, "
                             "mo-asha stops dominated trials early")
    parser.add_argument("--max-concurrent", type=int, help="trials running at once (default: as many as resources allow)")
    parser.add_argument("--gpus-per-trial", type=float, help="GPUs per trial; fractions pack trials on one GPU")
    parser.add_argument("--cpus-per-trial", type=float, help="CPUs per trial")
    parser.add_argument("--max-failures", type=int, metavar="N",
                        help="retries of a failing trial, each from its last epoch (default: the config's [resources] "
                             "max_failures, 2). A lost node fails every trial running on it and each retry resumes on "
                             "another node (or the same one once it is back), so 0 ends those trials FAILED (run the "
                             "command again to retry them); a trial that fails for its own reason (a bug, a NaN) is "
                             "retried as often, each retry costing its epochs up to the failure again")
    parser.add_argument("--address",
                        help="Ray cluster to run on: host:port, auto (the cluster `ray start` recorded on this machine, "
                             "which must answer) or local (a new Ray of the sweep's own); default: $RAY_ADDRESS, else "
                             "the recorded cluster if it answers, else a new local Ray")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite:///./mlflow.db)")
    parser.add_argument("--storage", default="ray_results",
                        help="Ray results: a directory (default: ./ray_results) or a URI like s3://bucket/prefix; "
                             "a multi-node cluster needs storage every node can reach")
    parser.add_argument("--resume", action="store_true", help="require an interrupted sweep to continue (it also resumes without this flag)")
    parser.add_argument("--smoke", action="store_true", help="2 trials x 1 epoch, for a quick check")
    parser.add_argument("--inject-fault", type=int, metavar="EPOCH",
                        help="fault drill: every trial fails once at EPOCH (1 to its epochs) and must recover from "
                             "its checkpoint")
    parser.add_argument("--quiet", action="store_true", help="print only the final summary")
    parser.add_argument("--ray-tables", action="store_true", help="also show Ray Tune's status tables and the trials' logs")
    return parser


def spec_from_args(args: argparse.Namespace):
    named = {key: value for key, value in (("model", args.model), ("dataset", args.dataset)) if value is not None}
    for value in named.values():
        if is_import_path(value):
            allow(value)  # the command line names it: the driver and the trials may import it
    spec = load_sweep_spec(args.config, named)
    overrides = {"search": args.search, "num_samples": args.num_samples, "strategy": args.strategy,
                 "max_concurrent": args.max_concurrent, "max_failures": args.max_failures,
                 "gpus_per_trial": args.gpus_per_trial, "cpus_per_trial": args.cpus_per_trial}
    spec = replace(spec, **{key: value for key, value in overrides.items() if value is not None})
    for flag, value in (("--num-samples", args.num_samples), ("--strategy", args.strategy)):
        if value is not None and spec.search == "grid":
            raise SweepConfigError(f"{flag} applies to an Optuna search, but sweep {spec.name!r} searches a grid, which "
                                   "trains each of its points once; add --search optuna, or change [grid]")
    if args.smoke:
        given = [flag for flag, value in (("--search optuna", args.search == "optuna"), ("--num-samples", args.num_samples),
                                          ("--strategy", args.strategy)) if value]
        if given:
            raise SweepConfigError(f"--smoke trains a fixed grid of two one-epoch points (dense and frozen), so "
                                   f"{', '.join(given)} would be ignored; leave out --smoke, or {' and '.join(given)}")
        spec = smoke_spec(spec)
    return spec if args.scheduler is None else replace(spec, scheduler=args.scheduler)


def options_from_args(args: argparse.Namespace) -> SweepOptions:
    local = "://" not in args.storage
    storage = str(Path(args.storage).resolve()) if local else args.storage
    return SweepOptions(
        storage=storage, local_dir=Path(storage) if local else Path("sweep_state").resolve(),
        tracking_uri=args.tracking_uri or default_tracking_uri(),
        address=args.address, resume=args.resume, inject_fault_epoch=args.inject_fault, verbose=0 if args.quiet else 2 if args.ray_tables else 1,
    )


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="sweep: %(levelname)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        spec = spec_from_args(args)
        options = options_from_args(args)
        outcome = run_sweep(spec, options)
    except FrozenSLTError as error:
        print(f"sweep: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sweep: interrupted; run the same command again to continue it", file=sys.stderr)
        return 130
    print_summary(spec, options, outcome)
    return 0 if outcome.complete else 1


def print_summary(spec, options: SweepOptions, outcome) -> None:
    print(f"\nsweep {spec.run_name}: {len(outcome.records)} trials finished")
    if outcome.skipped:
        count = len(outcome.skipped)
        print(f"grid: {count} pruned {'point' if count == 1 else 'points'} left out (a pruned source needs f <= k): "
              f"{', '.join(outcome.skipped)}")
    print(format_fronts(outcome.fronts))
    for trial, error in outcome.failed:
        print(f"FAILED {trial}: {error}")
    if outcome.unfinished:
        print(f"not finished (run the same command again to resume): {', '.join(outcome.unfinished)}")
    for line in placement_lines(outcome):
        print(line)
    print(f"results: {outcome.artifacts[-1].parent}")
    print(f"MLflow: parent run {outcome.parent_run_id} in {options.tracking_uri}; browse it with")
    plot = next((path.name for path in outcome.artifacts if path.suffix == ".png"), None)
    for line in browse_instructions(options.tracking_uri, outcome.experiment_id, outcome.parent_run_id, plot):
        print(f"  {line}")
    if spec.search == "optuna":
        print(f"Optuna: its studies in {optuna_url(spec, options)}; browse them with")
        for line in dashboard_instructions(optuna_url(spec, options)):
            print(f"  {line}")


if __name__ == "__main__":
    sys.exit(main())
