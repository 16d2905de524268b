"""``fit(config, reporter, store) -> RunResult``: one training run of docs/method.md §9, resumable per epoch.

The loop is plain; orchestration (Ray, a run directory, a console) plugs in through the reporter and
the checkpoint store. Validation and test are evaluated at epoch 0 (before training) and after every
epoch; the epoch with the best validation accuracy (the earliest, on ties) is selected and its test
accuracy reported. A checkpoint is written after every evaluation, so a run stopped at any moment and
started again continues from its last complete epoch and ends with the same result. A run whose loss,
scores, threshold, mask or weights go wrong stops with :class:`TrainingDivergedError` (see
:mod:`frozen_slt.training.health`) before the bad epoch is recorded.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch.nn import functional as F

from ..config.experiment import ExperimentConfig
from ..data import load_dataset
from ..data.loop import LoopData, loop_view, select_rows
from ..errors import CorruptCheckpointError, FrozenSLTError, TrainingDivergedError
from ..method.memory import MemoryReport
from ..method.threshold import update_thresholds
from .checkpoint import CHECKPOINT_FORMAT, CheckpointStore, check_fit_state
from .evaluate import autocast, evaluate_splits
from .health import check_training_state
from .network import Network, build_network, resolve_device
from .optimizers import make_optimizer, make_scheduler
from .score_sgd import ScoreSGD

log = logging.getLogger(__name__)


class Reporter:
    """Hooks ``fit`` calls; the base class ignores them. Subclasses print, log or forward to Ray."""

    def on_start(self, info: dict[str, Any]) -> None:
        """Once, before training (``info``: config hash, device, split sizes, memory, the resumed epoch or
        None, the history so far and the number of epochs)."""

    def on_step(self, epoch: int, step: int, steps: int, loss: torch.Tensor) -> None:
        """After every optimizer step; ``loss`` stays on the device (reading it forces a sync)."""

    def on_epoch(self, metrics: dict[str, Any]) -> None:
        """After each evaluation and its checkpoint (epoch 0 included)."""


@dataclass(frozen=True)
class RunResult:
    """Outcome of a run: accuracies at the best-validation epoch and the ticket's size."""

    config_hash: str
    family: str
    best_epoch: int
    val_accuracy: float
    test_accuracy: float
    realised_sparsity: float
    size_bits: int
    memory: MemoryReport
    epochs: int
    history: tuple[dict[str, Any], ...] = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["memory"] = self.memory.to_dict()
        out["history"] = list(self.history)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunResult":
        memory = {key: data["memory"][key] for key in MemoryReport.__dataclass_fields__}
        return cls(**{**data, "memory": MemoryReport(**memory), "history": tuple(data["history"])})


def train_step(network: Network, optimizer, config: ExperimentConfig, inputs: tuple[torch.Tensor, ...],
               labels: torch.Tensor, rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on one batch, then τ recomputed (docs/method.md §4; :class:`ScoreSGD` does both);
    returns the detached loss and the logits. Nothing in it reads a value back to the host, so on CUDA the
    whole step is queued."""
    inputs = network.prepare_inputs(inputs)
    with autocast(network, config):
        logits = select_rows(network.model(*inputs), rows)
        loss = F.cross_entropy(logits.float(), labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if network.masked and not isinstance(optimizer, ScoreSGD):  # ScoreSGD's step updates τ itself
        update_thresholds(network.model, network.window)
    return loss.detach(), logits.detach()


def train_epoch(network: Network, data: LoopData, optimizer, config: ExperimentConfig, epoch: int, reporter: Reporter) -> dict[str, float]:
    """One pass over the training split; τ is recomputed after every optimizer step (docs/method.md §4)."""
    network.model.train()
    loss_sum = torch.zeros((), device=network.device)
    correct = torch.zeros((), dtype=torch.int64, device=network.device)
    seen = 0
    steps = data.num_train_steps(config.train.batch_size)
    for step, (inputs, labels, rows) in enumerate(data.train_steps(config.train.batch_size, epoch), start=1):
        loss, logits = train_step(network, optimizer, config, inputs, labels, rows)
        loss_sum += loss * labels.numel()
        correct += (logits.argmax(1) == labels).sum()
        seen += labels.numel()
        reporter.on_step(epoch, step, steps, loss)
    train_loss = loss_sum.item() / max(seen, 1)
    if not math.isfinite(train_loss):
        lr = optimizer.param_groups[0]["lr"]
        raise TrainingDivergedError(f"training diverged in epoch {epoch}: the mean loss is {train_loss}; the learning rate "
                                    f"({lr:g}) is likely too high: lower it (--lr)")
    return {"train_loss": train_loss, "train_accuracy": correct.item() / max(seen, 1)}


@dataclass
class _Progress:
    """What a checkpoint carries besides the model and optimiser."""

    epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None


def _record_epoch(network: Network, data, config: ExperimentConfig, progress: _Progress, train_metrics: dict, lr: float, seconds: float) -> dict[str, Any]:
    metrics = {"epoch": progress.epoch, **train_metrics, "lr": lr}
    metrics.update(evaluate_splits(network, data, config))
    metrics["realised_sparsity"] = network.realised_sparsity()
    metrics["seconds"] = seconds
    if progress.best is None or metrics["val_accuracy"] > progress.best["val_accuracy"]:
        progress.best = {
            "epoch": progress.epoch,
            "val_accuracy": metrics["val_accuracy"],
            "test_accuracy": metrics["test_accuracy"],
            "realised_sparsity": metrics["realised_sparsity"],
            "model": network.state_to_save(),
        }
    metrics.update(best_epoch=progress.best["epoch"], best_val_accuracy=progress.best["val_accuracy"],
                   best_test_accuracy=progress.best["test_accuracy"])  # running best, for reporters
    progress.history.append(metrics)
    return metrics


def _checkpoint_state(config, network, optimizer, scheduler, progress: _Progress) -> dict[str, Any]:
    rng = {"torch": torch.get_rng_state()}
    if network.device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(network.device)
    return {
        "format": CHECKPOINT_FORMAT,
        "config": config.to_dict(),
        "config_hash": config.config_hash(),
        "weights_fingerprint": network.fingerprint,
        "epoch": progress.epoch,
        "model": network.state_to_save(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": rng,
        "history": progress.history,
        "best": progress.best,
    }


def _restore(state: dict[str, Any], config, network, optimizer, scheduler) -> _Progress:
    """Continue from ``state``, checked again here for stores that do not check what they load."""
    source = f"the checkpoint of epoch {state.get('epoch')!r}"
    check_fit_state(state, config.config_hash(), config.train.epochs, source)
    if state["weights_fingerprint"] != network.fingerprint:
        raise FrozenSLTError("the regenerated random weights differ from the checkpoint's; cannot resume exactly")
    network.load_saved_state(state["model"])
    try:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"]["torch"])
        if "cuda" in state["rng"] and network.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"], network.device)
    except (ValueError, RuntimeError, KeyError, TypeError, IndexError) as error:
        raise CorruptCheckpointError(f"{source} does not fit this run's optimizer ({' '.join(str(error).split())[:200]}); "
                                     "move it aside (rename it to *.corrupt) to resume from the one before") from None
    return _Progress(epoch=state["epoch"], history=list(state["history"]), best=state["best"])


def _result(config: ExperimentConfig, network: Network, progress: _Progress) -> RunResult:
    best = progress.best
    memory = network.memory_report()
    size = memory.weight_trained_bits if config.weight_trained else memory.ticket_bits
    return RunResult(
        config_hash=config.config_hash(), family=config.family, best_epoch=best["epoch"],
        val_accuracy=best["val_accuracy"], test_accuracy=best["test_accuracy"],
        realised_sparsity=best["realised_sparsity"], size_bits=size, memory=memory,
        epochs=progress.epoch, history=tuple(progress.history),
    )


def fit(config: ExperimentConfig, reporter: Reporter | None = None, store: CheckpointStore | None = None) -> RunResult:
    """Train ``config`` to the end (or continue from ``store``'s newest checkpoint) and return the result."""
    reporter = reporter or Reporter()
    device = resolve_device(config.train.device)
    data = loop_view(load_dataset(config.dataset, config.data, device, config.dataset_args))
    network = build_network(config, device)
    optimizer = make_optimizer(config, network.model)
    scheduler = make_scheduler(config, optimizer)
    saved = store.load() if store is not None else None
    progress = _restore(saved, config, network, optimizer, scheduler) if saved else _Progress()
    reporter.on_start({
        "config_hash": config.config_hash(), "device": str(device), "resumed_epoch": progress.epoch if saved else None,
        "split_sizes": data.split_sizes, "memory": network.memory_report().to_dict(),
        "history": list(progress.history), "epochs": config.train.epochs,
    })
    if saved is None:
        metrics = _record_epoch(network, data, config, progress, {}, optimizer.param_groups[0]["lr"], 0.0)
        _save(store, config, network, optimizer, scheduler, progress)
        reporter.on_epoch(metrics)
    while progress.epoch < config.train.epochs:
        started = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        train_metrics = train_epoch(network, data, optimizer, config, progress.epoch + 1, reporter)
        scheduler.step()
        progress.epoch += 1
        # before this epoch is recorded or checkpointed: a diverged state never becomes the run's result
        check_training_state(network.model, network.masked, config.ticket.sparsity, lr, progress.epoch)
        metrics = _record_epoch(network, data, config, progress, train_metrics, lr, time.perf_counter() - started)
        _save(store, config, network, optimizer, scheduler, progress)
        reporter.on_epoch(metrics)
    return _result(config, network, progress)


def _save(store, config, network, optimizer, scheduler, progress) -> None:
    if store is not None:
        store.save(_checkpoint_state(config, network, optimizer, scheduler, progress))
