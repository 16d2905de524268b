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
synchronisation; on the CPU the second level works on the few candidates of the chosen bucket. With
the fused loops of :mod:`frozen_slt.kernels` (the CPU), a search in a window around the previous τ
comes first and the radix select runs only when τ left it. :func:`reference_threshold` is the authors' formulation, kept as the specification of the result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from . import kernels
from .layers import MaskedLayerMixin, masked_layers
from .ratios import floor_count

_HIGH_BINS = kernels.HIGH_BINS  # bits 30..16 of a non-negative float32 (the sign bit is always 0)
_LOW_BINS = 1 << 16  # bits 15..0
_FLOAT32_INFINITY_BITS = 0x7F800000


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


_WINDOW_CAPACITY = 1 << 16  # candidates a window may hold before the radix select takes over
# Half-width of the window around the previous τ, in units of the last place of a float32's bit pattern:
# 4x the last step's move, at least _MIN_HALF_WIDTH. Measured on Conv6 digits runs (five tickets, 6 epochs,
# 1,080 steps): τ moved a median 240 to 560 units per step and up to about 4,700; a minimum of 1,024 missed
# τ in 39 steps, 2,048 in 8, the window then holding a median 41 to 179 entries.
_MIN_HALF_WIDTH = 1 << 11


def window_bounds(layers: Sequence[MaskedLayerMixin]) -> tuple[int, int, int] | None:
    """``(center, low, high)``: the bit pattern of the layers' current τ and the window ``[low, high)`` of
    ``|S|`` bit patterns the next search looks in first, or None when τ is not a finite non-negative float
    (before the first update, or an edge of §4). ``high`` stays at or below +∞'s pattern, so a NaN score
    is never inside (in the bit patterns as in float comparisons, it lies above every window)."""
    hint = layers[0]
    center = int(hint.threshold.view(torch.int32))
    if not 0 <= center < _FLOAT32_INFINITY_BITS:
        return None
    half_width = getattr(hint, "_window_half_width", _MIN_HALF_WIDTH)
    return center, max(center - half_width, 0), min(center + half_width + 1, _FLOAT32_INFINITY_BITS)


def remember_move(layers: Sequence[MaskedLayerMixin], found: int, center: int | None) -> None:
    """Size the next window after τ moved from ``center`` (None: no window) to the bit pattern ``found``."""
    move = abs(found - center) if center is not None else 0
    layers[0]._window_half_width = max(4 * move, _MIN_HALF_WIDTH)


def select_in_window(window: np.ndarray, inside: int, below: int, rank: int) -> int | None:
    """The bit pattern of the ``rank``-th smallest free ``|S|`` given ``below`` free entries under the window
    and the ``inside`` ones in it (``window[:inside]``, int32 bit patterns), or None if the answer is not
    inside or the window overflowed its capacity."""
    if rank <= below or inside > _WINDOW_CAPACITY or rank > below + inside:
        return None
    position = rank - below - 1
    return int(np.partition(window[:inside], position)[position])


def _fused_radix_bits(sources: list[tuple[np.ndarray, np.ndarray]], rank: int) -> int:
    """The bit pattern of the ``rank``-th smallest free ``|S|``: two fused histogram passes over each layer."""
    loops = kernels.loops()
    high_counts = np.zeros(_HIGH_BINS + kernels.SPARE_BINS, dtype=np.int64)  # frozen entries past _HIGH_BINS
    for bits, state in sources:
        loops.high_histogram(bits, state, high_counts)
    bucket, inner_rank = loops.bucket_of_rank(high_counts[:_HIGH_BINS], rank)
    low_counts = np.zeros(_LOW_BINS, dtype=np.int64)
    for bits, state in sources:
        loops.low_histogram(bits, state, bucket, low_counts)
    low_bucket, _ = loops.bucket_of_rank(low_counts, inner_rank)
    return (bucket << 16) | low_bucket


def _window_bits(sources: list[tuple[np.ndarray, np.ndarray]], rank: int, low: int, high: int) -> int | None:
    """The bit pattern of the ``rank``-th smallest free ``|S|`` if it lies in [low, high), else None.

    A vectorised pass over each layer counts the free entries below the window, and a second collects
    those inside it (a test that is rarely true, so branches are predicted well); the answer is then
    selected among the few collected ones. The result is exact whenever it is returned.
    """
    loops = kernels.loops()
    below = sum(loops.count_below(bits, state, low) for bits, state in sources)
    if rank <= below:
        return None
    window, inside = np.empty(_WINDOW_CAPACITY, dtype=np.int32), 0
    for bits, state in sources:
        inside = loops.collect_window(bits, state, low, high - low, window, inside)
    return select_in_window(window, inside, below, rank)


def _fused_select(layers: Sequence[MaskedLayerMixin], arrays: list[tuple[np.ndarray, ...]], rank: int) -> torch.Tensor:
    """:func:`radix_select` on the CPU with the fused loops of :mod:`frozen_slt.kernels` (``arrays``: each
    layer's :meth:`~frozen_slt.layers.MaskedLayerMixin.fused_arrays`).

    τ moves little from one step to the next, so the search first looks in a window around the current
    τ (:func:`window_bounds`) and falls back to the two-pass radix select when the answer lies outside
    it. Both give the exact answer.
    """
    sources = [(views[0].view(np.int32), views[2]) for views in arrays]  # score bits, freeze state
    bounds = window_bounds(layers)
    found = _window_bits(sources, rank, bounds[1], bounds[2]) if bounds is not None else None
    if found is None:
        found = _fused_radix_bits(sources, rank)
    remember_move(layers, found, bounds[0] if bounds is not None else None)
    return bits_to_threshold(found)


def bits_to_threshold(pattern: int) -> torch.Tensor:
    """τ as a 0-d float32 tensor from its bit pattern."""
    return torch.tensor(pattern, dtype=torch.int32).view(torch.float32).reshape(())


def radix_select(layers: Sequence[MaskedLayerMixin], rank: int, fixed_shape: bool | None = None) -> torch.Tensor:
    """The ``rank``-th smallest (1-based) free ``|S|`` over ``layers``, exactly, as a 0-d float32 tensor.

    ``fixed_shape`` (default: True on CUDA) keeps every intermediate at a shape known in advance, so the
    whole selection is queued on the device without a host synchronisation. On the CPU, without
    ``fixed_shape``, the fused loops of :mod:`frozen_slt.kernels` run when they can.
    """
    device = layers[0].score.device
    fixed_shape = device.type != "cpu" if fixed_shape is None else fixed_shape
    if not fixed_shape:
        arrays = [layer.fused_arrays() for layer in layers]
        if all(views is not None for views in arrays):
            return _fused_select(layers, arrays, rank)
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
    edge = edge_threshold(counts)
    if edge is not None:  # torch.full, not torch.tensor: no host-to-device copy, so no synchronisation on CUDA
        return torch.full((), edge, device=layers[0].score.device)
    return radix_select(layers, counts.rank, fixed_shape)


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
