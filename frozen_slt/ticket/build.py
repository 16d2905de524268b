"""From a trained network to a ticket and back: extract the final mask, rebuild the network bit-exactly.

A rebuilt network draws its random weights and freeze pattern from the ticket's seeds (on the CPU, so
on any device they are the same), then installs the stored mask by setting every score to 1.0 where
the mask keeps a free weight and 0.0 where it drops one, with τ = 0.5. The masked layers then compute
exactly the training run's keep mask, hence (same weights, same mask, same scale rule) bit-identical
effective weights. The scores of a rebuilt network are this indicator, not the trained scores: it is
for evaluation and deployment, not for further training.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ..config.experiment import ExperimentConfig
from ..data import (
    DATASETS,
    DataFacts,
    describe_dataset,
    get_dataset_entry,
    load_dataset,
)
from ..errors import TicketFileError
from ..files import write_atomically
from ..method.layers import DENSE, MaskedLayerMixin, masked_layers
from ..method.memory import MemoryReport
from ..models import build_model, is_builtin
from ..models.foreign import source_of
from ..models.zoo import package_version
from ..training.evaluate import evaluate_splits
from ..training.network import Network, build_network, resolve_device
from .fileformat import Ticket, TicketSizes, decode_ticket, encode_ticket, ticket_sizes

log = logging.getLogger(__name__)

EPOCHS = ("best", "last")
_REBUILT_THRESHOLD = 0.5
_BATCHNORM_KEYS = ("running_mean", "running_var", "num_batches_tracked")


@dataclass(frozen=True)
class TicketExport:
    """What :func:`write_ticket` wrote: the ticket, the file's section sizes and the accounting."""

    path: Path
    ticket: Ticket
    sizes: TicketSizes
    memory: MemoryReport
    which: str


def _batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def _check_representable(config: ExperimentConfig, network: Network) -> None:
    """Refuse a model whose state the format cannot hold, rather than silently drop it.

    Masked layers are stored as their mask, BatchNorm layers as their running statistics. Any other
    parameter is trained state and is refused; any other buffer must still hold the value the
    architecture's constructor gives it (GIN's fixed ε, for one), since a rebuild gets it from there. (A
    converted model's fixed tensors are buffers outside the state dict, regenerated from the seed.)
    """
    model = network.model
    batchnorms = {id(bn) for bn in _batchnorms(model)}
    trained, constants = [], {}
    for name, module in model.named_modules():
        if isinstance(module, MaskedLayerMixin):
            continue
        prefix = f"{name}." if name else ""
        trained += [prefix + key for key, _ in module.named_parameters(recurse=False)]
        for key, value in module.named_buffers(recurse=False):
            covered = id(module) in batchnorms and key in _BATCHNORM_KEYS
            if key not in module._non_persistent_buffers_set and not covered:
                constants[prefix + key] = value
    if trained:
        raise TicketFileError(f"this model has trained state a ticket file cannot hold (only masks and BatchNorm "
                              f"running statistics): {', '.join(trained)}")
    if constants:
        facts = network.facts
        fresh = build_model(config.model, facts.input_shape, facts.num_classes, DENSE, config.model_args,
                            facts.input_kind).state_dict()
        changed = [key for key, value in constants.items() if key not in fresh or not torch.equal(value.cpu(), fresh[key])]
        if changed:
            raise TicketFileError(f"these buffers differ from the architecture's own values, and a ticket file cannot "
                                  f"hold them: {', '.join(changed)}")


@torch.no_grad()
def ticket_from_network(config: ExperimentConfig, network: Network, epoch: int, val_accuracy: float,
                        test_accuracy: float) -> Ticket:
    """The ticket of a masked ``network`` as it stands (its current mask and BatchNorm statistics)."""
    if not network.masked:
        raise TicketFileError("a weight-trained network has no ticket (a mask over random weights) to export")
    _check_representable(config, network)
    mask = torch.cat([layer.keep_mask()[layer.free].cpu() for layer in masked_layers(network.model)])
    stats = [t.detach().cpu().float().reshape(-1)
             for bn in _batchnorms(network.model) for t in (bn.running_mean, bn.running_var)]
    facts = network.facts
    return Ticket(
        config=config, config_hash=config.config_hash(), input_shape=tuple(facts.input_shape), num_classes=facts.num_classes,
        epoch=int(epoch), val_accuracy=float(val_accuracy), test_accuracy=float(test_accuracy),
        realised_sparsity=network.realised_sparsity(), weights_fingerprint=network.fingerprint,
        mask=mask, batchnorm_stats=torch.cat(stats) if stats else torch.zeros(0),
        **(_version_two_fields(config, facts) if config.uses_additions else {}),
    )


def _version_two_fields(config: ExperimentConfig, facts: DataFacts) -> dict[str, Any]:
    """What a version-2 header adds: the input kind, and the model's callable and the versions of the packages
    that define it (docs/ticket-format.md)."""
    if is_builtin(config.model):
        source = {"callable": None, "packages": {"torch": torch.__version__}}
    else:
        model = source_of(config.model)
        source = {"callable": model.qualified, "packages": model.packages()}
    return {"input_kind": facts.input_kind, "model_source": source}


def network_from_checkpoint(config: ExperimentConfig, state: Mapping[str, Any], which: str = "best",
                            device: torch.device | str = "cpu") -> tuple[Network, dict[str, Any]]:
    """The network of a checkpoint ``state`` written by :func:`frozen_slt.training.loop.fit`, at its best-validation
    epoch (``which="best"``) or at the epoch it was written (``"last"``), and that epoch's record
    (``epoch``, ``val_accuracy``, ``test_accuracy``)."""
    if which not in EPOCHS:
        raise TicketFileError(f"unknown epoch choice {which!r}; valid: {', '.join(EPOCHS)}")
    if state.get("config_hash") != config.config_hash():
        raise TicketFileError(f"the checkpoint belongs to config {state.get('config_hash')}, not to {config.config_hash()}")
    network = build_network(config, torch.device(device))
    if state.get("weights_fingerprint") != network.fingerprint:
        raise TicketFileError("the random weights regenerated from the seeds differ from the checkpoint's")
    if which == "best":
        best = state["best"]
        record, model_state = {key: best[key] for key in ("epoch", "val_accuracy", "test_accuracy")}, best["model"]
    else:
        (last,) = [entry for entry in state["history"] if entry["epoch"] == state["epoch"]]
        record, model_state = {key: last[key] for key in ("epoch", "val_accuracy", "test_accuracy")}, state["model"]
    network.load_saved_state(model_state)
    return network, record


def ticket_from_checkpoint(config: ExperimentConfig, state: Mapping[str, Any],
                           which: str = "best") -> tuple[Ticket, MemoryReport]:
    """The ticket of a checkpoint ``state`` (see :func:`network_from_checkpoint`) and its accounting."""
    if config.weight_trained:
        raise TicketFileError(
            f"run {config.config_hash()} is weight-trained: it has no ticket (a mask over random weights) to export; "
            "`frozen-slt export --dense-module` writes its trained weights as a plain module"
        )
    network, record = network_from_checkpoint(config, state, which)
    return ticket_from_network(config, network, **record), network.memory_report()


def ticket_bytes(ticket: Ticket) -> tuple[bytes, TicketSizes]:
    """The file's bytes and the sizes of its sections."""
    blob = encode_ticket(ticket)
    sizes = ticket_sizes(ticket)
    if sizes.total != len(blob):
        raise AssertionError(f"encoded {len(blob)} bytes, sections add up to {sizes.total}")
    return blob, sizes


def save_ticket(path: str | Path, ticket: Ticket) -> TicketSizes:
    """Write ``ticket`` to ``path`` atomically (a reader sees the old file or the whole new one)."""
    blob, sizes = ticket_bytes(ticket)
    write_atomically(Path(path), blob)
    return sizes


def write_ticket(path: str | Path, config: ExperimentConfig, state: Mapping[str, Any], which: str = "best") -> TicketExport:
    """Export the ticket of a ``fit`` checkpoint ``state`` to ``path`` in one call (run directories and sweeps).

    ``which="best"`` (default) takes the best-validation epoch, ``"last"`` the epoch the checkpoint was
    written at. Raises :class:`TicketFileError` for a weight-trained config.
    """
    ticket, memory = ticket_from_checkpoint(config, state, which)
    sizes = save_ticket(path, ticket)
    log.info("wrote ticket %s (%d bytes, epoch %d)", path, sizes.total, ticket.epoch)
    return TicketExport(Path(path), ticket, sizes, memory, which)


def read_ticket(path: str | Path) -> Ticket:
    """The ticket in the file at ``path``; :class:`TicketFileError` for a missing, damaged or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise TicketFileError(f"ticket file {path} does not exist (or is not a file)")
    return decode_ticket(path.read_bytes(), str(path))


def ticket_facts(ticket: Ticket) -> DataFacts:
    """The inputs the ticket's model takes, from its header (version 1: its built-in dataset's kind)."""
    kind = ticket.input_kind or get_dataset_entry(ticket.config.dataset).input_kind
    return DataFacts(tuple(ticket.input_shape), ticket.num_classes, kind)


def check_dataset_fits(ticket: Ticket, dataset: str, dataset_args: Mapping[str, Any] | None = None,
                       spec=None) -> None:
    """Refuse a dataset whose input shape or class count differs from the ticket's (read from the data, found
    by ``spec``, default the ticket's DataSpec, for a dataset by import path; the ticket's own
    ``dataset_args`` go with its own dataset)."""
    if dataset_args is None:
        dataset_args = ticket.config.dataset_args if dataset == ticket.config.dataset else {}
    facts = describe_dataset(dataset, dataset_args, spec or ticket.config.data)
    if tuple(facts.input_shape) != ticket.input_shape or facts.num_classes != ticket.num_classes:
        shape = "x".join(map(str, ticket.input_shape))
        raise TicketFileError(
            f"the ticket takes inputs of shape {shape} with {ticket.num_classes} classes, but dataset {dataset!r} has "
            f"shape {facts.shape_text()} with {facts.num_classes} classes"
        )


@torch.no_grad()
def rebuild_network(ticket: Ticket, device: torch.device | str = "cpu") -> Network:
    """The ticket's network on ``device``: weights and freeze pattern from the seeds, then the stored mask
    and BatchNorm statistics. Its effective weights equal the training run's bit for bit. Needs no data: the
    input shape is in the header (checked against a built-in dataset's)."""
    if ticket.config.dataset in DATASETS:
        check_dataset_fits(ticket, ticket.config.dataset)
    network = build_network(ticket.config, torch.device(device), ticket_facts(ticket))
    if network.fingerprint != ticket.weights_fingerprint:
        raise TicketFileError("the random weights regenerated from the ticket's seeds differ from the ones it was "
                              f"taken from ({_changed_since(ticket)})")
    layers = masked_layers(network.model)
    free = sum(layer.free_count for layer in layers)
    if free != ticket.free_weights:
        raise TicketFileError(f"the ticket's mask has {ticket.free_weights} bits but its freeze pattern leaves "
                              f"{free} weights free")
    offset = 0
    for layer in layers:
        bits = ticket.mask[offset : offset + layer.free_count].to(layer.score.device)
        offset += layer.free_count
        scores = torch.zeros_like(layer.score)
        scores[layer.free] = bits.to(scores.dtype)
        layer.score.copy_(scores)
        layer.threshold.fill_(_REBUILT_THRESHOLD)
    _install_batchnorm_stats(network.model, ticket.batchnorm_stats)
    if network.realised_sparsity() != ticket.realised_sparsity:
        raise TicketFileError(f"the rebuilt mask has sparsity {network.realised_sparsity()}, the ticket records "
                              f"{ticket.realised_sparsity}")
    return network


def _changed_since(ticket: Ticket) -> str:
    """Why regenerated weights may differ: the model's code or the versions of its packages changed."""
    if ticket.model_source is None:
        return "another frozen-slt or PyTorch version draws them differently"
    recorded = ticket.model_source["packages"]
    installed = {name: _installed(name) for name in recorded}
    changed = [f"{name} {recorded[name]} then, {installed[name]} now" for name in recorded if recorded[name] != installed[name]]
    return ("the model's code, or how it is drawn, changed since it was written: " +
            ("; ".join(changed) if changed else f"same package versions ({', '.join(f'{k} {v}' for k, v in recorded.items())})"))


def _installed(package: str) -> str | None:
    return package_version(package)


def _install_batchnorm_stats(model: nn.Module, values: torch.Tensor) -> None:
    targets = [t for bn in _batchnorms(model) for t in (bn.running_mean, bn.running_var)]
    needed = sum(t.numel() for t in targets)
    if needed != values.numel():
        raise TicketFileError(f"the ticket holds {values.numel()} BatchNorm statistics, the model needs {needed}")
    offset = 0
    for target in targets:
        target.copy_(values[offset : offset + target.numel()].view_as(target))
        offset += target.numel()


def evaluate_ticket(ticket: Ticket, dataset: str | None = None,
                    overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Val/test accuracy of the rebuilt ticket on ``dataset`` (default: its own), next to the recorded values.

    ``overrides`` may change where things are (``data_dir``, ``device``), not what was trained. A dataset
    whose input shape or class count differs from the ticket's is refused before any data is read.
    """
    config = ticket.config.with_overrides(dict(overrides or {}))
    dataset = dataset or config.dataset
    dataset_args = config.dataset_args if dataset == config.dataset else {}
    check_dataset_fits(ticket, dataset, dataset_args, config.data)
    device = resolve_device(config.train.device)
    network = rebuild_network(ticket, device)
    data = load_dataset(dataset, config.data, device, dataset_args)
    report: dict[str, Any] = {"epoch": ticket.epoch, "dataset": dataset}
    report.update(evaluate_splits(network, data, config))
    report.update({f"recorded_{split}_accuracy": getattr(ticket, f"{split}_accuracy") for split in ("val", "test")})
    report["realised_sparsity"] = network.realised_sparsity()
    return report
