"""Accuracy-versus-size Pareto fronts and their hypervolume: pure functions on (size, accuracy) pairs.

Size is minimised and accuracy maximised. The hypervolume is measured with the size axis in log10 (the
fronts span orders of magnitude and are plotted that way), against a reference point that the caller
states: it is the area between the front and the reference point in (log10 size, accuracy) space.
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
