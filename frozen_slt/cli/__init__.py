"""The ``frozen-slt`` command: plan, train, eval.

Every user error is a :class:`~frozen_slt.errors.FrozenSLTError`; ``main`` prints it as one line on
stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Sequence

import torch

from .cli_args import add_config_flags, config_from_args
from .cli_console import ConsoleReporter, format_bits, format_summary
from .config import ExperimentConfig, leaf_fields, ALTERNATE_KEYS
from .data import DATASETS, get_dataset_entry
from .errors import FrozenSLTError
from .initialize import freeze_plan
from .layers import DENSE
from .memory import account_memory, batchnorm_stat_values
from .models import MODELS, build_model
from .evaluation import evaluate_run
from .rundir import RunDirectory
from .train import TrainingDivergedError, fit

PLAN_FLAGS = (
    "model", "dataset", "sparsity", "freeze_ratio", "lock_share", "prune_ratio", "lock_ratio", "distribution",
)


def plan_report(config: ExperimentConfig) -> dict:
    """Per-layer freeze counts and the memory summary of ``config``, without loading any data."""
    entry = get_dataset_entry(config.dataset)
    with torch.device("meta"):
        model = build_model(config.model, entry.input_shape, entry.num_classes, DENSE)
    counts = freeze_plan(model, config.ticket)
    memory = account_memory(counts, batchnorm_stat_values(model))
    ticket = config.ticket
    return {
        "model": config.model,
        "dataset": config.dataset,
        "total_weights": memory.total_weights,
        "sparsity": ticket.sparsity,
        "prune_ratio": ticket.prune_ratio,
        "lock_ratio": ticket.lock_ratio,
        "freeze_ratio": ticket.freeze_ratio,
        "lock_share": ticket.lock_share,
        "family": ticket.family,
        "distribution": ticket.distribution,
        "layers": [
            {"name": c.name, "shape": list(c.shape), "weights": c.weights, "pruned": c.pruned, "locked": c.locked, "free": c.free}
            for c in counts
        ],
        "memory_bits": memory.bits_summary(),
        "compression_vs_dense_source": memory.compression_vs_dense_source,
        "compression_vs_weight_trained": memory.compression_vs_weight_trained,
    }


def format_plan(report: dict) -> str:
    """A readable table of the plan report."""
    rows = [(layer["name"], "x".join(map(str, layer["shape"])), layer["weights"], layer["pruned"], layer["locked"], layer["free"])
            for layer in report["layers"]]
    totals = [sum(row[i] for row in rows) for i in (2, 3, 4, 5)]
    header = ("layer", "shape", "weights", "pruned", "locked", "free")
    table = [header] + [(r[0], r[1], f"{r[2]:,}", f"{r[3]:,}", f"{r[4]:,}", f"{r[5]:,}") for r in rows]
    table.append(("total", "", *(f"{t:,}" for t in totals)))
    widths = [max(len(str(row[i])) for row in table) for i in range(6)]
    lines = [
        f"{report['model']} on {report['dataset']}: k={report['sparsity']:g} p={report['prune_ratio']:.6g} "
        f"r={report['lock_ratio']:.6g} (f={report['freeze_ratio']:.6g}, family {report['family']}), "
        f"allocation {report['distribution']}",
        "",
    ]
    for i, row in enumerate(table):
        cells = [str(row[0]).ljust(widths[0]), str(row[1]).ljust(widths[1])]
        cells += [str(cell).rjust(width) for cell, width in zip(row[2:], widths[2:])]
        lines.append("  ".join(cells))
        if i == 0 or i == len(table) - 2:
            lines.append("  ".join("-" * width for width in widths))
    bits = report["memory_bits"]
    lines += [
        "",
        f"ticket               {format_bits(bits['ticket'])}  = mask {bits['mask']:,} + seeds {bits['seeds']}",
        f"dense-source ticket  {format_bits(bits['dense_source_ticket'])}  ({report['compression_vs_dense_source']:.2f}x larger)",
        f"weight-trained fp32  {format_bits(bits['weight_trained'])}  ({report['compression_vs_weight_trained']:.1f}x larger)",
        f"BatchNorm statistics {format_bits(bits['batchnorm_stats'])}  (not counted in the ticket, as in the paper)",
    ]
    return "\n".join(lines)


def command_plan(args: argparse.Namespace) -> int:
    report = plan_report(config_from_args(args, PLAN_FLAGS))
    print(json.dumps(report, indent=2) if args.json else format_plan(report))
    return 0


def command_train(args: argparse.Namespace) -> int:
    config = config_from_args(args, list(leaf_fields()) + list(ALTERNATE_KEYS))
    run = RunDirectory(args.run_dir) if args.run_dir else RunDirectory.for_config(args.out, config)
    run.claim(config)
    finished = run.load_result()
    if finished is not None:
        print(f"run {run.path} already finished; stored result:")
        print(format_summary(finished))
        return 0
    try:
        result = fit(config, run.reporter(ConsoleReporter()), run.store)
    except KeyboardInterrupt:
        print(f"\ninterrupted; the same command resumes from the last checkpoint in {run.path}", file=sys.stderr)
        return 130
    except TrainingDivergedError as error:
        print(f"frozen-slt: error: {error}", file=sys.stderr)
        return 1
    run.save_result(result)
    print(format_summary(result))
    print(f"run directory: {run.path}")
    return 0


def command_eval(args: argparse.Namespace) -> int:
    overrides = {key: getattr(args, key) for key in ("data_dir", "device") if getattr(args, key) is not None}
    report = evaluate_run(RunDirectory(args.run), overrides)
    print(
        f"best epoch {report['epoch']}: val {100 * report['val_accuracy']:.2f}%  test {100 * report['test_accuracy']:.2f}%  "
        f"(recorded: val {100 * report['recorded_val_accuracy']:.2f}%  test {100 * report['recorded_test_accuracy']:.2f}%)"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="frozen-slt", description="Strong lottery tickets in partially frozen random networks."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    plan = commands.add_parser(
        "plan",
        help="per-layer freeze counts and ticket size of a model, without data",
        description=f"Models: {', '.join(MODELS)}. Datasets: {', '.join(DATASETS)}.",
    )
    add_config_flags(plan, PLAN_FLAGS)
    plan.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    plan.set_defaults(handler=command_plan)

    train = commands.add_parser(
        "train",
        help="train one ticket (or a weight-trained baseline); resumes automatically",
        description="Settings come from the defaults below, then the dataset's recipe, then --config, then flags, "
        f"then --set. Dataset recipes: {recipe_summary()}. Models: {', '.join(MODELS)}. Datasets: {', '.join(DATASETS)}.",
    )
    train.add_argument("--config", metavar="FILE", help="TOML, YAML or JSON file of settings")
    add_config_flags(train)
    train.add_argument("--set", action="append", metavar="KEY=VALUE", help="override any setting (repeatable)")
    train.add_argument("--out", default="runs", help="root of run directories, named by config hash (default: runs)")
    train.add_argument("--run-dir", help="use exactly this run directory instead of OUT/<config hash>")
    train.set_defaults(handler=command_train)

    evaluate = commands.add_parser("eval", help="re-evaluate the best ticket saved in a run directory")
    evaluate.add_argument("run", metavar="RUN_DIR", help="a run directory written by `frozen-slt train`")
    evaluate.add_argument("--data-dir", help="dataset location, if it moved since training")
    evaluate.add_argument("--device", choices=("auto", "cpu", "cuda"), help="where to evaluate")
    evaluate.set_defaults(handler=command_eval)
    return parser


def recipe_summary() -> str:
    """``digits (batch_size=32, epochs=20, lr=0.05); ...`` for the help text."""
    parts = [f"{entry.name} ({', '.join(f'{key}={value}' for key, value in entry.recipe)})"
             for entry in DATASETS.values() if entry.recipe]
    return "; ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="frozen-slt: %(levelname)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except FrozenSLTError as error:
        print(f"frozen-slt: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
