"""``frozen-slt export`` and ``frozen-slt eval`` of a ticket file (docs/ticket-format.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import RunDirectoryError, TicketFileError
from ..rundir import RunDirectory
from ..ticket import (
    EPOCHS,
    TicketExport,
    dense_module,
    evaluate_ticket,
    network_from_checkpoint,
    read_ticket,
    rebuild_network,
    save_dense_module,
    write_ticket,
)
from .args import HelpFormatter
from .console import format_bits
from .runs import command_eval as command_eval_run

TICKET_SUFFIX = ".slt"


def add_export_parser(commands) -> None:
    export = commands.add_parser(
        "export",
        help="write a run's ticket as a compact file (seeds + 1 bit per free weight), or as a plain PyTorch module",
        description="SOURCE is a run directory (its best-validation epoch by default) or, with --dense-module only, "
        "a ticket file. The format is described in docs/ticket-format.md.",
        formatter_class=HelpFormatter,
    )
    export.add_argument("source", metavar="SOURCE",
                        help="a run directory written by `frozen-slt train`, or a .slt ticket file")
    export.add_argument("-o", "--output", metavar="TICKET.slt", help="write the ticket file here")
    export.add_argument("--dense-module", metavar="OUT.pt2|OUT.pt",
                        help="write a plain PyTorch module with the masked weights baked in: .pt2 = torch.export "
                        "program (needs only torch to load), .pt = state dict of the plain architecture")
    export.add_argument("--epoch", choices=EPOCHS, default="best",
                        help="best: the best-validation epoch (default); last: the newest checkpoint's epoch")
    export.set_defaults(handler=command_export)


def is_ticket_path(path: str) -> bool:
    """A ticket file rather than a run directory: a file, or a name ending in .slt."""
    candidate = Path(path)
    return not candidate.is_dir() and (candidate.is_file() or candidate.suffix == TICKET_SUFFIX)


def command_eval(args: argparse.Namespace) -> int:
    """``eval`` of a ticket file or (delegated to ``frozen-slt eval``'s run code) of a run directory."""
    if not is_ticket_path(args.run):
        if args.dataset is not None:
            raise RunDirectoryError("--dataset applies to ticket files; a run directory is evaluated on its own dataset")
        return command_eval_run(args)
    overrides = {key: getattr(args, key) for key in ("data_dir", "device") if getattr(args, key) is not None}
    ticket = read_ticket(args.run)
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
    if is_ticket_path(args.source):
        if args.output is not None:
            raise TicketFileError(f"{args.source} is already a ticket file; from a ticket only --dense-module "
                                  "can be written")
        ticket = read_ticket(args.source)
        save_dense_module(dense_module(ticket.config, rebuild_network(ticket)), args.dense_module, ticket.config)
        print(f"wrote {args.dense_module}: plain {ticket.config.model} with the ticket's effective weights "
              f"(epoch {ticket.epoch})")
        return 0
    run = RunDirectory(args.source)
    config = run.read_config()
    state = run.store.load()
    if state is None:
        raise RunDirectoryError(f"{run.path} has no intact checkpoint to export")
    if args.output is not None:
        export = write_ticket(args.output, config, state, args.epoch)
        print(format_export(export, state["epoch"], config.train.epochs))
    if args.dense_module is not None:
        network, record = network_from_checkpoint(config, state, args.epoch)
        save_dense_module(dense_module(config, network), args.dense_module, config)
        what = "trained weights" if config.weight_trained else "ticket's effective weights"
        print(f"wrote {args.dense_module}: plain {config.model} with the {what} (epoch {record['epoch']})")
    return 0


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
