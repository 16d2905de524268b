"""The freeze pattern of docs/method.md §7: exact per-layer counts, one seeded permutation per layer."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from .distributions import freeze_counts
from .layers import LOCKED, PRUNED
from .seeding import make_generator


@dataclass(frozen=True)
class LayerFreezeCounts:
    """How many weights of one layer are pruned, locked and free."""

    name: str
    shape: tuple[int, ...]
    weights: int
    pruned: int
    locked: int

    @property
    def free(self) -> int:
        return self.weights - self.pruned - self.locked


def plan_freeze_counts(
    named_shapes: Sequence[tuple[str, tuple[int, ...]]], prune_ratio: float, lock_ratio: float, distribution: str
) -> list[LayerFreezeCounts]:
    """Per-layer exact counts ``⌊n_l·p_l⌋`` pruned and ``⌊n_l·r_l⌋`` locked for the allocation rule."""
    shapes = [tuple(shape) for _, shape in named_shapes]
    counts = freeze_counts(distribution, shapes, prune_ratio, lock_ratio)
    return [
        LayerFreezeCounts(name, shape, math.prod(shape), pruned, locked)
        for (name, shape), (pruned, locked) in zip(named_shapes, counts)
    ]


def sample_freeze_pattern(counts: Sequence[LayerFreezeCounts], seed: int) -> list[torch.Tensor]:
    """One int8 tensor per layer: −1 pruned, 0 free, +1 locked, with exactly the planned counts.

    A single CPU generator derived from ``seed`` draws one uniformly random permutation per layer that
    freezes anything: the first ``pruned`` positions are pruned, the next ``locked`` are locked. Layers
    with nothing frozen draw nothing (a dense source consumes no randomness).
    """
    generator = make_generator("freeze", seed)
    states = []
    for layer in counts:
        state = torch.zeros(layer.weights, dtype=torch.int8)
        if layer.pruned or layer.locked:
            order = torch.randperm(layer.weights, generator=generator)
            state[order[: layer.pruned]] = PRUNED
            state[order[layer.pruned : layer.pruned + layer.locked]] = LOCKED
        states.append(state.view(layer.shape))
    return states
