"""Masked layers (docs/method.md §3, §6) and the layer kinds that architectures are built from.

A masked layer holds a fixed random ``weight`` (buffer), a trainable ``score`` (parameter), a fixed
ternary freeze state (``-1`` pruned, ``0`` free, ``+1`` locked) and the current global threshold τ.
Its forward computes ``m = |S| > τ`` on free entries, 0 on pruned, 1 on locked, and uses
``m ⊙ W ⊙ scale``; the backward is straight-through: ``∂L/∂S = sign(S) ⊙ ∂L/∂W_eff ⊙ W ⊙ scale``.
The forward only reads the layer's state; τ is written by :func:`frozen_slt.method.threshold.update_thresholds`.
The effective weight and its gradient are computed in :mod:`frozen_slt.method.masking`.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from functools import partial
from typing import Callable, Iterator

import torch
from torch import nn
from torch.nn import functional as F

from ..fused import weight as fused_weight
from ..fused.route import EAGER, FUSED, route
from .masking import SCALE_MODES, MaskedWeight, dynamic_factor

PRUNED, FREE, LOCKED = -1, 0, 1


class MaskedLayerMixin:
    """State and forward logic shared by :class:`MaskedConv2d` and :class:`MaskedLinear`."""

    weight: torch.Tensor
    score: nn.Parameter
    freeze_state: torch.Tensor
    threshold: torch.Tensor

    def _init_masked_state(self, shape: tuple[int, ...]) -> None:
        self.register_buffer("weight", torch.zeros(shape))
        self.score = nn.Parameter(torch.zeros(shape))
        self.register_buffer("freeze_state", torch.zeros(shape, dtype=torch.int8))
        self.register_buffer("threshold", torch.tensor(-1.0))
        self.register_buffer("free", torch.ones(shape, dtype=torch.bool), persistent=False)
        self.register_buffer("locked", torch.zeros(shape, dtype=torch.bool), persistent=False)
        self.register_buffer("free_index", torch.zeros(0, dtype=torch.int64), persistent=False)
        # The freeze state as float factors for the forward (None while every entry is free).
        self.register_buffer("free_factor", None, persistent=False)
        self.register_buffer("frozen_bias", None, persistent=False)
        self.sparsity = 0.0
        self.scale_mode = "none"
        self.pruned_count, self.locked_count, self.free_count = 0, 0, math.prod(shape)
        self._stepper = None  # a weak reference to the ScoreSGD that claimed this layer (claim)

    def set_freeze_state(self, state: torch.Tensor) -> None:
        """Install a ternary freeze state (``-1`` pruned, ``0`` free, ``+1`` locked) of the weight's shape."""
        if state.shape != self.weight.shape:
            raise ValueError(f"freeze state shape {tuple(state.shape)} != weight shape {tuple(self.weight.shape)}")
        state = state.to(device=self.weight.device, dtype=torch.int8)
        self.freeze_state.copy_(state)
        self.free = state == FREE
        self.locked = state == LOCKED
        self.pruned_count = int((state == PRUNED).sum())
        self.locked_count = int(self.locked.sum())
        self.free_count = self.weight.numel() - self.pruned_count - self.locked_count
        all_free = self.free_count == self.weight.numel()
        self.free_index = (
            torch.zeros(0, dtype=torch.int64, device=self.weight.device)
            if all_free
            else self.free.view(-1).nonzero().view(-1)
        )
        self.free_factor = None if all_free else self.free.to(self.weight.dtype)
        self.frozen_bias = None if all_free else (
            torch.zeros_like(self.weight).masked_fill_(self.locked, torch.inf).masked_fill_(state == PRUNED, -torch.inf)
        )

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        key = prefix + "freeze_state"
        if key in state_dict:
            self.set_freeze_state(self.freeze_state.clone())

    def configure(self, sparsity: float, scale_mode: str) -> None:
        """Set the global target sparsity k (used by the threshold and static scale) and the scale mode."""
        if scale_mode not in SCALE_MODES:
            raise ValueError(f"unknown scale {scale_mode!r}; allowed: {', '.join(SCALE_MODES)}")
        if scale_mode == "static" and sparsity >= 1.0:
            raise ValueError("scale='static' needs sparsity < 1 (its factor is 1/sqrt(1 - sparsity))")
        self.sparsity = float(sparsity)
        self.scale_mode = scale_mode

    def keep_mask(self) -> torch.Tensor:
        """The current binary mask (bool) of this layer under its threshold and freeze state."""
        return torch.where(self.free, self.score.detach().abs() > self.threshold, self.locked)

    def __getstate__(self):
        state = super().__getstate__()  # copies and pickles hold their own tensors and are nobody's to step
        state = {key: value for key, value in state.items() if key not in ("_route_cache", "_held_weight")}
        return {**state, "_stepper": None}

    def static_factor(self) -> float:
        """The effective weight's constant factor: 1/√(1−k) for scale ``static``, else 1."""
        return 1.0 / math.sqrt(1.0 - self.sparsity) if self.scale_mode == "static" else 1.0

    def dynamic_factor(self, kept: torch.Tensor, numel: int) -> torch.Tensor:
        """The dynamic scale's factor for ``kept`` kept entries (docs/method.md §6)."""
        return dynamic_factor(kept, numel, self.weight.dtype)

    def effective_weight(self) -> torch.Tensor:
        """W_eff = keep ⊙ W ⊙ scale, by the implementation :func:`frozen_slt.fused.route.route` chooses."""
        path = route(self)
        if path.path == EAGER:
            return MaskedWeight.apply(self.score, self.weight, self.free_factor, self.frozen_bias, self.threshold,
                                      self.scale_mode, self.static_factor())
        if path.path == FUSED:
            return fused_weight.FusedMaskedWeight.apply(self.score, self.weight, path.views, self.scale_mode,
                                                        fused_weight.static_scale(self), self.dynamic_factor)
        return fused_weight.held_weight(self, path)

    def claim(self, optimizer) -> None:
        """Let ``optimizer`` (a :class:`~frozen_slt.training.score_sgd.ScoreSGD`, held weakly) step this layer; None: nobody."""
        self._stepper = None if optimizer is None else weakref.ref(optimizer)
        fused_weight.forget(self)

    def stepper(self):
        """The live optimizer that claimed this layer, or None."""
        return None if self._stepper is None else self._stepper()

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, pruned={self.pruned_count}, locked={self.locked_count}, "
            f"free={self.free_count}, scale={self.scale_mode}"
        )


class MaskedConv2d(MaskedLayerMixin, nn.Module):
    """Bias-free masked 2-D convolution (docs/method.md §3)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self._init_masked_state((out_channels, in_channels, kernel_size, kernel_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.effective_weight(), None, self.stride, self.padding)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, pruned={self.pruned_count}, locked={self.locked_count}, free={self.free_count}"
        )


class MaskedLinear(MaskedLayerMixin, nn.Module):
    """Bias-free masked linear layer (docs/method.md §3)."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self._init_masked_state((out_features, in_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.effective_weight())

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, pruned={self.pruned_count}, "
            f"locked={self.locked_count}, free={self.free_count}"
        )


class MaskedParameter(MaskedLayerMixin, nn.Module):
    """The masked weight of a converted module (docs/method.md §13): the state of a masked layer without its
    operation. The module it belongs to reads it under the weight's own name and gets ``W_eff``
    (:meth:`forward`), so it keeps its own forward (a convolution of any dimension, a linear layer of any
    library, an attention's input projection)."""

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self._init_masked_state(tuple(shape))

    def forward(self) -> torch.Tensor:
        return self.effective_weight()

    def extra_repr(self) -> str:
        return (f"shape={tuple(self.weight.shape)}, pruned={self.pruned_count}, locked={self.locked_count}, "
                f"free={self.free_count}")


class PlainParameter(nn.Module):
    """The weight of a converted module in the weight-trained baseline: an ordinary trained ``weight``, read
    by its module like :class:`MaskedParameter`."""

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(tuple(shape)))

    def forward(self) -> torch.Tensor:
        return self.weight

    def extra_repr(self) -> str:
        return f"shape={tuple(self.weight.shape)}"


@dataclass(frozen=True)
class LayerKind:
    """The layer constructors an architecture is built from: one architecture, two kinds.

    ``conv(in_channels, out_channels, kernel_size, stride=1, padding=0)`` and
    ``linear(in_features, out_features)`` both return bias-free layers; ``parameter(shape)`` holds a
    converted module's weight (:class:`MaskedParameter` or :class:`PlainParameter`).
    """

    name: str
    conv: Callable[..., nn.Module]
    linear: Callable[..., nn.Module]
    parameter: Callable[..., nn.Module] = PlainParameter


def _dense_conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)


MASKED = LayerKind("masked", MaskedConv2d, MaskedLinear, MaskedParameter)
DENSE = LayerKind("dense", _dense_conv, partial(nn.Linear, bias=False), PlainParameter)


def is_weight_layer(module: nn.Module) -> bool:
    """True for the layers whose weights the method counts: masked layers and parameters, a converted
    module's plain weight, and a plain Conv2d/Linear that holds its own weight (a converted module does not:
    its weight is the :class:`MaskedParameter` or :class:`PlainParameter` below it)."""
    if isinstance(module, (MaskedLayerMixin, PlainParameter)):
        return True
    return isinstance(module, (nn.Conv2d, nn.Linear)) and "weight" in module._parameters


def weight_layers(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """(name, module) of every counted layer, in module registration order."""
    for name, module in model.named_modules():
        if is_weight_layer(module):
            yield name, module


def masked_layers(model: nn.Module) -> list[MaskedLayerMixin]:
    """Every masked layer of ``model`` in registration order."""
    return [module for module in model.modules() if isinstance(module, MaskedLayerMixin)]
