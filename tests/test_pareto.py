"""Pareto fronts and hypervolume against fronts worked out by hand."""

import math

import pytest

from sweeps.dominance import (
    hypervolume,
    hypervolume_contributions,
    non_dominated_ranks,
    pareto_front,
    promotion_order,
)


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


def test_hypervolume_contributions_by_hand():
    # Against (20_000 bits, 0) the front (log10 size, accuracy) = (1, .5), (2, .7), (3, .8), (4, .95) alone adds
    # (2 - 1)(.5 - 0), (3 - 2)(.7 - .5), (4 - 3)(.8 - .7) and (log10 20_000 - 4)(.95 - .8)
    points = [(10, 0.5), (100, 0.7), (1000, 0.8), (10_000, 0.95)]
    assert hypervolume_contributions(points, (20_000, 0.0)) == pytest.approx([0.5, 0.2, 0.1, math.log10(2) * 0.15])
    assert hypervolume_contributions(points + [(100, 0.6)], (20_000, 0.0))[-1] == 0.0  # dominated: adds nothing
    assert hypervolume_contributions([(10, 0.5), (10, 0.5)], (100, 0.0)) == [0.0, 0.0]  # each duplicates the other


def test_promotion_order_by_hand():
    points = [(10, 0.5), (100, 0.7), (1000, 0.8), (10_000, 0.95)]
    # one layer, reference (20_000, 0): by contribution .5, .2, .1, .045
    assert promotion_order(points) == [0, 1, 2, 3]
    # (100, 0.6) is dominated by (100, 0.7), and (100, 0.5) by both: ranks 1 and 2 come after the layer
    assert promotion_order(points + [(100, 0.5), (100, 0.6)]) == [0, 1, 2, 3, 5, 4]
    # two tickets on the front, reference (600, 0): the small one adds (log10 300 - 2)(.5) = .24, the large
    # one (log10 2)(.8 - .5) = .09; with the small one at .1 accuracy it adds .048 against the large one's .21
    assert promotion_order([(300, 0.8), (100, 0.5)]) == [1, 0]
    assert promotion_order([(300, 0.8), (100, 0.1)]) == [0, 1]
    # equal accuracy: the smaller ticket dominates the larger one
    assert promotion_order([(100, 0.5), (10, 0.5)]) == [1, 0]
    # identical points: same rank, neither adds anything the other does not, so the one listed first goes first
    assert promotion_order([(10, 0.5), (10, 0.5)]) == [0, 1]
