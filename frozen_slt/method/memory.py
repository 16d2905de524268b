"""Memory accounting in bits (docs/method.md §10): what the Pareto front's size axis means.

A ticket is stored as one mask bit per free weight plus the seeds that regenerate the weights (and,
when anything is frozen, the freeze pattern); pruned and locked positions cost nothing. BatchNorm
running statistics are needed to evaluate but are not counted by the paper, so they are reported
separately. All functions here are pure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

from torch import nn

from .freezing import LayerFreezeCounts

SEED_BITS = 64
FLOAT_BITS = 32


@dataclass(frozen=True)
class MemoryReport:
    """Sizes in bits of one ticket and of its two comparison points."""

    total_weights: int
    free_weights: int
    mask_bits: int
    seed_bits: int
    batchnorm_stats_bits: int
    dense_source_ticket_bits: int
    weight_trained_bits: int

    @property
    def ticket_bits(self) -> int:
        """Mask bits over the free positions plus seed bits (BatchNorm statistics excluded, as in the paper)."""
        return self.mask_bits + self.seed_bits

    @property
    def compression_vs_dense_source(self) -> float:
        return self.dense_source_ticket_bits / self.ticket_bits

    @property
    def compression_vs_weight_trained(self) -> float:
        return self.weight_trained_bits / self.ticket_bits

    def to_dict(self) -> dict[str, int | float]:
        out: dict[str, int | float] = asdict(self)
        out["ticket_bits"] = self.ticket_bits
        out["compression_vs_dense_source"] = self.compression_vs_dense_source
        out["compression_vs_weight_trained"] = self.compression_vs_weight_trained
        return out

    def bits_summary(self) -> dict[str, int]:
        """The ``memory_bits`` object of ``frozen-slt plan --json``."""
        return {
            "ticket": self.ticket_bits,
            "mask": self.mask_bits,
            "seeds": self.seed_bits,
            "batchnorm_stats": self.batchnorm_stats_bits,
            "dense_source_ticket": self.dense_source_ticket_bits,
            "weight_trained": self.weight_trained_bits,
        }


def account_memory(layers: Sequence[LayerFreezeCounts], batchnorm_stat_values: int = 0) -> MemoryReport:
    """Bits of the ticket described by per-layer freeze counts.

    Seeds: the weight seed always; the freeze seed too when any weight is frozen (a dense-source ticket
    needs only the weights). ``batchnorm_stat_values`` is the number of running-mean and running-variance
    entries, each stored as a 32-bit float.
    """
    total = sum(layer.weights for layer in layers)
    free = sum(layer.free for layer in layers)
    frozen_anything = free < total
    return MemoryReport(
        total_weights=total,
        free_weights=free,
        mask_bits=free,
        seed_bits=SEED_BITS * (2 if frozen_anything else 1),
        batchnorm_stats_bits=FLOAT_BITS * batchnorm_stat_values,
        dense_source_ticket_bits=total + SEED_BITS,
        weight_trained_bits=FLOAT_BITS * total,
    )


def batchnorm_stat_values(model: nn.Module) -> int:
    """Number of running-mean and running-variance entries of every BatchNorm layer of ``model``."""
    count = 0
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
            count += module.running_mean.numel() + module.running_var.numel()
    return count
