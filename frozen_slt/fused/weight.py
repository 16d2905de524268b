"""A masked layer's effective weight on the fused routes of :func:`frozen_slt.fused.route.route`.

``fused``: :class:`FusedMaskedWeight`, an autograd function whose forward and backward are each one loop
(:func:`~frozen_slt.fused.loops.masked_weight`, :func:`~frozen_slt.fused.loops.masked_weight_grad`), so
any optimizer, and ``torch.autograd.grad``, sees an ordinary score gradient.

``fused step``: W_eff is computed by the same loop and held as a leaf tensor that the forward uses as it
is, so the backward stops at ∂L/∂W_eff; the optimizer's fused step turns that gradient into the SGD
update and the next W_eff in one loop and installs it here (:func:`install`). The held W_eff is
recomputed whenever what it was computed from has changed: the views, the score, weight and freeze
state (seen through their version counters, as autograd sees in-place changes; a write through
``.data`` or a NumPy view is not seen), τ, the scale and the sparsity.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np
import torch

from .route import LayerViews, Route, flat, loops


def static_scale(layer: Any) -> Any:
    """The ``loops.Scale`` of a layer's constant factor: 1/√(1−k) for scale ``static``, off otherwise."""
    return loops().Scale(np.float32(layer.static_factor()), layer.scale_mode == "static")


class FusedMaskedWeight(torch.autograd.Function):
    """``W_eff = keep ⊙ W ⊙ factor`` with the straight-through gradient to the scores, one loop each way.

    The eager :class:`frozen_slt.method.masking.MaskedWeight` bit for bit, except that a dropped weight is always
    ``+0``. ``dynamic_factor(kept, numel)`` gives the dynamic scale's factor (docs/method.md §6).
    """

    @staticmethod
    def forward(ctx, score, weight, views: LayerViews, scale_mode: str, scale, dynamic_factor: Callable):
        effective = torch.empty_like(weight)
        kept = loops().masked_weight(views.score, views.weight, views.state, views.threshold, scale, flat(effective))
        if scale_mode == "dynamic":
            factor = dynamic_factor(torch.full((), kept, dtype=torch.float32), effective.numel())
            effective.mul_(factor)
            scale = loops().Scale(np.float32(float(factor)), True)
        elif scale.on and scale.factor == 1.0:
            scale = loops().Scale(scale.factor, False)  # the eager gradient skips a factor of exactly 1
        ctx.save_for_backward(score, weight)  # autograd then refuses a backward after either changed in place
        ctx.views, ctx.scale = views, scale
        return effective

    @staticmethod
    def backward(ctx, grad_effective):
        ctx.saved_tensors  # noqa: B018 (unpacking runs autograd's check that score and weight are unchanged)
        grad_effective = grad_effective.contiguous()
        grad_score = torch.empty_like(grad_effective)
        loops().masked_weight_grad(flat(grad_effective), ctx.views.weight, ctx.views.score, ctx.scale, flat(grad_score))
        return grad_score, None, None, None, None, None


class _Held(NamedTuple):
    key: tuple
    views: LayerViews  # the views the key was taken with (held, so their id cannot be reused meanwhile)
    effective: torch.Tensor  # the leaf the forward uses


def _key(layer: Any, views: LayerViews) -> tuple:
    return (id(views), layer.score._version, layer.weight._version, layer.freeze_state._version,
            float(views.threshold[0]), layer.scale_mode, layer.sparsity)


def held_weight(layer: Any, route: Route) -> torch.Tensor:
    """The layer's W_eff on the ``fused step`` route, computed only when what it depends on has changed."""
    held = layer.__dict__.get("_held_weight")
    if held is not None and held.views is route.views and held.key == _key(layer, route.views):
        return held.effective
    views = route.views
    effective = torch.empty_like(layer.weight)  # new memory: a graph that saved the old one keeps it
    loops().masked_weight(views.score, views.weight, views.state, views.threshold, static_scale(layer), flat(effective))
    install(layer, route, effective)
    return effective


def install(layer: Any, route: Route, effective: torch.Tensor) -> None:
    """Hold ``effective`` as the W_eff of the layer's current state (the caller vouches for its values)."""
    layer.__dict__["_held_weight"] = _Held(_key(layer, route.views), route.views, effective.requires_grad_())


def pending_gradient(layer: Any) -> torch.Tensor | None:
    """∂L/∂W_eff accumulated on the held W_eff since it was last cleared, or None."""
    held = layer.__dict__.get("_held_weight")
    return None if held is None else held.effective.grad


def clear_gradient(layer: Any) -> None:
    held = layer.__dict__.get("_held_weight")
    if held is not None:
        held.effective.grad = None


def materialise(layer: Any) -> None:
    """Turn the gradient pending on the held W_eff into ``score.grad`` (added to one already there), in one
    loop, for an optimizer step that is not the fused one."""
    grad = pending_gradient(layer)
    if grad is None:
        return
    grad = grad.contiguous()
    score_grad = torch.empty_like(grad)
    scale = static_scale(layer)
    if scale.factor == 1.0:
        scale = loops().Scale(scale.factor, False)
    loops().masked_weight_grad(flat(grad), flat(layer.weight), flat(layer.score), scale, flat(score_grad))
    layer.score.grad = score_grad if layer.score.grad is None else layer.score.grad.add_(score_grad)
    clear_gradient(layer)


def forget(layer: Any) -> None:
    """Drop the held W_eff (a copy or a pickle of a layer is nobody's to step)."""
    layer.__dict__.pop("_held_weight", None)
