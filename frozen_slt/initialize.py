"""Drawing a ticket's random state (docs/method.md §5, §7): weights, scores and the freeze pattern.

Everything is drawn on the CPU from its own generator, in module registration order, and then moved to
the layer's device, so the same seeds rebuild the same network on any device.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from .freezing import LayerFreezeCounts, plan_freeze_counts, sample_freeze_pattern
from .layers import masked_layers, weight_layers
from .seeding import make_generator
from .threshold import update_thresholds


def _fan_in(shape: tuple[int, ...]) -> int:
    """C_in·k_h·k_w for a convolution weight, in_features for a linear one."""
    return math.prod(shape[1:])


def kaiming_uniform(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    bound = math.sqrt(6.0 / _fan_in(shape))
    return torch.empty(shape).uniform_(-bound, bound, generator=generator)


def kaiming_normal(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    return torch.empty(shape).normal_(0.0, math.sqrt(2.0 / _fan_in(shape)), generator=generator)


def signed_kaiming_constant(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    signs = torch.randint(0, 2, shape, generator=generator, dtype=torch.int8)
    return (signs.float() * 2.0 - 1.0) * math.sqrt(2.0 / _fan_in(shape))


INITS: dict[str, Callable[[tuple[int, ...], torch.Generator], torch.Tensor]] = {
    "kaiming_uniform": kaiming_uniform,
    "kaiming_normal": kaiming_normal,
    "signed_kaiming_constant": signed_kaiming_constant,
}


def freeze_plan(model: nn.Module, ticket) -> list[LayerFreezeCounts]:
    """Exact per-layer pruned/locked counts of ``ticket`` (a TicketSpec) on ``model``'s weight layers."""
    named_shapes = [(name, tuple(layer.weight.shape)) for name, layer in weight_layers(model)]
    return plan_freeze_counts(named_shapes, ticket.prune_ratio, ticket.lock_ratio, ticket.distribution)


@torch.no_grad()
def draw_weights(model: nn.Module, init: str, seed: int) -> None:
    """Fill every weight layer's ``weight`` from one generator, in registration order."""
    generator = make_generator("weights", seed)
    draw = INITS[init]
    for _, layer in weight_layers(model):
        layer.weight.copy_(draw(tuple(layer.weight.shape), generator))


@torch.no_grad()
def initialize_ticket(model: nn.Module, ticket) -> list[LayerFreezeCounts]:
    """Draw weights, scores and freeze pattern of a masked model for ``ticket`` (a TicketSpec).

    Also sets each layer's target sparsity and scale, and computes the first threshold. Returns the
    per-layer freeze counts.
    """
    layers = masked_layers(model)
    if not layers:
        raise ValueError("initialize_ticket needs a model built with masked layers")
    draw_weights(model, ticket.weight_init, ticket.weight_seed)
    score_generator = make_generator("scores", ticket.score_seed)
    draw_score = INITS[ticket.score_init]
    for layer in layers:
        layer.score.copy_(draw_score(tuple(layer.score.shape), score_generator))
    counts = freeze_plan(model, ticket)
    for layer, state in zip(layers, sample_freeze_pattern(counts, ticket.freeze_seed)):
        layer.set_freeze_state(state)
        layer.configure(ticket.sparsity, ticket.scale)
    update_thresholds(model)
    return counts
