"""The effective weight of a masked layer, ``W_eff = keep ⊙ W ⊙ factor``, and its straight-through gradient,
in PyTorch's operators (docs/method.md §3, §6): the reference formulation, which CUDA runs.

On the CPU the fused loops of :mod:`frozen_slt.fused` compute the same bits where
:func:`frozen_slt.fused.route.route` sends a layer.
"""

from __future__ import annotations

import torch

#: The effective weight's scale rules (docs/method.md §6): none, 1/√(1−k) or 1/√(density of the mask).
SCALE_MODES = ("none", "static", "dynamic")
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
