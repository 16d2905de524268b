"""Layer-wise allocation rules of docs/method.md §7: ERK, EPL, IGQ and uniform.

A rule maps the weight shapes of the masked layers and a global density d (the fraction of all N weights
that is kept) to per-layer sparsities s_l(d). The freeze pattern puts the authors' ``sparsity_distribution``
method on top of a rule:

    frozen_l = s_l(1 − (p + r)),    p_l = s_l(1 − p),    r_l = frozen_l − p_l,

so the non-frozen part of each layer follows the rule at density 1 − f and the non-pruned part at density
1 − p. Each rule here gives sparsities that never increase with d (ERK and EPL are water-fillings whose level
rises with d, IGQ's single F falls as d rises, uniform is 1 − d), so r_l ≥ 0 up to float noise. The check in
:func:`allocate_freeze_fractions` still refuses anything beyond noise instead of clamping it away.
"""

from __future__ import annotations

import math
from numbers import Integral
from typing import Callable, Sequence

from ..errors import AllocationError, InfeasibleSettingError
from ..registry import lookup
from .ratios import RATIO_TOLERANCE, check_unit_interval, floor_count

Shape = tuple[int, ...]

#: How far a per-layer fraction may stray outside [0, 1] and still count as float noise (then it is clamped).
FRACTION_NOISE = 1e-9

#: IGQ bisection: the bracket for F and the most halvings allowed (the bracket needs ~80 to reach 1/N).
_IGQ_BRACKET = (0.0, 1e20)
_IGQ_MAX_STEPS = 500



def _is_positive_int(dim: object) -> bool:
    return isinstance(dim, Integral) and not isinstance(dim, bool) and dim >= 1


def _layer_sizes(shapes: Sequence[Shape]) -> list[int]:
    """n_l = product of each shape; raises ``ValueError`` on an empty shape or a dimension below 1."""
    sizes = []
    for index, shape in enumerate(shapes):
        if len(shape) == 0 or any(not _is_positive_int(dim) for dim in shape):
            raise ValueError(f"layer {index}: a weight shape needs positive integer dimensions, got {shape!r}")
        sizes.append(math.prod(shape))
    return sizes


def uniform_sparsities(shapes: Sequence[Shape], density: float) -> list[float]:
    """s_l = 1 − d in every layer."""
    _layer_sizes(shapes)
    return [1.0 - density] * len(shapes)


def erk_sparsities(shapes: Sequence[Shape], density: float) -> list[float]:
    """Erdős–Rényi-Kernel: layer density ε·raw_l with raw_l = (sum of the dimensions)/n_l.

    ε solves ε·Σ_{non-dense} raw_l·n_l = Σ_{non-dense}(n_l − ⌊n_l(1−d)⌋) − Σ_{dense}⌊n_l(1−d)⌋, so the
    real-valued kept total is exactly N − Σ_l ⌊n_l(1−d)⌋. While some non-dense layer has ε·raw_l ≥ 1, the
    non-dense layer(s) with the largest raw_l become dense (sparsity 0) and ε is solved again. The test is
    ≥ as in docs/method.md: a layer with ε·raw_l = 1 exactly is kept whole either way, and marking it dense
    leaves ε unchanged. When every layer ends up dense (d = 1) all sparsities are 0.
    """
    sizes = _layer_sizes(shapes)
    raw = [sum(shape) / n for shape, n in zip(shapes, sizes)]
    zeros = [floor_count(n, 1.0 - density) for n in sizes]
    dense: set[int] = set()
    while True:
        sparse = [i for i in range(len(sizes)) if i not in dense]
        if not sparse:
            return [0.0] * len(sizes)
        # Dense layers keep all n_l weights instead of their n_l − zeros_l, so they take that much
        # budget away from the others: the right-hand side is the kept total minus the dense sizes.
        budget = sum(sizes[i] - zeros[i] for i in sparse) - sum(zeros[i] for i in dense)
        epsilon = budget / sum(raw[i] * sizes[i] for i in sparse)
        largest = max(raw[i] for i in sparse)
        if epsilon * largest < 1.0:
            return [0.0 if i in dense else 1.0 - epsilon * raw[i] for i in range(len(sizes))]
        # Marking a layer dense frees less budget than its share ε·raw_l·n_l ≥ n_l, so ε only grows
        # and the loop ends after at most one pass per layer.
        dense.update(i for i in sparse if raw[i] == largest)


def epl_sparsities(shapes: Sequence[Shape], density: float) -> list[float]:
    """Equal per layer: each layer keeps d·N/L weights, water-filled, then truncated to whole weights.

    A layer smaller than its share is kept whole and its excess is split equally among the other layers,
    until nothing is left over; the result is e_l = min(n_l, λ) with Σ e_l = d·N. Visiting the layers from
    the smallest up reaches the same λ as docs/method.md's repeated passes (a layer that overflows at one level
    overflows at every higher one). s_l = 1 − ⌊e_l⌋/n_l, so the kept total Σ⌊e_l⌋ lies in (d·N − L, d·N].
    """
    sizes = _layer_sizes(shapes)
    kept = [0.0] * len(sizes)
    remaining = density * sum(sizes)
    order = sorted(range(len(sizes)), key=lambda i: sizes[i])
    for position, index in enumerate(order):
        share = remaining / (len(order) - position)
        if sizes[index] > share:
            # Every later layer is at least as large, so none of them overflows: they all get the share.
            for other in order[position:]:
                kept[other] = share
            break
        kept[index] = float(sizes[index])
        remaining -= sizes[index]
    # ⌊e_l⌋ goes through floor_count like every other count, so 0.1·30 kept weights give 3, not 2.
    return [1.0 - floor_count(n, e / n) / n for e, n in zip(kept, sizes)]


def igq_sparsities(shapes: Sequence[Shape], density: float) -> list[float]:
    """Ideal Gas Quotas: layer density 1/(1 + F·n_l), one F ≥ 0 for the whole model.

    F is found by bisection on [0, 1e20], starting at F = 0 (which is exact for d = 1), and the first F
    whose overall sparsity 1 − Σ n_l·density_l / N is within 1/N of 1 − d is used: the kept total is within
    one weight of d·N. d = 0 gives sparsity 1 everywhere (the limit F → ∞), so that p + r = 1 freezes every
    weight. Raises ``RuntimeError`` if the bisection does not converge (it needs ~80 halvings at most).
    """
    sizes = _layer_sizes(shapes)
    if not sizes:
        return []
    if density <= 0.0:
        return [1.0] * len(sizes)
    total = sum(sizes)
    target = 1.0 - density

    def overall_sparsity(factor: float) -> float:
        return 1.0 - sum(n / (1.0 + factor * n) for n in sizes) / total

    low, high = _IGQ_BRACKET
    factor = low
    for _ in range(_IGQ_MAX_STEPS):
        achieved = overall_sparsity(factor)
        if abs(achieved - target) <= 1.0 / total:
            return [1.0 - 1.0 / (1.0 + factor * n) for n in sizes]
        # Overall sparsity grows with F: too dense means F must grow. Because every step is decided by
        # this comparison alone, a sparser target never stops at a smaller F than a denser one, which
        # keeps r_l ≥ 0 even though each answer is only accurate to one weight.
        if achieved < target:
            low = factor
        else:
            high = factor
        factor = (low + high) / 2.0
    raise RuntimeError(
        f"IGQ bisection did not reach overall sparsity {target:.9g} within 1/N = {1.0 / total:.3g} "
        f"in {_IGQ_MAX_STEPS} steps (last F = {factor:.6g})"
    )


DISTRIBUTIONS: dict[str, Callable[[Sequence[Shape], float], list[float]]] = {
    "erk": erk_sparsities,
    "epl": epl_sparsities,
    "igq": igq_sparsities,
    "uniform": uniform_sparsities,
}


def layer_sparsities(rule: str, shapes: Sequence[Shape], density: float) -> list[float]:
    """Per-layer sparsity s_l(d) of ``rule`` when the whole model keeps the fraction ``density`` of its weights.

    ``shapes`` are weight shapes, (out, in, kh, kw) for a convolution and (out, in) for a linear layer.
    Raises :class:`~frozen_slt.registry.UnknownNameError` listing the valid rules for an unknown ``rule``,
    and ``ValueError`` for a density outside [0, 1] or a malformed shape.
    """
    distribute = lookup(DISTRIBUTIONS, rule, "distribution")
    check_unit_interval("density", density)
    return distribute(shapes, density)


def _unit_fraction(value: float, what: str, index: int, rule: str, context: str) -> float:
    """Clamp float noise of at most FRACTION_NOISE into [0, 1]; raise AllocationError beyond it."""
    if -FRACTION_NOISE <= value <= 1.0 + FRACTION_NOISE:
        return min(1.0, max(0.0, value))
    raise AllocationError(
        f"allocation rule {rule!r} gives layer {index} {what} = {value:.9g}, outside [0, 1] ({context}); "
        f"this rule cannot be used with these ratios"
    )


def allocate_freeze_fractions(
    rule: str, shapes: Sequence[Shape], prune_ratio: float, lock_ratio: float
) -> list[tuple[float, float]]:
    """Per-layer (p_l, r_l) by the ``sparsity_distribution`` method of docs/method.md §7.

    frozen_l = s_l(1 − (p + r)), p_l = s_l(1 − p), r_l = frozen_l − p_l. A fraction that leaves [0, 1] by
    at most 1e-9 (float noise) is clamped to the bound; a larger excursion raises :class:`AllocationError`
    naming the layer, the rule and the values. Raises ``InfeasibleSettingError`` unless p, r ∈ [0, 1] and
    p + r ≤ 1.
    """
    check_unit_interval("prune_ratio", prune_ratio)
    check_unit_interval("lock_ratio", lock_ratio)
    if prune_ratio + lock_ratio > 1.0 + RATIO_TOLERANCE:
        raise InfeasibleSettingError(
            f"prune_ratio + lock_ratio must be <= 1, got {prune_ratio} + {lock_ratio} = {prune_ratio + lock_ratio:.6g}"
        )
    # 0.7 + 0.3 may round to just above 1; the frozen part then keeps density 0, not a negative one.
    frozen = layer_sparsities(rule, shapes, max(0.0, 1.0 - (prune_ratio + lock_ratio)))
    pruned = layer_sparsities(rule, shapes, 1.0 - prune_ratio)
    fractions = []
    for index, (frozen_l, pruned_l) in enumerate(zip(frozen, pruned)):
        context = (
            f"frozen_l = {frozen_l:.9g}, p_l = {pruned_l:.9g} for prune_ratio={prune_ratio}, lock_ratio={lock_ratio}"
        )
        fractions.append(
            (
                _unit_fraction(pruned_l, "p_l", index, rule, context),
                _unit_fraction(frozen_l - pruned_l, "r_l = frozen_l - p_l", index, rule, context),
            )
        )
    return fractions


def freeze_counts(rule: str, shapes: Sequence[Shape], prune_ratio: float, lock_ratio: float) -> list[tuple[int, int]]:
    """Per-layer exact (pruned, locked) counts (⌊n_l·p_l⌋, ⌊n_l·r_l⌋), floored by :func:`floor_count`."""
    fractions = allocate_freeze_fractions(rule, shapes, prune_ratio, lock_ratio)
    return [
        (floor_count(n, pruned_l), floor_count(n, locked_l))
        for n, (pruned_l, locked_l) in zip(_layer_sizes(shapes), fractions)
    ]
