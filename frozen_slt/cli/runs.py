"""``frozen-slt train`` and ``frozen-slt eval``: one run in its run directory."""

from __future__ import annotations

import argparse
import sys

from ..config.experiment import ALTERNATE_KEYS, ExperimentConfig, leaf_fields
from ..training.loop import fit
from .args import config_from_args
from .console import ConsoleReporter, format_summary
from .evaluation import evaluate_run
from .rundir import RunDirectory


def train_config(args: argparse.Namespace) -> ExperimentConfig:
    """The validated config of a ``train`` command line (every config field may be given)."""
    return config_from_args(args, list(leaf_fields()) + list(ALTERNATE_KEYS))


def command_train(args: argparse.Namespace) -> int:
    config = train_config(args)
    run = RunDirectory(args.run_dir, config) if args.run_dir else RunDirectory.for_config(args.out, config)
    run.check_claim(config)  # config.json is written only once fit() has loaded the data and built the network
    finished = run.load_result()
    if finished is not None:
        print(f"run {run.path} already finished; stored result:")
        print(format_summary(finished))
        return 0
    try:
        with run.training():  # locks the directory once fit has the data; removes it if it fails before a checkpoint
            result = fit(config, run.reporter(config, ConsoleReporter()), run.store)
            run.save_result(result)
    except KeyboardInterrupt:
        if run.path.exists():
            print(f"\ninterrupted; the same command resumes from the last checkpoint in {run.path}", file=sys.stderr)
        else:
            print("\ninterrupted before the first checkpoint; nothing was kept", file=sys.stderr)
        return 130
    print(format_summary(result))
    print(f"run directory: {run.path}")
    return 0


def command_eval(args: argparse.Namespace) -> int:
    """Print the recomputed accuracies; status 1 when the evaluated ticket is not the one result.json reports.
    What went wrong (damaged checkpoints skipped, a result that differs) is one warning line on stderr."""
    overrides = {key: getattr(args, key) for key in ("data_dir", "device") if getattr(args, key) is not None}
    report = evaluate_run(RunDirectory(args.run), overrides)
    notes = []
    if report["damaged"]:
        notes.append(f"{'; '.join(report['damaged'])}; evaluated the newest intact checkpoint "
                     f"(epoch_{report['checkpoint_epoch']:04d}.pt) instead")
    print(
        f"best epoch {report['epoch']}: val {100 * report['val_accuracy']:.2f}%  test {100 * report['test_accuracy']:.2f}%  "
        f"(recorded: val {100 * report['recorded_val_accuracy']:.2f}%  test {100 * report['recorded_test_accuracy']:.2f}%)"
    )
    if report["matches_result"] is False:
        stored = report["result"]
        why = ": a damaged checkpoint hid the run's final state" if report["damaged"] else ""
        notes.append(f"this differs from the result in result.json (best epoch {stored['best_epoch']}: "
                     f"val {100 * stored['val_accuracy']:.2f}%  test {100 * stored['test_accuracy']:.2f}%){why}")
    if notes:
        print(f"frozen-slt: warning: {'; '.join(notes)}", file=sys.stderr)
    return 1 if report["matches_result"] is False else 0
