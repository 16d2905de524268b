"""The effective weight of a masked layer, ``W_eff = keep ⊙ W ⊙ factor``, as autograd functions (docs/method.md §3, §6).

:class:`MaskedWeight` computes it with PyTorch's operators (CUDA, and the CPU where the fused loops do
not apply); :class:`FusedMaskedWeight` with one loop per direction from :mod:`frozen_slt.kernels` on
the CPU. Both give the same bits; :meth:`frozen_slt.layers.MaskedLayerMixin.effective_weight` picks one.
"""

from __future__ import annotations

import numpy as np
import torch

from . import kernels

_FLOAT32_MAX = torch.finfo(torch.float32).max


def keep_factor(score: torch.Tensor, free_factor: torch.Tensor | None, frozen_bias: torch.Tensor | None,
                 threshold: torch.Tensor) -> torch.Tensor:
    """The mask as a float tensor of 0s and 1s (a new tensor): ``|S| > τ`` on free entries, 1 locked, 0 pruned.

    Built in three full-size float passes into one buffer (abs, addcmul, compare) instead of boolean
    ``where``s, whose CPU kernels are several times slower per element. Frozen entries are encoded as
    ``|S|·0 + bias`` with bias +∞ (locked) or −∞ (pruned), compared against τ capped at the largest
    finite float so that a locked entry stays kept when τ = +∞. The result equals the boolean
    definition for every finite score (a non-finite score only occurs after training has diverged).
    """
    magnitude = score.abs()
    if free_factor is None:
        return magnitude.gt_(threshold)
    torch.addcmul(frozen_bias, magnitude, free_factor, out=magnitude)  # in place: one full-size buffer, not two
    return magnitude.gt_(threshold.clamp(max=_FLOAT32_MAX))


def dynamic_factor(kept: torch.Tensor, numel: int, dtype: torch.dtype) -> torch.Tensor:
    """1/√(density) for ``kept`` kept entries of ``numel`` (1 for an empty mask), as a 0-d tensor."""
    density = kept / numel
    return torch.where(density > 0, density.clamp_min(1e-30).rsqrt(), 1.0).to(dtype)


def straight_through_gradient(grad_effective: torch.Tensor, weight: torch.Tensor, score: torch.Tensor,
                              factor: torch.Tensor | float) -> torch.Tensor:
    """∂L/∂S = (∂L/∂W_eff ⊙ W) ⊙ sign(S) (⊙ factor), rounded after each product (a new tensor)."""
    grad_score = (grad_effective * weight).mul_(score.detach().sign())
    if not (isinstance(factor, float) and factor == 1.0):
        grad_score.mul_(factor)
    return grad_score


class MaskedWeight(torch.autograd.Function):
    """``W_eff = keep ⊙ W ⊙ factor`` with the straight-through gradient to the scores, in PyTorch operators.

    ``factor`` is 1 (scale none), 1/√(1−k) (static) or 1/√(density of ``keep``) (dynamic, computed
    here from the current mask and treated as a constant by the backward, like the authors do).
    Frozen entries receive the same pass-through gradient as free ones; it never changes the mask
    because the freeze state overrides their scores, and skipping it would cost an extra masking op.
    A dropped weight is a zero of either sign (``0·W``), which no sum, product or comparison
    downstream can tell apart from +0.
    """

    @staticmethod
    def forward(ctx, score, weight, free_factor, frozen_bias, threshold, scale_mode, static_factor):
        effective = keep_factor(score, free_factor, frozen_bias, threshold)
        factor: torch.Tensor | float = 1.0
        if scale_mode == "static":
            factor = static_factor
        elif scale_mode == "dynamic":
            factor = dynamic_factor(effective.sum(), effective.numel(), weight.dtype)
        effective.mul_(weight)
        if scale_mode != "none":
            effective.mul_(factor)
        ctx.save_for_backward(score, weight)
        ctx.factor = factor
        return effective

    @staticmethod
    def backward(ctx, grad_effective):
        score, weight = ctx.saved_tensors
        return straight_through_gradient(grad_effective, weight, score, ctx.factor), None, None, None, None, None, None


class FusedMaskedWeight(torch.autograd.Function):
    """:class:`MaskedWeight` on the CPU: one fused loop per direction (:mod:`frozen_slt.kernels`).

    ``arrays`` are NumPy views of the layer's score, weight, freeze state and threshold. The result is
    the eager one bit for bit, except that a dropped weight is always ``+0``.
    """

    @staticmethod
    def forward(ctx, score, weight, arrays, scale_mode, static_factor):
        scores, weights, states, threshold = arrays
        effective = torch.empty_like(weight)
        kept = kernels.loops().masked_weight(scores, weights, states, threshold, np.float32(static_factor),
                                             scale_mode == "static", kernels.flat(effective))
        factor: torch.Tensor | float = 1.0
        if scale_mode == "static":
            factor = static_factor
        elif scale_mode == "dynamic":
            factor = dynamic_factor(torch.full((), kept, dtype=torch.float32), effective.numel(), weight.dtype)
            effective.mul_(factor)
        ctx.save_for_backward(score, weight)  # autograd then refuses a backward after either changed in place
        ctx.arrays, ctx.factor = arrays, factor
        return effective

    @staticmethod
    def backward(ctx, grad_effective):
        ctx.saved_tensors  # noqa: B018 (unpacking runs autograd's check that score and weight are unchanged)
        scores, weights, _, _ = ctx.arrays
        grad_effective = grad_effective.contiguous()
        grad_score = torch.empty_like(grad_effective)
        scaled = not (isinstance(ctx.factor, float) and ctx.factor == 1.0)
        kernels.loops().masked_weight_grad(kernels.flat(grad_effective), weights, scores, np.float32(float(ctx.factor)),
                                           scaled, kernels.flat(grad_score))
        return grad_score, None, None, None, None
