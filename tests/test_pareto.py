"""Pareto fronts and hypervolume against fronts worked out by hand."""

import math

import pytest

from frozen_slt.pareto import hypervolume, non_dominated_ranks, pareto_front


def test_front_by_hand():
    points = [(100, 0.50), (10, 0.60), (1000, 0.90), (100, 0.70), (10, 0.40), (500, 0.70), (1000, 0.85)]
    # size 10: best 0.60 (index 1); size 100: 0.70 beats 0.60 (index 3); size 500: 0.70 does not beat 0.70;
    # size 1000: 0.90 (index 2); everything else is dominated.
    assert pareto_front(points) == [1, 3, 2]
    # Without those: (10, 0.40) < (100, 0.50) < (500, 0.70) < (1000, 0.85) is increasing, so all four form rank 1.
    assert non_dominated_ranks(points) == [1, 0, 0, 0, 1, 1, 1]
    assert non_dominated_ranks(points[:1] + [(5, 0.55)]) == [1, 0]


def test_identical_points_share_a_rank_and_front_keeps_the_first():
    points = [(10, 0.5), (10, 0.5), (20, 0.4)]
    assert pareto_front(points) == [0]
    assert non_dominated_ranks(points) == [0, 0, 1]


def test_hypervolume_by_hand():
    # Reference (10_000 bits, accuracy 0.1). Front in (log10 size, accuracy): (1, 0.6), (2, 0.7), (3, 0.9).
    # Area = (2-1)(0.6-0.1) + (3-2)(0.7-0.1) + (4-3)(0.9-0.1) = 0.5 + 0.6 + 0.8 = 1.9
    points = [(10, 0.6), (100, 0.7), (1000, 0.9), (100, 0.5), (20_000, 0.99), (50, 0.05)]
    assert hypervolume(points, (10_000, 0.1)) == pytest.approx(1.9)


def test_hypervolume_edge_cases():
    assert hypervolume([], (100, 0.0)) == 0.0
    assert hypervolume([(100, 0.9)], (100, 0.0)) == 0.0  # on the reference size: no area
    assert hypervolume([(1, 0.5)], (100, 0.0)) == pytest.approx(2 * 0.5)
    assert math.isclose(hypervolume([(10, 0.5), (10, 0.5)], (100, 0.0)), 0.5)
