"""The check after every training epoch that the state can still give a meaningful ticket or model.

A finite loss is not enough: at ``--lr 1e30`` every score of a ticket became NaN while the loss stayed
finite, since a NaN score is never above τ and the mask just dropped every free weight (realised sparsity
1.0 for a target of 0.5). So after each epoch ``fit`` checks the state itself: a ticket's scores and τ, the
mask against its sparsity, and every other floating-point tensor (a weight-trained model's weights,
BatchNorm statistics) for NaN and infinity. The check only reads, so a healthy run's results are unchanged.

The mask's zeros (docs/method.md §4): ``k_cnt = ⌊N·k⌋`` clamped to ``[P, P + F]`` is the expected count E.
At an edge (τ = −1, −∞ or +∞) the mask has exactly E zeros. Otherwise τ is the (E − P)-th smallest free
``|S|``, and the free entries equal to τ (T ≥ 1 of them) are all zeros (a free weight is kept only when
``|S| > τ``), so ties add up to T − 1 zeros: E ≤ zeros ≤ E + T − 1, with equality on the left when no two
scores tie at τ.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from ..errors import TrainingDivergedError
from ..method.layers import MaskedLayerMixin, masked_layers
from ..method.threshold import edge_threshold, selection_counts


def _count(tensors) -> int:
    return int(sum((t.sum() for t in tensors), torch.zeros((), dtype=torch.int64)))


@torch.no_grad()
def mask_problem(layers: Sequence[MaskedLayerMixin], sparsity: float) -> str | None:
    """What is wrong with the scores, τ or the mask of ``layers`` at target ``sparsity``, or None."""
    counts = selection_counts(layers, sparsity)
    bad = _count((~torch.isfinite(layer.score)).sum() for layer in layers)
    if bad:
        return f"{bad:,} of {counts.total:,} scores are NaN or infinite"
    thresholds = {float(layer.threshold) for layer in layers}
    edge = edge_threshold(counts)
    tau = thresholds.pop() if len(thresholds) == 1 else math.nan
    if (edge is not None and tau != edge) or (edge is None and not (math.isfinite(tau) and tau >= 0)):
        return f"the threshold τ is {tau} where the sparsity asks for {'a non-negative number' if edge is None else edge}"
    zeros = _count((~layer.keep_mask()).sum() for layer in layers)
    ties = _count((layer.free & (layer.score.abs() == layer.threshold)).sum() for layer in layers)
    expected = min(max(counts.zeros, counts.pruned), counts.pruned + counts.free)
    if not expected <= zeros <= expected + max(ties - 1, 0):
        allowed = f"{expected:,}" if ties <= 1 else f"{expected:,} to {expected + ties - 1:,} ({ties:,} scores tie at τ)"
        return f"the mask has {zeros:,} zeros where sparsity {sparsity:g} of {counts.total:,} weights gives {allowed}"
    return None


@torch.no_grad()
def nonfinite_problem(model: torch.nn.Module, skip: set[str]) -> str | None:
    """Which floating-point tensors of ``model``'s state (other than the keys in ``skip``) hold NaN or
    infinity, or None."""
    bad, total, first = 0, 0, None
    for key, value in model.state_dict().items():
        if key in skip or not value.is_floating_point():
            continue
        count = int((~torch.isfinite(value)).sum())
        bad, total = bad + count, total + value.numel()
        first = first or (key if count else None)
    return f"{bad:,} of {total:,} values of the model's state are NaN or infinite (the first in {first})" if bad else None


def _masked_keys(model: torch.nn.Module) -> set[str]:
    """State keys of the masked layers (checked by :func:`mask_problem`, or fixed random weights)."""
    return {f"{name}.{key}".lstrip(".") for name, module in model.named_modules() if isinstance(module, MaskedLayerMixin)
            for key in module.state_dict()}


def check_training_state(model: torch.nn.Module, masked: bool, sparsity: float, lr: float, epoch: int) -> None:
    """Raise :class:`TrainingDivergedError` naming ``epoch`` and the likely cause when the state after it is
    not healthy (see the module docstring)."""
    problem = mask_problem(masked_layers(model), sparsity) if masked else None
    problem = problem or nonfinite_problem(model, _masked_keys(model) if masked else set())
    if problem:
        raise TrainingDivergedError(f"training diverged in epoch {epoch}: {problem}; the learning rate ({lr:g}) is likely "
                                    "too high: lower it (--lr)")
