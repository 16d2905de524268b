"""The global threshold τ of Edge-Popup's global variant (docs/method.md §4).

``k_cnt = ⌊N·k⌋`` entries of the final mask must be zero. The pruned entries (P of them) are zeros
already and the locked ones are ones, so τ is the ``(k_cnt − P)``-th smallest ``|S|`` among the free
entries, with three edge cases that the authors' formulation (±∞ encoding and a full sort) fixes:

* ``k_cnt = 0``: τ = −1 (every free entry is kept);
* ``k_cnt ≤ P``: τ = −∞ (the pruned entries alone already reach the count; every free entry is kept);
* ``k_cnt > P + F``: τ = +∞ (no free entry is kept).

:func:`select_threshold` selects among the free entries only, with no sort: a two-level radix select
on the bit patterns of ``|S|`` (non-negative float32 values order like their int32 bit patterns). On
CUDA every step has a fixed shape (histograms, cumulative sums, ``searchsorted``), so there is no host
synchronisation; on the CPU the second level works on the few candidates of the chosen bucket.
:func:`reference_threshold` is the authors' formulation, kept as the specification of the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

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


def reference_threshold(layers: Sequence[MaskedLayerMixin], zeros: int) -> torch.Tensor:
    """The authors' formulation: pruned → −∞, locked → +∞, free → |S|; full sort; ``zeros``-th smallest."""
    device = layers[0].score.device
    if zeros == 0:
        return torch.tensor(-1.0, device=device)
    encoded = []
    for layer in layers:
        value = layer.score.detach().abs()
        value = torch.where(layer.locked, torch.inf, value)
        value = torch.where(layer.freeze_state == -1, -torch.inf, value)
        encoded.append(value.reshape(-1))
    ordered, _ = torch.sort(torch.cat(encoded))
    return ordered[zeros - 1].clone()


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


def _positions_equal(values: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Indices where ``values == target`` (a 1-element tensor), for a target that few entries match.

    ``nonzero`` over the whole boolean mask costs about as much as three elementwise passes; here the
    mask (written into uint8, which torch's CPU comparison writes twice as fast as bool, and padded to a
    multiple of 8) is read as int64 words, ``nonzero`` runs over the 8x fewer words, and only the 8
    entries of each non-zero word are looked at again.
    """
    count = values.numel()
    mask = torch.zeros((count + 7) // 8 * 8, dtype=torch.uint8, device=values.device)
    torch.eq(values, target, out=mask[:count])
    words = mask.view(torch.int64).nonzero().view(-1)
    candidates = (words.unsqueeze(1) * 8 + torch.arange(8, device=values.device)).view(-1)
    return candidates[mask[candidates].view(torch.bool)]


def radix_select(layers: Sequence[MaskedLayerMixin], rank: int, fixed_shape: bool | None = None) -> torch.Tensor:
    """The ``rank``-th smallest (1-based) free ``|S|`` over ``layers``, exactly, as a 0-d float32 tensor.

    ``fixed_shape`` (default: True on CUDA) keeps every intermediate at a shape known in advance, so the
    whole selection is queued on the device without a host synchronisation.
    """
    device = layers[0].score.device
    fixed_shape = device.type != "cpu" if fixed_shape is None else fixed_shape
    bits = [_free_bits(layer) for layer in layers]
    high = [b >> 16 for b in bits]
    counts = sum(_histogram(h, _HIGH_BINS) for h in high)
    rank_t = torch.full((1,), rank, dtype=torch.int64, device=device)  # not torch.tensor: no host-to-device copy
    bucket, inner_rank = _bucket_of_rank(counts, rank_t)
    if fixed_shape:
        low = [torch.where(h == bucket, b & 0xFFFF, _LOW_BINS) for b, h in zip(bits, high)]
        low_counts = sum(_histogram(x, _LOW_BINS + 1) for x in low)[:_LOW_BINS]
    else:
        bucket32 = bucket.to(torch.int32)
        low = torch.cat([b.index_select(0, _positions_equal(h, bucket32)) & 0xFFFF for b, h in zip(bits, high)])
        low_counts = _histogram(low, _LOW_BINS)
    low_bucket, _ = _bucket_of_rank(low_counts, inner_rank)
    pattern = (bucket << 16) | low_bucket
    return pattern.to(torch.int32).view(torch.float32).reshape(())


def select_threshold(layers: Sequence[MaskedLayerMixin], counts: SelectionCounts, fixed_shape: bool | None = None) -> torch.Tensor:
    """τ for the given counts: the bit-identical result of :func:`reference_threshold`, without a sort."""
    device = layers[0].score.device
    # torch.full, not torch.tensor: no host-to-device copy, so no synchronisation on CUDA.
    if counts.zeros == 0:
        return torch.full((), -1.0, device=device)
    if counts.rank <= 0:
        return torch.full((), -torch.inf, device=device)
    if counts.rank > counts.free:
        return torch.full((), torch.inf, device=device)
    return radix_select(layers, counts.rank, fixed_shape)


def global_sparsity(layers: Sequence[MaskedLayerMixin]) -> float:
    """The sparsity target k shared by the layers (set by ticket initialisation)."""
    values = {layer.sparsity for layer in layers}
    if len(values) != 1:
        raise ValueError(f"masked layers disagree on the target sparsity: {sorted(values)}")
    return values.pop()


@torch.no_grad()
def update_thresholds(model: nn.Module, method: str = "fast") -> torch.Tensor:
    """Compute τ over all masked layers of ``model`` and store it in each; returns τ.

    Call once after initialisation and after every optimizer step (docs/method.md §4). ``method="reference"``
    uses the authors' sort-based formulation (slow; for tests and benchmarks).
    """
    layers = masked_layers(model)
    if not layers:
        raise ValueError("model has no masked layers")
    counts = selection_counts(layers, global_sparsity(layers))
    if method == "fast":
        tau = select_threshold(layers, counts)
    elif method == "reference":
        tau = reference_threshold(layers, counts.zeros)
    else:
        raise ValueError(f"unknown threshold method {method!r}; valid: fast, reference")
    for layer in layers:
        layer.threshold.copy_(tau)
    return tau
