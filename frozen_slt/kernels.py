"""Fused CPU loops for the masked layer and the threshold, compiled by numba on first use.

Each loop makes one pass over a layer's flattened tensors where PyTorch's eager operators need three or
four (each a full-size read and write), and that memory traffic is most of what masking costs on a CPU.
They compute exactly what the eager formulations in :mod:`frozen_slt.masking` and
:mod:`frozen_slt.threshold` compute, in the same float32 operations and order, so both give the same
bits (the tests compare them); the one difference is the sign of a dropped weight's zero (``+0`` here,
``0·W`` there), which nothing downstream can tell apart. :mod:`frozen_slt.score_loops` (also reached
through :func:`loops`) goes further for :class:`frozen_slt.score_sgd.ScoreSGD`: a layer's score
gradient, its SGD update (rounded like torch's fused SGD kernel), the threshold's window count and the
next effective weight in one pass.

:func:`usable` says whether the loops apply to some tensors (numba imports, they are contiguous CPU
tensors, the loops are not switched off); the callers keep the eager code for other devices and as the
fallback. The compiled loops are cached on disk (numba's ``cache=True``), so a
new process loads them in a fraction of a second instead of compiling them again.
"""

from __future__ import annotations

import functools
import logging
from types import SimpleNamespace

import numpy as np
import torch

log = logging.getLogger(__name__)

HIGH_BINS = 1 << 15  # bits 30..16 of a non-negative float32 (the radix select's first level)
SPARE_BINS = 8  # where the high histogram counts frozen entries (a power of two)
BLOCK = 512  # entries of one vectorised block of the score step
FIRST, DECAYED, SCALED = 1, 2, 4  # bits of the score step's mode; its rounding bits follow (see score_step)


def _build(numba) -> SimpleNamespace:
    jit = functools.partial(numba.njit, cache=True, nogil=True, boundscheck=False)
    one, minus_one, zero = np.float32(1.0), np.float32(-1.0), np.float32(0.0)
    from . import score_loops

    @jit
    def masked_weight(score, weight, state, threshold, factor, scaled, out):
        """``out = keep ⊙ weight (⊙ factor)`` for τ = ``threshold[0]``; returns the number of kept entries
        (locked ones included)."""
        kept = 0
        tau = threshold[0]
        for i in range(score.size):
            code = state[i]
            keep = abs(score[i]) > tau if code == 0 else code > 0
            if keep:
                out[i] = weight[i] * factor if scaled else weight[i]
                kept += 1
            else:
                out[i] = zero
        return kept

    @jit
    def masked_weight_grad(grad, weight, score, factor, scaled, out):
        """``out = (grad ⊙ weight) ⊙ sign(score) (⊙ factor)``, rounded after each product like the eager code."""
        for i in range(score.size):
            value = score[i]
            sign = one if value > 0 else (minus_one if value < 0 else zero)
            product = (grad[i] * weight[i]) * sign
            out[i] = product * factor if scaled else product

    @jit
    def high_histogram(bits, state, counts):
        """Adds to ``counts`` (HIGH_BINS + SPARE_BINS entries) bits 30..16 of each free entry.

        Frozen entries are counted in the spare bins past HIGH_BINS, in rotation: consecutive increments
        of one counter wait for each other, and frozen entries often come in runs.
        """
        for i in range(bits.size):
            key = (bits[i] & 0x7FFFFFFF) >> 16
            counts[key if state[i] == 0 else HIGH_BINS + (i & (SPARE_BINS - 1))] += 1

    @jit
    def low_histogram(bits, state, bucket, counts):
        """Adds to ``counts`` (2**16 entries) bits 15..0 of each free entry whose bits 30..16 are ``bucket``."""
        for i in range(bits.size):
            magnitude = bits[i] & 0x7FFFFFFF
            if (magnitude >> 16) == bucket and state[i] == 0:
                counts[magnitude & 0xFFFF] += 1

    @jit
    def count_below(bits, state, low):
        """The number of free entries whose ``|S|`` bit pattern is below ``low`` (a vectorised reduction)."""
        below = 0
        for i in range(bits.size):
            below += ((bits[i] & 0x7FFFFFFF) < low) & (state[i] == 0)
        return below

    @jit
    def collect_window(bits, state, low, width, out, count):
        """Appends to ``out``, from position ``count`` on, the ``|S|`` bit patterns of the free entries in
        [low, low + width); returns the new count, which goes on counting once ``out`` is full."""
        start, span = np.uint32(low), np.uint32(width)
        for i in range(bits.size):
            magnitude = bits[i] & 0x7FFFFFFF
            if np.uint32(magnitude) - start < span and state[i] == 0:  # one unsigned test for both bounds
                if count < out.size:
                    out[count] = magnitude
                count += 1
        return count

    @jit
    def bucket_of_rank(counts, rank):
        """The bucket holding the ``rank``-th smallest (1-based) entry, and the rank inside that bucket."""
        seen = 0
        for bucket in range(counts.size):
            if seen + counts[bucket] >= rank:
                return bucket, rank - seen
            seen += counts[bucket]
        return counts.size, rank - seen

    return SimpleNamespace(masked_weight=masked_weight, masked_weight_grad=masked_weight_grad,
                           high_histogram=high_histogram, low_histogram=low_histogram, count_below=count_below,
                           collect_window=collect_window, bucket_of_rank=bucket_of_rank,
                           score_step=score_loops.score_step, settle_window=score_loops.settle_window)


@functools.cache
def _loops() -> SimpleNamespace | None:
    try:
        import numba
    except ImportError as error:  # a declared dependency; without it the eager code runs, only slower
        log.warning("numba could not be imported (%s): masking and the threshold run PyTorch's eager operators "
                    "on the CPU, with the same results but several times the memory traffic", error)
        return None
    return _build(numba)


_enabled = True


def enabled() -> bool:
    return _enabled


def set_enabled(enabled: bool) -> bool:
    """Switch the fused CPU loops on or off (off: the eager formulations run); returns the previous setting."""
    global _enabled
    previous, _enabled = _enabled, bool(enabled)
    return previous


def usable(*tensors: torch.Tensor) -> bool:
    """True when the fused loops apply: enabled, numba present, every tensor a contiguous CPU tensor."""
    return (_enabled and all(t.device.type == "cpu" and t.is_contiguous() for t in tensors)
            and _loops() is not None)


def loops() -> SimpleNamespace:
    """The compiled loops (call :func:`usable` first)."""
    compiled = _loops()
    if compiled is None:
        raise RuntimeError("the fused CPU loops need numba")
    return compiled


def flat(tensor: torch.Tensor) -> np.ndarray:
    """A 1-D NumPy view of a contiguous CPU tensor's memory (no copy)."""
    return tensor.detach().view(-1).numpy()
