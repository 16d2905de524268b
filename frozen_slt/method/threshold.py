"""The global threshold τ of Edge-Popup's global variant (docs/method.md §4).

``k_cnt = ⌊N·k⌋`` entries of the final mask must be zero. The pruned entries (P of them) are zeros
already and the locked ones are ones, so τ is the ``(k_cnt − P)``-th smallest ``|S|`` among the free
entries, with three edge cases that the authors' formulation (±∞ encoding and a full sort) fixes:

* ``k_cnt = 0``: τ = −1 (every free entry is kept);
* ``k_cnt ≤ P``: τ = −∞ (the pruned entries alone already reach the count; every free entry is kept);
* ``k_cnt > P + F``: τ = +∞ (no free entry is kept).

:func:`radix_select` is the reference implementation here: it selects among the free entries only,
with no sort, by a two-level radix select on the bit patterns of ``|S|`` (non-negative float32 values
order like their int32 bit patterns). Every step has a shape fixed in advance (histograms, cumulative
sums, ``searchsorted``), so on CUDA nothing waits for the host. On the CPU the fused loops of
:mod:`frozen_slt.fused.window` select the same bits where :func:`frozen_slt.fused.route.route` sends
every layer. The authors' formulation itself is kept with the authors' algorithm in
``benchmarks/reference.py``, where the tests use it as the specification of the result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..fused.route import EAGER, route
from ..fused.window import ThresholdWindow, select_bits
from .layers import MaskedLayerMixin, masked_layers
from .ratios import floor_count

_HIGH_BINS = 1 << 15  # bits 30..16 of a non-negative float32 (the sign bit is always 0)
_LOW_BINS = 1 << 16  # bits 15..0


@dataclass(frozen=True)
class SelectionCounts:
    """Counts over all masked layers: N, P, L, F and the number of mask zeros ``k_cnt = ⌊N·k⌋``."""

    total: int
    pruned: int
    locked: int
    free: int
    zeros: int

    @property
    def rank(self) -> int:
        """1-based rank of τ among the free scores (may fall outside [1, F] at the edges)."""
        return self.zeros - self.pruned


def selection_counts(layers: Sequence[MaskedLayerMixin], sparsity: float) -> SelectionCounts:
    total = sum(layer.weight.numel() for layer in layers)
    pruned = sum(layer.pruned_count for layer in layers)
    locked = sum(layer.locked_count for layer in layers)
    return SelectionCounts(total, pruned, locked, total - pruned - locked, floor_count(total, sparsity))


def _histogram(keys: torch.Tensor, bins: int) -> torch.Tensor:
    """Counts of integer keys in [0, bins), with an output shape fixed in advance (no device sync)."""
    if keys.device.type == "cpu":
        return torch.bincount(keys, minlength=bins)
    counts = torch.zeros(bins, dtype=torch.int64, device=keys.device)
    return counts.scatter_add_(0, keys.long(), torch.ones_like(keys, dtype=torch.int64))


def _bucket_of_rank(counts: torch.Tensor, rank: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The bucket holding the ``rank``-th smallest element and the rank inside that bucket."""
    cumulative = counts.cumsum(0)
    bucket = torch.searchsorted(cumulative, rank)
    # gather, not cumulative[bucket]: a plain gather kernel, certainly without a host synchronisation.
    return bucket, rank - (cumulative.gather(0, bucket) - counts.gather(0, bucket))


def _free_bits(layer: MaskedLayerMixin) -> torch.Tensor:
    """int32 bit patterns of the layer's free scores, with the sign bit cleared (i.e. of |S|)."""
    scores = layer.score.detach().reshape(-1)
    if layer.free_count < scores.numel():
        scores = scores.index_select(0, layer.free_index)
    return scores.view(torch.int32) & 0x7FFFFFFF


def radix_select(layers: Sequence[MaskedLayerMixin], rank: int) -> torch.Tensor:
    """The ``rank``-th smallest (1-based) free ``|S|`` over ``layers``, exactly, as a 0-d float32 tensor, in
    PyTorch's operators with every intermediate at a shape known in advance."""
    device = layers[0].score.device
    bits = [_free_bits(layer) for layer in layers]
    high = [b >> 16 for b in bits]
    counts = sum(_histogram(h, _HIGH_BINS) for h in high)
    rank_t = torch.full((1,), rank, dtype=torch.int64, device=device)  # not torch.tensor: no host-to-device copy
    bucket, inner_rank = _bucket_of_rank(counts, rank_t)
    low = [torch.where(h == bucket, b & 0xFFFF, _LOW_BINS) for b, h in zip(bits, high)]
    low_counts = sum(_histogram(x, _LOW_BINS + 1) for x in low)[:_LOW_BINS]
    low_bucket, _ = _bucket_of_rank(low_counts, inner_rank)
    pattern = (bucket << 16) | low_bucket
    return pattern.to(torch.int32).view(torch.float32).reshape(())


def bits_to_threshold(pattern: int) -> torch.Tensor:
    """τ as a 0-d float32 tensor from its bit pattern."""
    return torch.tensor(pattern, dtype=torch.int32).view(torch.float32).reshape(())


def select_threshold(layers: Sequence[MaskedLayerMixin], counts: SelectionCounts,
                     window: ThresholdWindow | None = None) -> torch.Tensor:
    """τ for the given counts: the bit-identical result of the authors' formulation, without a sort.

    The edge cases are decided by the counts alone. Otherwise, when :func:`~frozen_slt.fused.route.route`
    sends every layer to the fused loops, they select τ, searching ``window`` first (a fresh one when None);
    else :func:`radix_select` does.
    """
    edge = edge_threshold(counts)
    if edge is not None:  # torch.full, not torch.tensor: no host-to-device copy, so no synchronisation on CUDA
        return torch.full((), edge, device=layers[0].score.device)
    routes = [route(layer) for layer in layers]
    if any(path.path == EAGER for path in routes):
        return radix_select(layers, counts.rank)
    sources = [(path.views.score.view(np.int32), path.views.state) for path in routes]
    center = int(routes[0].views.threshold.view(np.int32)[0])
    return bits_to_threshold(select_bits(sources, counts.rank, center, window or ThresholdWindow()))


def edge_threshold(counts: SelectionCounts) -> float | None:
    """τ where the counts alone decide it (−1, −∞ or +∞, the module's three edge cases), else None."""
    if counts.zeros == 0:
        return -1.0
    if counts.rank <= 0:
        return -math.inf
    if counts.rank > counts.free:
        return math.inf
    return None


def global_sparsity(layers: Sequence[MaskedLayerMixin]) -> float:
    """The sparsity target k shared by the layers (set by ticket initialisation)."""
    values = {layer.sparsity for layer in layers}
    if len(values) != 1:
        raise ValueError(f"masked layers disagree on the target sparsity: {sorted(values)}")
    return values.pop()


@torch.no_grad()
def update_thresholds(model: nn.Module, window: ThresholdWindow | None = None) -> torch.Tensor:
    """Compute τ over all masked layers of ``model`` and store it in each; returns τ.

    Call once after initialisation and after every optimizer step (docs/method.md §4). ``window`` only
    speeds up the fused selection of a τ that moved little since the last call; give the same one at
    every step of a run.
    """
    layers = masked_layers(model)
    if not layers:
        raise ValueError("model has no masked layers")
    tau = select_threshold(layers, selection_counts(layers, global_sparsity(layers)), window)
    for layer in layers:
        layer.threshold.copy_(tau)
    return tau
