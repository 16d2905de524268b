"""Settings that are legal but leave nothing to search, and what the ticket of such a config really is.

The final mask has ``⌊N·k⌋`` zeros clamped to ``[P, P + F]`` (docs/method.md §4): the pruned weights are
zeros, the locked ones ones, and the search only chooses which free weights make up the rest. When every
weight is frozen (f = 1), or the count leaves the free weights all kept (k ≤ p, e.g. k = 0) or all dropped
(k ≥ 1 − r, e.g. k = 1), there is nothing (or, after rounding, next to nothing) to choose. The counts are
exact: they come from the same freeze plan the run uses, on a model built without memory.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..data import describe_dataset
from ..method.freezing import LayerFreezeCounts
from ..method.initialize import freeze_plan
from ..method.layers import DENSE
from ..method.ratios import RATIO_TOLERANCE, floor_count
from ..models import build_model
from .experiment import ExperimentConfig


def degenerate_ticket_note(config: ExperimentConfig) -> str | None:
    """One sentence saying what the ticket of ``config`` is when its search is empty or trivial, else None."""
    if config.weight_trained:
        return None
    facts = describe_dataset(config.dataset, config.dataset_args, config.data)
    with torch.device("meta"):
        model = build_model(config.model, facts.input_shape, facts.num_classes, DENSE, config.model_args,
                            facts.input_kind)
    return degenerate_note(config.ticket, freeze_plan(model, config.ticket))


def degenerate_note(ticket, counts: Sequence[LayerFreezeCounts]) -> str | None:
    """:func:`degenerate_ticket_note` for a ticket spec and its per-layer freeze counts."""
    total = sum(layer.weights for layer in counts)
    pruned, locked = sum(layer.pruned for layer in counts), sum(layer.locked for layer in counts)
    free = total - pruned - locked
    zeros = min(max(floor_count(total, ticket.sparsity), pruned), pruned + free)
    dropped = zeros - pruned  # free weights the search sets to zero
    if ticket.freeze_ratio >= 1 - RATIO_TOLERANCE or free == 0:
        left = f"{free:,} left free by rounding, so the ticket is its seeds and {free:,} mask bits" if free else \
            "none left free, so the ticket is its seeds alone"
        return (f"freeze_ratio {ticket.freeze_ratio:g} freezes every weight: of {total:,}, {pruned:,} are pruned and "
                f"{locked:,} locked, {left}; there is next to nothing to search")
    if dropped == 0:
        if pruned == 0:
            return f"sparsity {ticket.sparsity:g} asks for no zeros: the ticket keeps every weight and nothing is searched"
        return (f"sparsity {ticket.sparsity:g} asks for {zeros:,} zeros of {total:,} weights, which its {pruned:,} pruned "
                f"weights already give: the ticket keeps every other weight and nothing is searched")
    if dropped == free:
        what = "no weight at all (its output does not depend on its input)" if locked == 0 else \
            f"only its {locked:,} locked weights"
        return (f"sparsity {ticket.sparsity:g} asks for {zeros:,} zeros of {total:,} weights, every weight that is not "
                f"locked: the ticket keeps {what} and nothing is searched")
    return None
