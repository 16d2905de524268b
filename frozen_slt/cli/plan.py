"""``frozen-slt plan``: per-layer freeze counts, the rule of every other parameter and the ticket's size,
without training (and without data: the input shape comes from the dataset or from ``--input-shape``)."""

from __future__ import annotations

import argparse
import json
import logging

import torch

from ..config import checks
from ..config.degenerate import degenerate_note
from ..config.experiment import ExperimentConfig
from ..config.settings import parse_argument_items
from ..data import INPUT_KINDS, DataFacts, describe_dataset
from ..errors import ConfigError
from ..method.initialize import freeze_plan
from ..method.layers import DENSE
from ..method.memory import account_memory, batchnorm_stat_values
from ..models import build_model, check_fits, check_model_name
from ..models.convert import MASKED, RULES, conversion_of
from .args import allow_named_code, config_from_args
from .console import format_bits

log = logging.getLogger(__name__)

PLAN_FLAGS = (
    "model", "model_args", "dataset", "dataset_args", "data_dir", "input_channels", "sparsity", "freeze_ratio",
    "lock_share", "prune_ratio", "lock_ratio", "distribution",
)


def add_shape_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input-shape", metavar="SHAPE", help="plan for inputs of this shape instead of a dataset's: "
                        "C,H,W for images (3,32,32), F for a graph's node features (128); needs --num-classes")
    parser.add_argument("--num-classes", type=int, metavar="N", help="with --input-shape: the class count")
    parser.add_argument("--input-kind", choices=INPUT_KINDS, help="with --input-shape: what the inputs are "
                        "(default: image for C,H,W, graph for F, sequence otherwise)")


def shape_facts(args: argparse.Namespace) -> DataFacts | None:
    """The facts ``--input-shape``/``--num-classes``/``--input-kind`` give, None without them; ConfigError for a
    half or a doubled answer (with ``--dataset`` the shape is read from the data, never typed twice)."""
    if args.input_shape is None:
        if args.num_classes is not None or args.input_kind is not None:
            raise ConfigError("--num-classes and --input-kind go with --input-shape")
        return None
    if hasattr(args, "dataset"):
        raise ConfigError("give either --dataset (the shape is read from it) or --input-shape, not both")
    try:
        shape = tuple(int(part) for part in args.input_shape.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if not shape or any(size < 1 for size in shape):
        raise ConfigError(f"--input-shape must be positive integers such as 3,32,32 or 128, got {args.input_shape!r}")
    if args.num_classes is None or args.num_classes < 1:
        raise ConfigError("--input-shape needs --num-classes N (N >= 1)")
    kind = args.input_kind or {3: "image", 1: "graph"}.get(len(shape), "sequence")
    return DataFacts(shape, args.num_classes, kind)


def plan_report(config: ExperimentConfig, facts: DataFacts | None = None) -> dict:
    """Per-layer freeze counts, the other parameters' rules and the memory summary of ``config``, without
    training, for inputs described by ``facts`` (default: its dataset's). A model that does not fit is refused."""
    if facts is not None:
        return model_plan(config.model, config.model_args, config.ticket, facts, None)
    facts = describe_dataset(config.dataset, config.dataset_args, config.data)
    return model_plan(config.model, config.model_args, config.ticket, facts, config.dataset)


def model_plan(model_name: str, model_args: dict, ticket, facts: DataFacts, dataset: str | None) -> dict:
    """:func:`plan_report` for a model, its arguments, a ticket spec and the inputs (``dataset`` names them, or None)."""
    check_fits(model_name, model_args, facts.input_shape, facts.num_classes, facts.input_kind)
    with torch.device("meta"):
        model = build_model(model_name, facts.input_shape, facts.num_classes, DENSE, model_args, facts.input_kind)
    counts = freeze_plan(model, ticket)
    note = degenerate_note(ticket, counts)
    if note:
        log.warning(note)
    memory = account_memory(counts, batchnorm_stat_values(model))
    conversion = conversion_of(model)
    return {
        "model": model_name,
        "model_args": dict(model_args),
        "dataset": dataset,
        "input_shape": list(facts.input_shape),
        "num_classes": facts.num_classes,
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
        "parameters": [] if conversion is None else [
            {"name": rule.name, "shape": list(rule.shape), "module": rule.module_type, "rule": rule.rule}
            for rule in conversion.rules if rule.rule != MASKED],
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
    where = report["dataset"] or f"inputs {'x'.join(map(str, report['input_shape']))}, {report['num_classes']} classes"
    lines = [
        f"{report['model']} on {where}: k={report['sparsity']:g} p={report['prune_ratio']:.6g} "
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
    lines += format_parameters(report["parameters"])
    bits = report["memory_bits"]
    lines += [
        "",
        f"ticket               {format_bits(bits['ticket'])}  = mask {bits['mask']:,} + seeds {bits['seeds']}",
        f"dense-source ticket  {format_bits(bits['dense_source_ticket'])}  ({report['compression_vs_dense_source']:.2f}x larger)",
        f"weight-trained fp32  {format_bits(bits['weight_trained'])}  ({report['compression_vs_weight_trained']:.1f}x larger)",
        f"BatchNorm statistics {format_bits(bits['batchnorm_stats'])}  (not counted in the ticket, as in the paper)",
    ]
    return "\n".join(lines)


def format_parameters(parameters: list[dict]) -> list[str]:
    """The other parameters of a converted model under their rule (docs/method.md §13), one line per module
    (``layer1.0.bn1  weight, bias  64``); nothing for a built-in model, all of whose parameters are scores."""
    if not parameters:
        return []
    lines = ["", "other parameters (none is trained; docs/method.md §13)"]
    for rule, text in RULES.items():
        groups: list[tuple[str, list[str], str, str]] = []
        for p in (p for p in parameters if p["rule"] == rule):
            module, _, name = p["name"].rpartition(".")
            shape = "x".join(map(str, p["shape"])) or "1"
            if groups and groups[-1][0] == module and groups[-1][2] == shape:
                groups[-1][1].append(name)
            else:
                groups.append((module, [name], shape, p["module"]))
        if not groups:
            continue
        count = sum(len(names) for _, names, _, _ in groups)
        lines.append(f"  {text}: {count} parameter{'s' if count != 1 else ''}")
        width = max(len(module or "(model)") for module, _, _, _ in groups)
        names_width = max(len(", ".join(names)) for _, names, _, _ in groups)
        lines += [f"    {(module or '(model)').ljust(width)}  {', '.join(names).ljust(names_width)}  {shape}  ({kind})"
                  for module, names, shape, kind in groups]
    return lines


def command_plan(args: argparse.Namespace) -> int:
    facts = shape_facts(args)
    if facts is None:
        report = plan_report(config_from_args(args, PLAN_FLAGS, note=False))
    else:  # no dataset: the ticket's settings from the flags, the model as given
        ticket = config_from_args(args, [n for n in PLAN_FLAGS if n not in _MODEL_AND_DATA], note=False).ticket
        allow_named_code(args)
        model = getattr(args, "model", ExperimentConfig.model)
        model_args = parse_argument_items(getattr(args, "model_arg", None) or [], "model_args", "--model-arg")
        model_args = checks.arguments("model_args", {key.partition(".")[2]: value for key, value in model_args.items()})
        check_model_name(model, model_args)
        report = model_plan(model, model_args, ticket, facts, None)
    print(json.dumps(report, indent=2) if args.json else format_plan(report))
    return 0


_MODEL_AND_DATA = ("model", "model_args", "dataset", "dataset_args", "data_dir", "input_channels")
