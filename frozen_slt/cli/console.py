"""What the user sees while ``frozen-slt train`` runs: a progress bar on a terminal, log lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from tqdm import tqdm

from ..method.memory import MemoryReport
from ..training.loop import Reporter, RunResult


def format_bits(bits: int) -> str:
    """``1,234,567 bits (150.7 KiB)``."""
    size = bits / 8
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{bits:,} bits ({size:,.1f} {unit})"
        size /= 1024
    return f"{bits:,} bits ({size:,.1f} GiB)"


def format_epoch(metrics: dict[str, Any], epochs: int) -> str:
    train = ""
    if "train_loss" in metrics:
        train = f"loss {metrics['train_loss']:.4f}  train {100 * metrics['train_accuracy']:5.1f}%  "
    return (
        f"epoch {metrics['epoch']:>3}/{epochs}  {train}val {100 * metrics['val_accuracy']:5.1f}%  "
        f"test {100 * metrics['test_accuracy']:5.1f}%  sparsity {metrics['realised_sparsity']:.4f}  "
        f"{metrics['seconds']:.1f}s"
    )


class ConsoleReporter(Reporter):
    """Per-epoch lines on ``stream`` (default: ``sys.stderr`` when constructed); on an interactive terminal
    also a per-step bar with loss and ETA."""

    def __init__(self, stream: TextIO | None = None, interactive: bool | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.epochs = 0
        self.bar: tqdm | None = None
        self.last_loss_read = 0.0

    def on_start(self, info: dict[str, Any]) -> None:
        self.epochs = info["epochs"]
        sizes = info["split_sizes"]
        resumed = info["resumed_epoch"]
        where = f"resuming after epoch {resumed}" if resumed is not None else "starting"
        self.write(
            f"run {info['config_hash']} on {info['device']}: {where}; "
            f"train/val/test = {sizes['train']:,}/{sizes['val']:,}/{sizes['test']:,}"
        )

    def on_step(self, epoch: int, step: int, steps: int, loss) -> None:
        if not self.interactive:
            return
        if self.bar is None:
            self.bar = tqdm(total=steps, desc=f"epoch {epoch}/{self.epochs}", file=self.stream, leave=False, dynamic_ncols=True)
        self.bar.update(1)
        now = time.monotonic()
        if now - self.last_loss_read > 0.5 or step == steps:  # reading the loss synchronises the device
            self.bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
            self.last_loss_read = now

    def on_epoch(self, metrics: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self.write(format_epoch(metrics, self.epochs))

    def write(self, line: str) -> None:
        print(line, file=self.stream, flush=True)


def format_summary(result: RunResult) -> str:
    """The closing summary of a run."""
    memory: MemoryReport = result.memory
    lines = [
        f"best epoch {result.best_epoch} of {result.epochs}: val {100 * result.val_accuracy:.2f}%  "
        f"test {100 * result.test_accuracy:.2f}%  ({result.family})",
    ]
    if result.family == "weight_trained":
        lines.append(f"model size: {format_bits(result.size_bits)} of fp32 weights")
        return "\n".join(lines)
    lines += [
        f"realised sparsity {result.realised_sparsity:.6f} over {memory.total_weights:,} weights "
        f"({memory.free_weights:,} free)",
        f"ticket size: {format_bits(memory.ticket_bits)} = {memory.mask_bits:,} mask bits + {memory.seed_bits} seed bits",
        f"compression: {memory.compression_vs_dense_source:.2f}x vs the dense-source ticket, "
        f"{memory.compression_vs_weight_trained:.1f}x vs fp32 weights "
        f"(BatchNorm statistics, not counted: {format_bits(memory.batchnorm_stats_bits)})",
    ]
    return "\n".join(lines)
