"""The fused score step of :class:`frozen_slt.score_sgd.ScoreSGD`, compiled by numba (through
:func:`frozen_slt.kernels.loops`, which imports this module only where numba is).

The loops live at module level, not in :func:`frozen_slt.kernels._build`, because they call one another
and an intrinsic: numba's on-disk cache keys a loop on what its closure holds, and only module-level
objects give it the same key in every process (so a new process loads them instead of compiling them).
"""

import functools

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

from .kernels import BLOCK, DECAYED, FIRST, SCALED

_jit = functools.partial(njit, cache=True, nogil=True, boundscheck=False)
one, minus_one, zero = np.float32(1.0), np.float32(-1.0), np.float32(0.0)


@intrinsic
def fma(typingctx, a, b, c):
    """``a·b + c`` in float32 rounded once (LLVM's fma), as compiled code whose compiler contracted a product
    and a sum into one instruction computes it."""
    float32 = types.float32
    return float32(float32, float32, float32), lambda context, builder, signature, args: builder.fma(*args)


@_jit(inline="always")
def sgd_entry(j, grad, weight, score, velocity, rates, mode, rounding):
    """One entry of :func:`score_step`'s update; returns the new score. Every choice is a select
    between values computed either way, not a branch, so that the loop vectorises."""
    value = score[j]
    sign = one if value > 0 else (minus_one if value < 0 else zero)
    product = (grad[j] * weight[j]) * sign
    gradient = product * rates[3] if mode & SCALED else product
    decayed = fma(value, rates[1], gradient) if rounding & 1 else gradient + value * rates[1]
    gradient = decayed if mode & DECAYED else gradient
    moved = fma(velocity[j], rates[2], gradient) if rounding & 2 else velocity[j] * rates[2] + gradient
    gradient = gradient if mode & FIRST else moved  # the first step reads an unset buffer and drops it
    velocity[j] = gradient
    updated = fma(gradient, rates[0], value) if rounding & 4 else value + gradient * rates[0]
    score[j] = updated
    return updated


@_jit(inline="always")
def score_block(start, end, grad, weight, score, velocity, state, rates, mode, rounding, low, high, out, window,
                positions, count):
    """:func:`score_step` over entries [start, end); returns (count below ``low``, count)."""
    below, inside = 0, 0
    for j in range(np.uint64(start), np.uint64(end)):
        updated = sgd_entry(j, grad, weight, score, velocity, rates, mode, rounding)
        magnitude, code = abs(updated), state[j]
        below += np.int64(magnitude < low and code == 0)
        inside += np.int64(magnitude >= low and magnitude < high and code == 0)
        keep = (magnitude >= high and code == 0) or code > 0
        out[j] = (weight[j] * rates[3] if mode & SCALED else weight[j]) if keep else zero
    if inside:
        for j in range(np.uint64(start), np.uint64(end)):
            magnitude = abs(score[j])
            if state[j] == 0 and magnitude >= low and magnitude < high:
                if count < window.size:
                    window[count], positions[count] = magnitude, j
                count += 1
    return below, count


@_jit
def score_step(grad, weight, score, velocity, state, rates, mode, width, low, high, out, window, positions,
               count):
    """A masked layer's SGD step fused with the threshold's window count and the next effective weight.

    From ``grad`` = ∂L/∂W_eff, in one pass: the straight-through score gradient (as the kernels'
    ``masked_weight_grad`` computes it), the SGD update of ``score`` and its momentum ``velocity`` with
    ``rates`` = (−lr, weight decay, momentum, scale factor) as float32, rounded like torch's fused CPU
    kernel (its vectorised part, the first ``n − n % width`` entries, and the rest each with their own
    rounding); then for the new scores: the free entries with ``|S| < low`` counted, those in
    ``[low, high)`` appended to ``window`` (their ``|S|``) and ``positions`` from ``count`` on, and
    ``out`` = the effective weight wherever the window already settles the mask (free entries inside
    it are written as dropped, for :func:`settle_window`). Returns the count below ``low`` and the new
    ``count`` (which goes on counting past a full window).

    ``mode`` holds bits FIRST (no momentum yet), DECAYED (weight decay ≠ 0), SCALED (static scale),
    then three bits for the vectorised part and three for the rest: whether the decay (bit 0), the
    momentum (bit 1) and the update (bit 2) are each one fused multiply-add. Blocks of BLOCK entries
    run vectorised; only a block that holds window entries is read again.
    """
    size = score.size
    split = size - size % width
    below = 0
    for start in range(0, split, BLOCK):
        block_below, count = score_block(start, min(start + BLOCK, split), grad, weight, score, velocity, state,
                                         rates, mode, mode >> 3, low, high, out, window, positions, count)
        below += block_below
    tail_below, count = score_block(split, size, grad, weight, score, velocity, state, rates, mode, mode >> 6, low,
                                    high, out, window, positions, count)
    return below + tail_below, count


@_jit
def settle_window(score, weight, factor, scaled, threshold, positions, out):
    """Writes ``out`` at ``positions`` (free entries left open by :func:`score_step`): kept iff ``|S| > τ``."""
    for j in positions:
        out[j] = (weight[j] * factor if scaled else weight[j]) if abs(score[j]) > threshold else zero
