"""``frozen-slt plan``: per-layer freeze counts and the ticket's size, without loading any data."""

from __future__ import annotations

import argparse
import json

import torch

from ..config.experiment import ExperimentConfig
from ..data import get_dataset_entry
from ..method.initialize import freeze_plan
from ..method.layers import DENSE
from ..method.memory import account_memory, batchnorm_stat_values
from ..models import build_model
from .args import config_from_args
from .console import format_bits

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
