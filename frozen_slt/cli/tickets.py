"""``frozen-slt export`` and ``frozen-slt eval`` of a ticket file (docs/ticket-format.md)."""

from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path
from typing import Any

from ..errors import (
    CorruptCheckpointError,
    OutputPathError,
    RunDirectoryError,
    TicketFileError,
)
from ..files import reserve_output
from ..imports import allow, is_import_path
from ..ticket import (
    EPOCHS,
    TicketExport,
    check_dense_path,
    dense_module,
    dense_module_bytes,
    evaluate_ticket,
    network_from_checkpoint,
    read_ticket,
    rebuild_network,
    ticket_bytes,
    ticket_from_checkpoint,
)
from ..ticket.build import ticket_facts
from ..training.network import input_facts
from .args import HelpFormatter
from .console import format_bits
from .rundir import RunDirectory
from .runs import command_eval as command_eval_run

TICKET_SUFFIX = ".slt"


def add_export_parser(commands) -> None:
    export = commands.add_parser(
        "export",
        help="write a run's ticket as a compact file (seeds + 1 bit per free weight), or as a plain PyTorch module",
        description="SOURCE is a run directory (its best-validation epoch by default) or, with --dense-module only, "
        "a ticket file. The format is described in docs/ticket-format.md. Outputs are written only as regular files "
        "in folders that exist (an existing regular file is overwritten; no folder is created), never inside SOURCE, "
        "and both are checked before either is written. SOURCE is only read.",
        formatter_class=HelpFormatter,
    )
    export.add_argument("source", metavar="SOURCE",
                        help="a run directory written by `frozen-slt train`, or a .slt ticket file")
    export.add_argument("-o", "--output", metavar="TICKET.slt",
                        help="write the ticket file here: a new file in an existing folder, or an existing regular "
                        "file, which is overwritten")
    export.add_argument("--dense-module", metavar="OUT.pt2|OUT.pt",
                        help="write a plain PyTorch module with the masked weights baked in: .pt2 = torch.export "
                        "program (needs only torch to load), .pt = state dict of the plain architecture; the same "
                        "rules as for -o")
    export.add_argument("--epoch", choices=EPOCHS, default="best",
                        help="best: the best-validation epoch (default); last: the newest checkpoint's epoch")
    export.add_argument("--model", help="SOURCE's model, when it is given by import path: reading a file never "
                        "imports code the command line does not name (docs/method.md §13)")
    export.add_argument("--dataset", help="SOURCE's dataset, when it is given by import path (a run directory's "
                        "input shape is read from its data)")
    export.set_defaults(handler=command_export)


def is_ticket_path(path: str) -> bool:
    """A ticket file rather than a run directory: a file, or a name ending in .slt."""
    candidate = Path(path)
    return not candidate.is_dir() and (candidate.is_file() or candidate.suffix == TICKET_SUFFIX)


def allow_named_code(args: argparse.Namespace, config, what: str, other_dataset: bool = False) -> None:
    """``--model`` and ``--dataset`` name ``config``'s model and dataset given by import path, which lets this
    process import them (a file naming them alone is refused, docs/method.md §13). ``--model`` must name the
    file's own model; ``--dataset`` too, unless ``other_dataset`` (a ticket evaluated on another dataset)."""
    model, dataset = getattr(args, "model", None), getattr(args, "dataset", None)
    if model is not None and model != config.model:
        raise error_for(what)(f"{what} holds model {config.model!r}, and --model names {model!r}: --model names the "
                              f"{what}'s own model, to allow its import")
    if dataset is not None and dataset != config.dataset and not other_dataset:
        raise error_for(what)(f"{what} holds dataset {config.dataset!r}, and --dataset names {dataset!r}: a run "
                              "directory is evaluated on its own dataset")
    for name in (model, dataset):
        if is_import_path(name):
            allow(name)


def error_for(what: str):
    return TicketFileError if what == "the ticket" else RunDirectoryError


def command_eval(args: argparse.Namespace) -> int:
    """``eval`` of a ticket file or (delegated to ``frozen-slt eval``'s run code) of a run directory."""
    if not is_ticket_path(args.run):
        allow_named_code(args, RunDirectory(args.run).read_config(), "the run directory")
        return command_eval_run(args)
    overrides = {key: getattr(args, key) for key in ("data_dir", "device") if getattr(args, key) is not None}
    ticket = read_ticket(args.run)
    allow_named_code(args, ticket.config, "the ticket", other_dataset=True)
    report = evaluate_ticket(ticket, args.dataset, overrides)
    print(
        f"ticket {args.run}, epoch {report['epoch']} on {report['dataset']}: val {100 * report['val_accuracy']:.2f}%  "
        f"test {100 * report['test_accuracy']:.2f}%  (recorded: val {100 * report['recorded_val_accuracy']:.2f}%  "
        f"test {100 * report['recorded_test_accuracy']:.2f}%)"
    )
    return 0


def command_export(args: argparse.Namespace) -> int:
    if args.output is None and args.dense_module is None:
        raise TicketFileError("nothing to write: give -o TICKET.slt, --dense-module OUT.pt2 (or .pt), or both")
    if args.output is not None and args.dense_module is not None and _real(args.output) == _real(args.dense_module):
        raise OutputPathError(f"-o and --dense-module name the same file {args.output}; give two different files")
    if is_ticket_path(args.source):
        return _export_from_ticket(args)
    return _export_from_run(args)


def _real(path: str | Path) -> str:
    return os.path.realpath(path)


def _check_outside_source(args: argparse.Namespace) -> None:
    """SOURCE is only read: an output inside it (or that is it) would change the run or the ticket."""
    for flag, path in (("-o", args.output), ("--dense-module", args.dense_module)):
        if path is not None and Path(_real(path)).is_relative_to(_real(args.source)):
            raise OutputPathError(f"{flag} {path} is inside SOURCE {args.source}, which export only reads; "
                                  "write the output elsewhere")


def _export_from_ticket(args: argparse.Namespace) -> int:
    if args.output is not None:
        raise TicketFileError(f"{args.source} is already a ticket file; from a ticket only --dense-module can be written")
    ticket = read_ticket(args.source)
    allow_named_code(args, ticket.config, "the ticket")
    _check_outside_source(args)
    facts = ticket_facts(ticket)
    check_dense_path(args.dense_module, facts)
    with reserve_output(args.dense_module, "--dense-module") as output:
        plain = dense_module(ticket.config, rebuild_network(ticket))
        output.commit(dense_module_bytes(plain, args.dense_module, facts))
    print(f"wrote {args.dense_module}: plain {ticket.config.model} with the ticket's effective weights "
          f"(epoch {ticket.epoch})")
    return 0


def _export_from_run(args: argparse.Namespace) -> int:
    """Both outputs are reserved (checked, their temporary files created) before either is computed, and
    written only once both are computed; any refusal or failure removes the temporary files."""
    run = RunDirectory(args.source)
    config = run.read_config()
    allow_named_code(args, config, "the run directory")
    _check_outside_source(args)
    state = exportable_state(run)
    if args.output is not None and config.weight_trained:
        ticket_from_checkpoint(config, state, args.epoch)  # refuses, saying what can be exported instead
    if args.dense_module is not None:
        check_dense_path(args.dense_module, input_facts(config))
    with contextlib.ExitStack() as stack:
        ticket_output = dense_output = None
        if args.output is not None:
            ticket_output = stack.enter_context(reserve_output(args.output, "-o"))
        if args.dense_module is not None:
            dense_output = stack.enter_context(reserve_output(args.dense_module, "--dense-module"))
        if ticket_output is not None:
            ticket, memory = ticket_from_checkpoint(config, state, args.epoch)
            blob, sizes = ticket_bytes(ticket)
        if dense_output is not None:
            network, record = network_from_checkpoint(config, state, args.epoch)
            dense = dense_module_bytes(dense_module(config, network), args.dense_module, network.facts)
        if ticket_output is not None:
            ticket_output.commit(blob)
            print(format_export(TicketExport(Path(args.output), ticket, sizes, memory, args.epoch), state["epoch"],
                                config.train.epochs))
        if dense_output is not None:
            dense_output.commit(dense)
            what = "trained weights" if config.weight_trained else "ticket's effective weights"
            print(f"wrote {args.dense_module}: plain {config.model} with the {what} (epoch {record['epoch']})")
    return 0


def exportable_state(run: RunDirectory) -> dict[str, Any]:
    """The run's newest checkpoint, read without changing the run; refused when it is damaged (an older
    one may not hold the run's result) or when there is none."""
    state, damaged = run.store.newest_intact()
    if state is None:
        reasons = f" ({damaged[0][1]})" if damaged else ""
        raise RunDirectoryError(f"{run.path} has no intact checkpoint to export{reasons}")
    if damaged:
        path, error = damaged[0]
        raise CorruptCheckpointError(
            f"{error}; export does not fall back to an older checkpoint, which may not hold the run's result: "
            f"restore {path.name}, or move it aside (e.g. to {path.name}.corrupt) to export the newest intact one, "
            f"epoch_{state['epoch']:04d}.pt"
        )
    return state


def format_export(export: TicketExport, checkpoint_epoch: int, epochs: int) -> str:
    """What ``export`` prints: the file's sections, the accounting, and both compared with the two baselines."""
    ticket, sizes, memory = export.ticket, export.sizes, export.memory
    which = "best validation" if export.which == "best" else "last checkpoint"
    file_bits = 8 * sizes.total
    extra = file_bits - memory.ticket_bits
    width = len(f"{sizes.total:,}")
    lines = [
        f"{export.path}: {ticket.config.model} on {ticket.config.dataset}, epoch {ticket.epoch} ({which}; checkpoint at "
        f"epoch {checkpoint_epoch} of {epochs}): val {100 * ticket.val_accuracy:.2f}%  "
        f"test {100 * ticket.test_accuracy:.2f}%",
        f"file        {sizes.total:>{width},} bytes = {file_bits:,} bits",
        f"  header    {sizes.header:>{width},} bytes (JSON: config, seeds, shapes, epoch, accuracies, weights fingerprint)",
        f"  mask      {sizes.mask:>{width},} bytes = ceil({ticket.free_weights:,} free weights / 8)",
        f"  BatchNorm {sizes.batchnorm:>{width},} bytes ({ticket.batchnorm_stats.numel():,} running statistics, float32)",
        f"  framing   {sizes.framing:>{width},} bytes (magic, version, section lengths, SHA-256)",
        f"accounting  {format_bits(memory.ticket_bits)} = {memory.mask_bits:,} mask bits + {memory.seed_bits} seed bits; "
        f"the file is {extra:,} bits ({extra / 8:,.0f} bytes) larger",
        f"vs the dense-source ticket ({memory.dense_source_ticket_bits:,} bits): "
        f"{memory.compression_vs_dense_source:.2f}x smaller by the accounting, "
        f"{memory.dense_source_ticket_bits / file_bits:.2f}x by the file",
        f"vs fp32 weights ({memory.weight_trained_bits:,} bits): {memory.compression_vs_weight_trained:.1f}x smaller by the "
        f"accounting, {memory.weight_trained_bits / file_bits:.1f}x by the file",
    ]
    return "\n".join(lines)
