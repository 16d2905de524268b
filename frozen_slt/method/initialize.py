"""Drawing a ticket's random state (docs/method.md §5, §7): weights, scores and the freeze pattern.

Everything is drawn on the CPU from its own generator, in module registration order, and then moved to
the layer's device, so the same seeds rebuild the same network on any device.
"""

from __future__ import annotations

import torch
from torch import nn

from .freezing import LayerFreezeCounts, plan_freeze_counts, sample_freeze_pattern
from .inits import INITS
from .layers import masked_layers, weight_layers
from .seeding import make_generator
from .threshold import update_thresholds


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
