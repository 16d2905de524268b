"""The fused CPU loops, compiled by numba on first use and cached on disk.

Each loop makes one pass over a masked layer's flattened tensors where PyTorch's eager operators make
three or four (each a full-size read and write), and that memory traffic is most of what masking costs
on a CPU. They compute what the eager formulations of :mod:`frozen_slt.method` compute, in the same
float32 operations and order, so both give the same bits (the tests compare them); the one difference
is the sign of a dropped weight's zero (``+0`` here, ``0·W`` there), which nothing downstream can tell
apart.

Arguments come grouped in named tuples (numba reads their fields like attributes), so that every
argument of a loop can be named: :class:`Scale` (the effective weight's constant factor),
:class:`StepArrays`, :class:`SGDRates`, :class:`StepFlags` and :class:`Rounding` (the fused score step)
and :class:`WindowBuffers` (the threshold's search window). Every loop lives at module level: numba's
on-disk cache keys a loop on what its closure holds, and only module-level objects give it the same key
in every process, so a new process loads the compiled loops instead of compiling them again.

This module imports numba; :func:`frozen_slt.fused.route.compiled` imports it only where numba is.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

_jit = functools.partial(njit, cache=True, nogil=True, boundscheck=False)
one, minus_one, zero = np.float32(1.0), np.float32(-1.0), np.float32(0.0)

HIGH_BINS = 1 << 15  # bits 30..16 of a non-negative float32 (the radix select's first level)
SPARE_BINS = 8  # where the high histogram counts frozen entries (a power of two)
BLOCK = 512  # entries of one vectorised block of the score step


class Scale(NamedTuple):
    """The effective weight's constant factor: ``W_eff = keep ⊙ W ⊙ factor`` when ``on``, else ``keep ⊙ W``."""

    factor: np.float32
    on: bool


class StepArrays(NamedTuple):
    """One masked layer's flat arrays in the fused score step (float32, but ``state``: int8 freeze state)."""

    grad: np.ndarray  # ∂L/∂W_eff, read
    weight: np.ndarray  # the fixed random weights, read
    score: np.ndarray  # updated in place
    velocity: np.ndarray  # the momentum buffer, updated in place
    state: np.ndarray  # -1 pruned, 0 free, +1 locked, read
    out: np.ndarray  # the next W_eff, written


class SGDRates(NamedTuple):
    """The SGD update's constants as float32: ``score += neg_lr · velocity`` after decay and momentum."""

    neg_lr: np.float32
    decay: np.float32
    momentum: np.float32
    factor: np.float32  # the static scale's factor (1 without it), part of the score gradient


class StepFlags(NamedTuple):
    """What this step of one layer does beyond the plain update."""

    first: bool  # no momentum buffer yet: the velocity is the gradient itself
    decayed: bool  # weight decay is not zero
    scaled: bool  # the static scale multiplies the gradient and W_eff


class Contraction(NamedTuple):
    """Which of the update's three roundings torch's compiled SGD kernel does as one fused multiply-add."""

    decay: bool  # gradient + decay · score
    momentum: bool  # momentum · velocity + gradient
    update: bool  # score + neg_lr · velocity


class Rounding(NamedTuple):
    """How torch's fused CPU SGD kernel rounds: its vectorised part (the first ``n − n % width`` entries)
    and its scalar tail each contract their own roundings (:func:`frozen_slt.fused.rounding.torch_sgd_rounding`)."""

    width: int
    body: Contraction
    tail: Contraction


class WindowBuffers(NamedTuple):
    """The threshold's search window ``[low, high)`` of ``|S|`` and where the step collects the free entries
    inside it: their magnitudes and their positions (both of the window's capacity)."""

    low: np.float32
    high: np.float32
    values: np.ndarray
    positions: np.ndarray


@intrinsic
def fma(typingctx, a, b, c):
    """``a·b + c`` in float32 rounded once (LLVM's fma), as compiled code whose compiler contracted a product
    and a sum into one instruction computes it."""
    float32 = types.float32
    return float32(float32, float32, float32), lambda context, builder, signature, args: builder.fma(*args)


@_jit
def masked_weight(score, weight, state, threshold, scale, out):
    """``out = keep ⊙ weight (⊙ scale.factor)`` for τ = ``threshold[0]``; returns the number of kept entries
    (locked ones included)."""
    kept = 0
    tau = threshold[0]
    for i in range(score.size):
        code = state[i]
        keep = abs(score[i]) > tau if code == 0 else code > 0
        if keep:
            out[i] = weight[i] * scale.factor if scale.on else weight[i]
            kept += 1
        else:
            out[i] = zero
    return kept


@_jit
def masked_weight_grad(grad, weight, score, scale, out):
    """``out = (grad ⊙ weight) ⊙ sign(score) (⊙ scale.factor)``, rounded after each product like the eager code."""
    for i in range(score.size):
        value = score[i]
        sign = one if value > 0 else (minus_one if value < 0 else zero)
        product = (grad[i] * weight[i]) * sign
        out[i] = product * scale.factor if scale.on else product


@_jit
def high_histogram(bits, state, counts):
    """Adds to ``counts`` (HIGH_BINS + SPARE_BINS entries) bits 30..16 of each free entry.

    Frozen entries are counted in the spare bins past HIGH_BINS, in rotation: consecutive increments of
    one counter wait for each other, and frozen entries often come in runs.
    """
    for i in range(bits.size):
        key = (bits[i] & 0x7FFFFFFF) >> 16
        counts[key if state[i] == 0 else HIGH_BINS + (i & (SPARE_BINS - 1))] += 1


@_jit
def low_histogram(bits, state, bucket, counts):
    """Adds to ``counts`` (2**16 entries) bits 15..0 of each free entry whose bits 30..16 are ``bucket``."""
    for i in range(bits.size):
        magnitude = bits[i] & 0x7FFFFFFF
        if (magnitude >> 16) == bucket and state[i] == 0:
            counts[magnitude & 0xFFFF] += 1


@_jit
def count_below(bits, state, low):
    """The number of free entries whose ``|S|`` bit pattern is below ``low`` (a vectorised reduction)."""
    below = 0
    for i in range(bits.size):
        below += ((bits[i] & 0x7FFFFFFF) < low) & (state[i] == 0)
    return below


@_jit
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


@_jit
def bucket_of_rank(counts, rank):
    """The bucket holding the ``rank``-th smallest (1-based) entry, and the rank inside that bucket."""
    seen = 0
    for bucket in range(counts.size):
        if seen + counts[bucket] >= rank:
            return bucket, rank - seen
        seen += counts[bucket]
    return counts.size, rank - seen


@_jit(inline="always")
def sgd_entry(j, arrays, rates, flags, contraction):
    """One entry of :func:`score_step`'s update; returns the new score. Every choice is a select between
    values computed either way, not a branch, so that the loop vectorises."""
    value = arrays.score[j]
    sign = one if value > 0 else (minus_one if value < 0 else zero)
    product = (arrays.grad[j] * arrays.weight[j]) * sign
    gradient = product * rates.factor if flags.scaled else product
    decayed = fma(value, rates.decay, gradient) if contraction.decay else gradient + value * rates.decay
    gradient = decayed if flags.decayed else gradient
    velocity = arrays.velocity[j]
    moved = fma(velocity, rates.momentum, gradient) if contraction.momentum else velocity * rates.momentum + gradient
    gradient = gradient if flags.first else moved  # the first step reads an unset buffer and drops it
    arrays.velocity[j] = gradient
    updated = fma(gradient, rates.neg_lr, value) if contraction.update else value + gradient * rates.neg_lr
    arrays.score[j] = updated
    return updated


@_jit(inline="always")
def score_block(start, end, arrays, rates, flags, contraction, window, count):
    """:func:`score_step` over entries [start, end); returns (count below the window, count)."""
    below, inside = 0, 0
    low, high = window.low, window.high
    for j in range(np.uint64(start), np.uint64(end)):
        updated = sgd_entry(j, arrays, rates, flags, contraction)
        magnitude, code = abs(updated), arrays.state[j]
        below += np.int64(magnitude < low and code == 0)
        inside += np.int64(magnitude >= low and magnitude < high and code == 0)
        keep = (magnitude >= high and code == 0) or code > 0
        arrays.out[j] = (arrays.weight[j] * rates.factor if flags.scaled else arrays.weight[j]) if keep else zero
    if inside:
        for j in range(np.uint64(start), np.uint64(end)):
            magnitude = abs(arrays.score[j])
            if arrays.state[j] == 0 and magnitude >= low and magnitude < high:
                if count < window.values.size:
                    window.values[count], window.positions[count] = magnitude, j
                count += 1
    return below, count


@_jit
def score_step(arrays, rates, flags, rounding, window, count):
    """A masked layer's SGD step fused with the threshold's window count and the next effective weight.

    From ``arrays.grad`` = ∂L/∂W_eff, in one pass: the straight-through score gradient (as
    :func:`masked_weight_grad` computes it), the SGD update of the score and its momentum, rounded like
    torch's fused CPU kernel (``rounding``); then for the new scores: the free entries with
    ``|S| < window.low`` counted, those in ``[low, high)`` appended to the window's buffers from position
    ``count`` on, and ``arrays.out`` = the effective weight wherever the window already settles the mask
    (free entries inside it are written as dropped, for :func:`settle_window`). Returns the count below
    the window and the new ``count`` (which goes on counting past a full window). Blocks of BLOCK
    entries run vectorised; only a block that holds window entries is read again.
    """
    size = arrays.score.size
    split = size - size % rounding.width
    below = 0
    for start in range(0, split, BLOCK):
        block_below, count = score_block(start, min(start + BLOCK, split), arrays, rates, flags, rounding.body,
                                         window, count)
        below += block_below
    tail_below, count = score_block(split, size, arrays, rates, flags, rounding.tail, window, count)
    return below + tail_below, count


@_jit
def settle_window(score, weight, scale, threshold, positions, out):
    """Writes ``out`` at ``positions`` (free entries left open by :func:`score_step`): kept iff ``|S| > τ``."""
    for j in positions:
        out[j] = (weight[j] * scale.factor if scale.on else weight[j]) if abs(score[j]) > threshold else zero
