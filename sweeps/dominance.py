"""Accuracy-versus-size Pareto fronts and their hypervolume: pure functions on (size, accuracy) pairs.

Size is minimised and accuracy maximised. The hypervolume is measured with the size axis in log10 (the
fronts span orders of magnitude and are plotted that way), against a reference point that the caller
states: it is the area between the front and the reference point in (log10 size, accuracy) space.
Non-dominated sorting and each point's hypervolume contribution order a table of trials for keeping the
best few of it (:func:`promotion_order`, used by the sweeps' early-stopping scheduler).
"""

from __future__ import annotations

import math
from typing import Sequence

Point = tuple[float, float]  # (size_bits, accuracy)


def pareto_front(points: Sequence[Point]) -> list[int]:
    """Indices of the non-dominated points, by increasing size; of identical points the first is kept."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1], i))
    front, best_accuracy = [], -math.inf
    for index in order:
        if points[index][1] > best_accuracy:
            front.append(index)
            best_accuracy = points[index][1]
    return front


def non_dominated_ranks(points: Sequence[Point]) -> list[int]:
    """Rank of every point under non-dominated sorting: 0 for the front, 1 for the front of the rest, ..."""
    ranks = [-1] * len(points)
    remaining = list(range(len(points)))
    rank = 0
    while remaining:
        layer = {remaining[i] for i in pareto_front([points[j] for j in remaining])}
        layer |= {j for j in remaining if any(points[j] == points[k] for k in layer)}
        for index in layer:
            ranks[index] = rank
        remaining = [j for j in remaining if j not in layer]
        rank += 1
    return ranks


def hypervolume(points: Sequence[Point], reference: Point) -> float:
    """Area dominated by ``points`` and bounded by ``reference`` = (size_bits, accuracy), in (log10 size, accuracy).

    Points not strictly better than the reference in both coordinates contribute nothing.
    """
    reference_x = math.log10(reference[0])
    inside = [(math.log10(size), accuracy) for size, accuracy in points if 0 < size < reference[0] and accuracy > reference[1]]
    area = 0.0
    front = [inside[i] for i in pareto_front(inside)]
    for position, (x, accuracy) in enumerate(front):
        next_x = front[position + 1][0] if position + 1 < len(front) else reference_x
        area += (next_x - x) * (accuracy - reference[1])
    return area


def hypervolume_contributions(points: Sequence[Point], reference: Point) -> list[float]:
    """The hypervolume each point adds to the others' (SMS-EMOA's exclusive contribution), in the units
    of :func:`hypervolume`: 0 for a point another one dominates or duplicates, or outside ``reference``."""
    total = hypervolume(points, reference)
    return [total - hypervolume([p for j, p in enumerate(points) if j != i], reference) for i in range(len(points))]


def promotion_order(points: Sequence[Point]) -> list[int]:
    """Indices of ``points`` from best to worst, for keeping the best few of a multi-objective table.

    By non-dominated rank first (size ↓, accuracy ↑); inside a rank by the hypervolume each point
    contributes to its layer, larger first, against the reference (2 × the largest size of ``points``,
    accuracy 0) that the sweep's fronts use, so the points kept are those that most enlarge the front
    as the sweep measures it; then by higher accuracy, then smaller size, then position in ``points``
    (earlier first). The order is total and depends only on the values and their order in the list.
    """
    ranks = non_dominated_ranks(points)
    reference = (2.0 * max((size for size, _ in points), default=1.0), 0.0)
    contribution = [0.0] * len(points)
    for rank in set(ranks):
        layer = [i for i in range(len(points)) if ranks[i] == rank]
        for index, value in zip(layer, hypervolume_contributions([points[i] for i in layer], reference)):
            contribution[index] = value
    return sorted(range(len(points)), key=lambda i: (ranks[i], -contribution[i], -points[i][1], points[i][0], i))
