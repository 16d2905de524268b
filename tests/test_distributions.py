"""Allocation rules against cases worked out by hand (method.md §7)."""

import math

import pytest

from frozen_slt.distributions import allocate_freeze_fractions, freeze_counts, layer_sparsities
from frozen_slt.registry import UnknownNameError

CONV6 = [(64, 3, 3, 3), (64, 64, 3, 3), (128, 64, 3, 3), (128, 128, 3, 3), (256, 128, 3, 3), (256, 256, 3, 3),
         (256, 4096), (256, 256), (10, 256)]


def test_uniform_by_hand():
    assert freeze_counts("uniform", [(10, 10), (5, 4)], 0.3, 0.2) == [(30, 20), (6, 4)]


def test_erk_by_hand_without_dense_layers():
    # Shapes (10, 10) and (20, 10): n = 100, 200; raw = 20/100 = 0.2 and 30/200 = 0.15.
    # d = 0.5: zeros ⌊50⌋ and ⌊100⌋, so the kept budget is 50 + 100 = 150 = ε(0.2·100 + 0.15·200) = 50ε → ε = 3.
    # Densities 0.6 and 0.45 (both < 1): sparsities 0.4 and 0.55.
    assert layer_sparsities("erk", [(10, 10), (20, 10)], 0.5) == pytest.approx([0.4, 0.55])


def test_erk_marks_the_layer_with_largest_raw_dense_and_solves_again():
    # Shapes (2, 2) n=4 raw=1.0, and (100, 100) n=10000 raw=0.02. d = 0.5: zeros 2 and 5000.
    # First ε = (2 + 5000)/(4 + 200) = 24.52; ε·1.0 ≥ 1, so layer 0 is dense.
    # Again: ε·(0.02·10000) = 5000 − 2 → ε = 24.99; layer 1 density 0.4998, sparsity 0.5002.
    assert layer_sparsities("erk", [(2, 2), (100, 100)], 0.5) == pytest.approx([0.0, 0.5002])


def test_epl_water_filling_by_hand():
    # n = 10, 1000, 1000 (N = 2010), d = 0.5: share 1005/3 = 335 each; layer 0 holds only 10, so it is
    # dense and 325 go to the other two (162.5 each): kept 10, 497.5 → ⌊497.5⌋ = 497.
    sparsities = layer_sparsities("epl", [(10,), (1000,), (1000,)], 0.5)
    assert sparsities == pytest.approx([0.0, 1 - 497 / 1000, 1 - 497 / 1000])
    assert freeze_counts("epl", [(10,), (1000,), (1000,)], 0.5, 0.0) == [(0, 0), (503, 0), (503, 0)]


def test_igq_by_hand():
    # n = 100 and 300, d = 0.5: densities 1/(1 + 100F) and 1/(1 + 300F) with 100/(1+100F) + 300/(1+300F) = 200
    # With a = 100F: 1/(1+a) + 3/(1+3a) = 2 → 3a² + a − 1 = 0 → a = (√13 − 1)/6 = 0.43426, so densities are
    # 1/1.43426 = 0.69722 and 1/2.30278 = 0.43426, sparsities 0.30278 and 0.56574. Bisection stops within
    # 1/N = 1/400 of the overall target, which moves each layer's sparsity by less than 0.005 here.
    sparsities = layer_sparsities("igq", [(100,), (300,)], 0.5)
    assert sparsities == pytest.approx([0.30278, 0.56574], abs=0.005)
    assert sparsities[1] > sparsities[0]  # bigger layers are pruned harder
    kept = 100 * (1 - sparsities[0]) + 300 * (1 - sparsities[1])
    assert abs(kept - 200) <= 1


@pytest.mark.parametrize("rule", ["erk", "epl", "igq", "uniform"])
def test_realistic_allocation_keeps_the_global_fractions(rule):
    sizes = [math.prod(shape) for shape in CONV6]
    total = sum(sizes)
    fractions = allocate_freeze_fractions(rule, CONV6, 0.35, 0.35)
    frozen = layer_sparsities(rule, CONV6, 0.3)
    for (p_l, r_l), f_l in zip(fractions, frozen):
        assert 0 <= r_l <= 1 and 0 <= p_l <= 1 and p_l + r_l == pytest.approx(f_l)
    counts = freeze_counts(rule, CONV6, 0.35, 0.35)
    pruned, locked = sum(c[0] for c in counts), sum(c[1] for c in counts)
    assert abs(pruned - 0.35 * total) <= len(CONV6) + 0.001 * total
    assert abs(pruned + locked - 0.7 * total) <= 2 * len(CONV6) + 0.001 * total


@pytest.mark.parametrize("rule", ["erk", "epl", "igq", "uniform"])
def test_density_edges(rule):
    assert layer_sparsities(rule, CONV6, 1.0) == pytest.approx([0.0] * len(CONV6), abs=1e-6)
    assert layer_sparsities(rule, CONV6, 0.0) == pytest.approx([1.0] * len(CONV6), abs=1e-6)


def test_unknown_rule_lists_valid_names():
    with pytest.raises(UnknownNameError, match="unknown distribution 'snip'; valid: epl, erk, igq, uniform"):
        layer_sparsities("snip", CONV6, 0.5)
