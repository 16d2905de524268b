"""Layer-wise allocation rules (method.md §7): ERK, EPL, IGQ and uniform.

Each rule maps the weight shapes of a model and a global density d to per-layer sparsities s_l(d).
The freeze pattern uses the authors' ``sparsity_distribution`` method on top of a rule:
frozen_l = s_l(1 − (p + r)), p_l = s_l(1 − p), r_l = frozen_l − p_l.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

from .errors import FrozenSLTError
from .ratios import floor_count
from .registry import lookup

Shape = tuple[int, ...]
_NOISE = 1e-9  # float noise tolerated (and clamped) when r_l is computed as a difference


def uniform(shapes: Sequence[Shape], density: float) -> list[float]:
    """s_l = 1 − d in every layer."""
    return [1.0 - density] * len(shapes)


def erk(shapes: Sequence[Shape], density: float) -> list[float]:
    """Erdős–Rényi-Kernel: density ∝ (sum of dims)/(product of dims), with overfull layers made dense.

    ε solves ε·Σ_{non-dense} raw_l·n_l = Σ_{non-dense}(n_l − ⌊n_l(1−d)⌋) − Σ_{dense}⌊n_l(1−d)⌋. A layer
    whose ε·raw_l reaches 1 (≥ 1, as method.md says; at exactly 1 dense or not is the same) is marked
    dense together with every layer sharing the largest raw value, and ε is solved again.
    """
    sizes = [math.prod(shape) for shape in shapes]
    raw = [sum(shape) / n for shape, n in zip(shapes, sizes)]
    zeros = [floor_count(n, 1.0 - density) for n in sizes]
    dense: set[int] = set()
    while True:
        sparse = [i for i in range(len(shapes)) if i not in dense]
        if not sparse:
            return [0.0] * len(shapes)
        divisor = sum(raw[i] * sizes[i] for i in sparse)
        budget = sum(sizes[i] - zeros[i] for i in sparse) - sum(zeros[i] for i in dense)
        epsilon = budget / divisor
        largest = max(raw[i] for i in sparse)
        if epsilon * largest < 1.0:
            break
        dense |= {i for i in sparse if raw[i] == largest}
    return [0.0 if i in dense else 1.0 - epsilon * raw[i] for i in range(len(shapes))]


def epl(shapes: Sequence[Shape], density: float) -> list[float]:
    """Equal per layer: each layer keeps d·N/L weights, water-filled: layers too small for their share
    become dense and the excess is split equally among the others, until nothing is left over."""
    sizes = [math.prod(shape) for shape in shapes]
    kept = [0.0] * len(sizes)
    open_layers = set(range(len(sizes)))
    remaining = density * sum(sizes)
    while open_layers and remaining > 1e-9:
        share = remaining / len(open_layers)
        full = {i for i in open_layers if sizes[i] - kept[i] <= share}
        if not full:
            for i in open_layers:
                kept[i] += share
            break
        for i in full:
            remaining -= sizes[i] - kept[i]
            kept[i] = float(sizes[i])
        open_layers -= full
    return [1.0 - math.floor(e + 1e-6) / n for e, n in zip(kept, sizes)]


def igq(shapes: Sequence[Shape], density: float) -> list[float]:
    """Ideal Gas Quotas: density_l = 1/(1 + F·n_l), F ≥ 0 by bisection on [0, 1e20] until the overall
    sparsity is within 1/N of the target."""
    sizes = [math.prod(shape) for shape in shapes]
    total = sum(sizes)
    target = 1.0 - density

    def sparsity(factor: float) -> float:
        return 1.0 - sum(n / (1.0 + factor * n) for n in sizes) / total

    low, high = 0.0, 1e20
    factor = 0.0
    for _ in range(500):
        if abs(sparsity(factor) - target) <= 1.0 / total:
            return [1.0 - 1.0 / (1.0 + factor * n) for n in sizes]
        if sparsity(factor) < target:
            low = factor
        else:
            high = factor
        factor = (low + high) / 2
    raise RuntimeError(f"IGQ bisection did not reach sparsity {target} within 1/N")


DISTRIBUTIONS: dict[str, Callable[[Sequence[Shape], float], list[float]]] = {
    "erk": erk, "epl": epl, "igq": igq, "uniform": uniform,
}


def layer_sparsities(rule: str, shapes: Sequence[Shape], density: float) -> list[float]:
    """Per-layer sparsity s_l(d) of ``rule`` when the whole model keeps density ``d``."""
    return lookup(DISTRIBUTIONS, rule, "distribution")(shapes, density)


def allocate_freeze_fractions(rule: str, shapes: Sequence[Shape], prune_ratio: float, lock_ratio: float) -> list[tuple[float, float]]:
    """Per-layer (p_l, r_l) by the ``sparsity_distribution`` method; r_l outside [0, 1] beyond float noise raises."""
    frozen = layer_sparsities(rule, shapes, 1.0 - (prune_ratio + lock_ratio))
    pruned = layer_sparsities(rule, shapes, 1.0 - prune_ratio)
    fractions = []
    for index, (f_l, p_l) in enumerate(zip(frozen, pruned)):
        r_l = f_l - p_l
        if not -_NOISE <= r_l <= 1 + _NOISE:
            raise FrozenSLTError(
                f"allocation rule {rule!r} gives layer {index} a lock fraction {r_l:.6g} outside [0, 1] "
                f"(frozen {f_l:.6g}, pruned {p_l:.6g}); choose another distribution for p={prune_ratio}, r={lock_ratio}"
            )
        fractions.append((min(max(p_l, 0.0), 1.0), min(max(r_l, 0.0), 1.0)))
    return fractions


def freeze_counts(rule: str, shapes: Sequence[Shape], prune_ratio: float, lock_ratio: float) -> list[tuple[int, int]]:
    """Per-layer exact (pruned, locked) counts ⌊n_l·p_l⌋ and ⌊n_l·r_l⌋."""
    return [
        (floor_count(math.prod(shape), p_l), floor_count(math.prod(shape), r_l))
        for shape, (p_l, r_l) in zip(shapes, allocate_freeze_fractions(rule, shapes, prune_ratio, lock_ratio))
    ]
