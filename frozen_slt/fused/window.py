"""The fused CPU selection of τ (docs/method.md §4): a search in a window around the previous τ, then,
only when τ left the window, a two-pass radix select over the bit patterns of ``|S|``.

Non-negative float32 values order like their int32 bit patterns, so both work on the patterns. The
answer is exact whichever stage gives it. The fused score step gathers the window's counts during the
SGD update itself (:func:`frozen_slt.fused.loops.score_step`) and selects τ with the same
:meth:`ThresholdWindow.select`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .route import loops

FLOAT32_INFINITY_BITS = 0x7F800000
LOW_BINS = 1 << 16  # bits 15..0 of a float32's pattern: the radix select's second level

#: Where a window is centred and what it holds: (bit pattern of the current τ, low, high) for [low, high).
Bounds = tuple[int, int, int]
#: One layer as the selection reads it: its scores' bit patterns (int32 view) and its int8 freeze state.
Source = tuple[np.ndarray, np.ndarray]


class ThresholdWindow:
    """Where the next τ is looked for first, sized by how far τ moved last time, with buffers for what it holds.

    Half-width: 4x the last move of τ's bit pattern, at least ``MIN_HALF_WIDTH`` units in the last place.
    Measured on Conv6 digits runs (five tickets, 6 epochs, 1,080 steps): τ moved a median 240 to 560 units
    per step and up to about 4,700; a minimum of 1,024 missed τ in 39 steps, 2,048 in 8, the window then
    holding a median 41 to 179 entries. A window holding more than ``capacity`` free entries declines
    and the radix select answers. The window only changes how fast τ is found, never τ.
    """

    CAPACITY = 1 << 16
    MIN_HALF_WIDTH = 1 << 11

    def __init__(self, capacity: int = CAPACITY):
        self.half_width = self.MIN_HALF_WIDTH
        self.values = np.empty(capacity, np.float32)  # |S| of the entries inside (the search writes bit patterns)
        self.positions = np.empty(capacity, np.int64)  # their flat positions in their layer (the score step)

    @property
    def capacity(self) -> int:
        return self.values.size

    def bounds(self, center: int) -> Bounds | None:
        """The window around the τ whose bit pattern is ``center``, or None when that τ is not a finite
        non-negative float (before the first update, or an edge of §4). ``high`` stays at or below +∞'s
        pattern, so a NaN score is never inside (in the bit patterns as in float comparisons, it lies
        above every window)."""
        if not 0 <= center < FLOAT32_INFINITY_BITS:
            return None
        return center, max(center - self.half_width, 0), min(center + self.half_width + 1, FLOAT32_INFINITY_BITS)

    def select(self, inside: int, below: int, rank: int) -> int | None:
        """The bit pattern of the ``rank``-th smallest free ``|S|``, given ``below`` free entries under the window
        and the ``inside`` ones collected in it, or None if the answer is not inside or the window overflowed."""
        if rank <= below or inside > self.capacity or rank > below + inside:
            return None
        position = rank - below - 1
        return int(np.partition(self.values.view(np.int32)[:inside], position)[position])

    def remember(self, found: int, center: int | None) -> None:
        """Size the next window after τ moved from ``center`` (None: no window was searched) to ``found``."""
        move = abs(found - center) if center is not None else 0
        self.half_width = max(4 * move, self.MIN_HALF_WIDTH)

    def search(self, sources: Sequence[Source], rank: int, bounds: Bounds) -> int | None:
        """The answer if it lies in the window: one vectorised pass per layer counts the free entries below
        it, a second collects those inside (a test that is rarely true, so branches are predicted well)."""
        compiled = loops()
        _, low, high = bounds
        below = sum(compiled.count_below(bits, state, low) for bits, state in sources)
        if rank <= below:
            return None
        inside, patterns = 0, self.values.view(np.int32)
        for bits, state in sources:
            inside = compiled.collect_window(bits, state, low, high - low, patterns, inside)
        return self.select(inside, below, rank)


def radix_bits(sources: Sequence[Source], rank: int) -> int:
    """The bit pattern of the ``rank``-th smallest free ``|S|``: two fused histogram passes over each layer."""
    compiled = loops()
    high_counts = np.zeros(compiled.HIGH_BINS + compiled.SPARE_BINS, dtype=np.int64)  # frozen entries past HIGH_BINS
    for bits, state in sources:
        compiled.high_histogram(bits, state, high_counts)
    bucket, inner_rank = compiled.bucket_of_rank(high_counts[: compiled.HIGH_BINS], rank)
    low_counts = np.zeros(LOW_BINS, dtype=np.int64)
    for bits, state in sources:
        compiled.low_histogram(bits, state, bucket, low_counts)
    low_bucket, _ = compiled.bucket_of_rank(low_counts, inner_rank)
    return (bucket << 16) | low_bucket


def select_bits(sources: Sequence[Source], rank: int, center: int, window: ThresholdWindow) -> int:
    """The bit pattern of the ``rank``-th smallest free ``|S|`` over ``sources``, exactly: the window around
    ``center`` (the current τ's pattern) first, the radix select when τ left it."""
    bounds = window.bounds(center)
    found = window.search(sources, rank, bounds) if bounds is not None else None
    if found is None:
        found = radix_bits(sources, rank)
    window.remember(found, bounds[0] if bounds is not None else None)
    return found
