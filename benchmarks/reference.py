"""The authors' training step, written from the description of their algorithm, as the benchmarks' reference.

Per forward of every masked layer: the freeze state is turned into a float ternary mask (−1 pruned,
0 free, +1 locked), the hard mask ``|S| > τ`` is made a float tensor with a straight-through gradient,
two ``where``s override it with the frozen entries, the layer's local density is reduced from it (the
authors use it for the dynamic scale and their logs), and ``W ⊙ mask`` is the effective weight; the
gradient reaches the scores through autograd (``where``, the straight-through step, ``abs``). After
every optimizer step the threshold is :func:`reference_threshold`: pruned → −∞, locked → +∞, one
concatenation, one full sort. That formulation is also the tests' specification of τ (docs/method.md §4).

Free scores receive exactly the project's gradient, ``(∂L/∂W_eff ⊙ W) ⊙ sign(S)``, in the same order
of operations, so both train bit-identically; frozen scores get no gradient here (the ``where``s route
it away) and the project's pass-through one there, which neither mask nor threshold ever reads.
"""

from __future__ import annotations

from types import MethodType

import torch
from torch.nn import functional as F

from frozen_slt.config.experiment import ExperimentConfig
from frozen_slt.method.layers import MaskedLayerMixin, masked_layers
from frozen_slt.method.threshold import global_sparsity, selection_counts
from frozen_slt.training.network import Network


def reference_threshold(layers, zeros: int) -> torch.Tensor:
    """The authors' τ: pruned → −∞, locked → +∞, free → |S|; a full sort; the ``zeros``-th smallest (−1 for none)."""
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


@torch.no_grad()
def reference_update(model: torch.nn.Module) -> torch.Tensor:
    """Store the authors' τ in every masked layer of ``model``; returns it."""
    layers = masked_layers(model)
    tau = reference_threshold(layers, selection_counts(layers, global_sparsity(layers)).zeros)
    for layer in layers:
        layer.threshold.copy_(tau)
    return tau


class _StraightThrough(torch.autograd.Function):
    """``(magnitude > τ)`` as 0./1. floats forward, the identity backward."""

    @staticmethod
    def forward(ctx, magnitude, threshold):
        return (magnitude > threshold).float()

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def reference_effective_weight(layer: MaskedLayerMixin) -> torch.Tensor:
    """The authors' ``W_eff`` of one layer (scale ``none`` or ``dynamic``), rebuilt from scratch."""
    ternary = layer.freeze_state.float()
    mask = _StraightThrough.apply(layer.score.abs(), layer.threshold)
    mask = torch.where(ternary > 0, 1.0, mask)
    mask = torch.where(ternary < 0, 0.0, mask)
    density = mask.detach().sum() / mask.numel()  # the local sparsity is 1 − density
    effective = layer.weight * mask
    if layer.scale_mode == "dynamic":
        effective = effective * torch.where(density > 0, density.clamp_min(1e-30).rsqrt(), 1.0)
    elif layer.scale_mode != "none":
        raise ValueError(f"the reference step implements scale none and dynamic, not {layer.scale_mode!r}")
    return effective


def install_reference(model: torch.nn.Module) -> None:
    """Make every masked layer of ``model`` compute its effective weight the authors' way."""
    for layer in masked_layers(model):
        layer.effective_weight = MethodType(reference_effective_weight, layer)


def reference_optimizer(config: ExperimentConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """The authors' optimizer: torch's SGD on the scores, τ left to :func:`reference_step` (the fused kernel,
    whose rounding the project's ScoreSGD reproduces, so both sides stay bit-identical)."""
    recipe = config.train
    if recipe.optimizer != "sgd":
        raise ValueError(f"the reference step trains with SGD, not {recipe.optimizer!r}")
    return torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=recipe.lr, momentum=recipe.momentum,
                           weight_decay=recipe.weight_decay, fused=True)


def reference_step(network: Network, optimizer, config: ExperimentConfig, inputs: torch.Tensor,
                   labels: torch.Tensor) -> torch.Tensor:
    """One step as the authors take it: forward, backward, optimizer step, then the sort-based threshold."""
    (inputs,) = network.prepare_inputs((inputs,))
    with torch.autocast(network.device.type, dtype=torch.bfloat16, enabled=config.train.bf16 and network.device.type == "cuda"):
        loss = F.cross_entropy(network.model(inputs).float(), labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    reference_update(network.model)
    return loss.detach()
