"""Allocation rules of docs/method.md §7 against cases worked out by hand, plus their global invariants."""

import math

import pytest

import frozen_slt.method.distributions as distributions
from frozen_slt.method.distributions import (
    DISTRIBUTIONS,
    AllocationError,
    allocate_freeze_fractions,
    freeze_counts,
    layer_sparsities,
)
from frozen_slt.method.ratios import floor_count
from frozen_slt.registry import UnknownNameError

RULES = ["erk", "epl", "igq", "uniform"]

# Two convolutions and a linear layer: n = 8·3·3·3 = 216, 16·8·3·3 = 1152, 10·16 = 160; N = 1528.
SMALL = [(8, 3, 3, 3), (16, 8, 3, 3), (10, 16)]

# Conv6 on 32×32×3 input with 10 classes (docs/method.md §8): 2,261,184 weights in 9 layers.
CONV6 = [
    (64, 3, 3, 3), (64, 64, 3, 3), (128, 64, 3, 3), (128, 128, 3, 3), (256, 128, 3, 3), (256, 256, 3, 3),
    (256, 4096), (256, 256), (10, 256),
]


def sizes(shapes):
    return [math.prod(shape) for shape in shapes]


def kept_total(shapes, sparsities):
    return sum(n * (1.0 - s) for n, s in zip(sizes(shapes), sparsities))


def test_conv6_has_the_papers_weight_count():
    assert sum(sizes(CONV6)) == 2_261_184


# ---------------------------------------------------------------- uniform


def test_uniform_by_hand():
    assert layer_sparsities("uniform", SMALL, 0.3) == pytest.approx([0.7, 0.7, 0.7])
    # p = 0.3, r = 0.2: p_l = 0.3 and r_l = (1 − 0.5) − (1 − 0.7) = 0.2 in every layer.
    # pruned ⌊216·0.3⌋ = ⌊64.8⌋ = 64, ⌊1152·0.3⌋ = ⌊345.6⌋ = 345, ⌊160·0.3⌋ = 48;
    # locked ⌊216·0.2⌋ = ⌊43.2⌋ = 43, ⌊1152·0.2⌋ = ⌊230.4⌋ = 230, ⌊160·0.2⌋ = 32.
    assert freeze_counts("uniform", SMALL, 0.3, 0.2) == [(64, 43), (345, 230), (48, 32)]


# ---------------------------------------------------------------- ERK


def test_erk_by_hand_without_dense_layers():
    # raw = (8+3+3+3)/216 = 17/216, (16+8+3+3)/1152 = 30/1152, (10+16)/160 = 26/160; raw·n = 17, 30, 26 (sum 73).
    # d = 0.2: zeros ⌊172.8⌋ = 172, ⌊921.6⌋ = 921, ⌊128⌋ = 128, so the kept budget is 44 + 231 + 32 = 307.
    # ε = 307/73 = 4.2055; largest ε·raw = 4.2055·0.1625 = 0.683 < 1: no dense layer.
    # s_l = 1 − ε·raw_l: 1 − 5219/15768, 1 − 9210/84096, 1 − 7982/11680.
    expected = [1 - 5219 / 15768, 1 - 9210 / 84096, 1 - 7982 / 11680]
    assert layer_sparsities("erk", SMALL, 0.2) == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx([0.669013, 0.890482, 0.316610], abs=1e-6)


def test_erk_by_hand_marks_dense_layers_and_solves_again():
    # d = 0.5: zeros 108, 576, 80; kept budget 108 + 576 + 80 = 764.
    # Round 1: ε = 764/73 = 10.466; ε·raw = 0.824, 0.273, 1.701. The linear layer (largest raw) is dense.
    # Round 2: ε·(17 + 30) = (108 + 576) − 80 → ε = 604/47 = 12.851; ε·17/216 = 1.011 ≥ 1: the first conv too.
    # Round 3: ε·30 = 576 − 108 − 80 = 388 → ε = 12.933; ε·30/1152 = 0.337 < 1. s = [0, 1 − 388/1152, 0].
    assert layer_sparsities("erk", SMALL, 0.5) == pytest.approx([0.0, 1 - 388 / 1152, 0.0], abs=1e-12)


def test_erk_marks_tied_largest_raw_layers_dense_together():
    # n = 4, 4, 10000; raw = 1, 1, 0.02; raw·n = 4, 4, 200. d = 0.5: zeros 2, 2, 5000; budget 5004.
    # ε = 5004/208 = 24.06 ≥ 1 for both tiny layers → both dense; ε = (5000 − 2 − 2)/200 = 24.98.
    # Big layer density 24.98·0.02 = 0.4996, sparsity 0.5004.
    assert layer_sparsities("erk", [(2, 2), (2, 2), (100, 100)], 0.5) == pytest.approx([0, 0, 0.5004], abs=1e-12)


def test_erk_counts_by_hand():
    # p = 0.5, r = 0.3: p_l = s_l(0.5) = [0, 764/1152, 0] (previous test), frozen_l = s_l(0.2) (the test before).
    # pruned: 0, 764, 0. locked = ⌊n_l·frozen_l − n_l·p_l⌋ with n_l·frozen_l = n_l − ε·raw_l·n_l, ε = 307/73:
    # ⌊216 − 5219/73⌋ = ⌊144.507⌋ = 144, ⌊1152 − 9210/73 − 764⌋ = ⌊261.836⌋ = 261, ⌊160 − 7982/73⌋ = ⌊50.658⌋ = 50.
    assert freeze_counts("erk", SMALL, 0.5, 0.3) == [(0, 144), (764, 261), (0, 50)]


# ---------------------------------------------------------------- EPL


def test_epl_by_hand_no_layer_dense():
    # d = 0.3: share 0.3·1528/3 = 152.8 < every n_l; ⌊152.8⌋ = 152 kept in each layer.
    assert layer_sparsities("epl", SMALL, 0.3) == pytest.approx([1 - 152 / 216, 1 - 152 / 1152, 1 - 152 / 160])


def test_epl_by_hand_one_layer_dense():
    # d = 0.35: d·N = 534.8, share 178.267. The linear layer holds only 160: dense, excess 18.267 split in two,
    # 187.4 each; 187.4 < 216 and < 1152, so water-filling stops. ⌊187.4⌋ = 187.
    assert layer_sparsities("epl", SMALL, 0.35) == pytest.approx([1 - 187 / 216, 1 - 187 / 1152, 0.0])


def test_epl_by_hand_dense_layers_in_two_rounds():
    # d = 0.4: d·N = 611.2, share 203.733. The linear layer (160) is dense; excess 43.733 → 225.6 each,
    # now the first conv (216) overflows too; the big conv keeps 611.2 − 160 − 216 = 235.2 → ⌊235.2⌋ = 235.
    assert layer_sparsities("epl", SMALL, 0.4) == pytest.approx([0.0, 1 - 235 / 1152, 0.0])


def test_epl_counts_by_hand():
    # p = 0.6, r = 0.05: p_l = s_l(0.4) = [0, 917/1152, 0]; frozen_l = s_l(0.35) = [29/216, 965/1152, 0].
    # pruned 0, 917, 0; locked 216·29/216 = 29, 1152·(965 − 917)/1152 = 48, 0.
    assert freeze_counts("epl", SMALL, 0.6, 0.05) == [(0, 29), (917, 48), (0, 0)]


# ---------------------------------------------------------------- IGQ


def test_igq_by_hand_two_layers():
    # n = 100, 300, d = 0.5: 100/(1 + 100F) + 300/(1 + 300F) = 200. With a = 100F:
    # 1/(1+a) + 3/(1+3a) = 2 → 3a² + a − 1 = 0 → a = (√13 − 1)/6 = 0.434259.
    # Densities 1/(1+a) = 0.697224 and 1/(1+3a) = 0.434259; sparsities 0.302776 and 0.565741.
    # Bisection stops once the kept total is within 1/N·N = 1 weight of 200; both layers move the same way
    # (one F), so each layer's kept count is off by at most 1: |Δs_l| ≤ 1/n_l.
    shapes = [(10, 10), (30, 10)]
    a = (math.sqrt(13) - 1) / 6
    sparsities = layer_sparsities("igq", shapes, 0.5)
    assert sparsities[0] == pytest.approx(1 - 1 / (1 + a), abs=1 / 100)
    assert sparsities[1] == pytest.approx(1 - 1 / (1 + 3 * a), abs=1 / 300)
    assert abs(kept_total(shapes, sparsities) - 200) <= 1 + 1e-9
    # One F for both layers: (1/density_l − 1)/n_l is the same.
    factors = [(1 / (1 - s) - 1) / n for s, n in zip(sparsities, sizes(shapes))]
    assert factors[0] == pytest.approx(factors[1], rel=1e-9)


def test_igq_counts_by_hand():
    # Five layers of n = 100 (IGQ only sees n_l): one density for all, and the kept total is within 1 of d·500,
    # so each layer's kept count is within 1/5 of 100·d.
    # p = 0.395: 100·0.605 = 60.5 → kept in [60.3, 60.7], pruned ⌊100 − kept⌋ = 39.
    # p + r = 0.7: 100·0.3 = 30 → kept in [29.8, 30.2]; locked ⌊60.5 − 30 ± 0.4⌋ = 30.
    shapes = [(10, 10), (4, 25), (5, 20), (2, 50), (100,)]
    assert freeze_counts("igq", shapes, 0.395, 0.305) == [(39, 30)] * 5


# ---------------------------------------------------------------- all rules


@pytest.mark.parametrize("density", [0.0, 0.05, 0.2, 0.3, 0.5, 0.7, 0.9, 0.99, 1.0])
@pytest.mark.parametrize("shapes", [SMALL, CONV6], ids=["small", "conv6"])
def test_kept_total_hits_the_target_up_to_flooring(shapes, density):
    total, layers = sum(sizes(shapes)), len(shapes)
    target = density * total
    # uniform keeps exactly d·N before flooring; its counts keep N − Σ⌊n_l(1−d)⌋ ∈ [d·N, d·N + L).
    floored_target = total - sum(floor_count(n, 1 - density) for n in sizes(shapes))
    assert target - 1e-6 <= floored_target < target + layers
    assert kept_total(shapes, layer_sparsities("uniform", shapes, density)) == pytest.approx(target, abs=1e-6)
    # ERK solves for that floored target itself: its real-valued kept total is N − Σ⌊n_l(1−d)⌋.
    assert kept_total(shapes, layer_sparsities("erk", shapes, density)) == pytest.approx(floored_target, abs=1e-6)
    # EPL truncates each layer's kept count: Σ⌊e_l⌋ ∈ (d·N − L, d·N], and it is a whole number.
    kept = kept_total(shapes, layer_sparsities("epl", shapes, density))
    assert kept == pytest.approx(round(kept), abs=1e-6)
    assert target - layers < kept <= target + 1e-6
    # IGQ: overall sparsity within 1/N of 1 − d.
    sparsity = 1 - kept_total(shapes, layer_sparsities("igq", shapes, density)) / total
    assert abs(sparsity - (1 - density)) <= 1 / total + 1e-12


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("shapes", [SMALL, CONV6], ids=["small", "conv6"])
def test_density_edges(rule, shapes):
    assert layer_sparsities(rule, shapes, 1.0) == pytest.approx([0.0] * len(shapes), abs=1e-12)
    assert layer_sparsities(rule, shapes, 0.0) == pytest.approx([1.0] * len(shapes), abs=1e-12)
    n = sizes(shapes)
    assert freeze_counts(rule, shapes, 0.0, 0.0) == [(0, 0)] * len(shapes)
    assert freeze_counts(rule, shapes, 1.0, 0.0) == [(size, 0) for size in n]
    assert freeze_counts(rule, shapes, 0.0, 1.0) == [(0, size) for size in n]
    # p + r = 1 (0.7 + 0.3 may even round above 1): frozen_l = 1, so n_l·p_l + n_l·r_l = n_l, but the two are
    # floored separately (docs/method.md §7.2): ⌊n_l·0.7⌋ + ⌊n_l·0.3⌋ is n_l or n_l − 1 (one free weight left).
    counts = freeze_counts(rule, shapes, 0.7, 0.3)
    fractions = allocate_freeze_fractions(rule, shapes, 0.7, 0.3)
    for size, (pruned, locked), (p_l, r_l) in zip(n, counts, fractions):
        assert p_l + r_l == pytest.approx(1.0, abs=1e-12)
        assert pruned == floor_count(size, p_l) and size - 1 <= pruned + locked <= size


@pytest.mark.parametrize("rule", RULES)
def test_sparsity_never_grows_with_density(rule):
    # The reason r_l = s_l(1 − p − r) − s_l(1 − p) ≥ 0 for every shipped rule.
    grid = [i / 200 for i in range(201)]
    for shapes in (SMALL, CONV6, [(2, 2), (2, 2), (100, 100)]):
        rows = [layer_sparsities(rule, shapes, d) for d in grid]
        for sparser, denser in zip(rows, rows[1:]):
            assert all(b <= a + 1e-12 for a, b in zip(sparser, denser))


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("prune_ratio, lock_ratio", [(0.35, 0.35), (0.5, 0.2), (0.1, 0.6), (0.0, 0.7), (0.7, 0.0)])
def test_allocation_on_conv6_keeps_the_global_fractions(rule, prune_ratio, lock_ratio):
    n, total, layers = sizes(CONV6), sum(sizes(CONV6)), len(CONV6)
    fractions = allocate_freeze_fractions(rule, CONV6, prune_ratio, lock_ratio)
    frozen = layer_sparsities(rule, CONV6, 1 - (prune_ratio + lock_ratio))
    for (p_l, r_l), frozen_l in zip(fractions, frozen):
        assert 0 <= p_l <= 1 and 0 <= r_l <= 1
        assert p_l + r_l == pytest.approx(frozen_l, abs=1e-12)
    # Σ n_l·p_l is the rule's kept-side total at d = 1 − p: within L weights of N·p for every rule (IGQ: 1).
    assert abs(sum(size * p_l for size, (p_l, _) in zip(n, fractions)) - total * prune_ratio) < layers
    # Counts add one floor per fraction: pruned within 2L of N·p, pruned + locked within 3L of N·f.
    counts = freeze_counts(rule, CONV6, prune_ratio, lock_ratio)
    pruned = sum(c[0] for c in counts)
    frozen_count = sum(c[0] + c[1] for c in counts)
    assert abs(pruned - total * prune_ratio) < 2 * layers
    assert abs(frozen_count - total * (prune_ratio + lock_ratio)) < 3 * layers
    assert all(0 <= c[0] + c[1] <= size for c, size in zip(counts, n))


@pytest.mark.parametrize("rule", RULES)
def test_a_lock_ratio_far_below_one_weight_never_raises(rule):
    # r = 1e-12 makes both solves nearly identical: r_l must come out as 0 (or noise clamped to 0), not an error.
    fractions = allocate_freeze_fractions(rule, CONV6, 0.4, 1e-12)
    assert all(r_l >= 0 for _, r_l in fractions)
    assert all(locked == 0 for _, locked in freeze_counts(rule, CONV6, 0.4, 1e-12))


# ---------------------------------------------------------------- errors and clamping


@pytest.mark.parametrize("call", [
    lambda: layer_sparsities("snip", CONV6, 0.5),
    lambda: allocate_freeze_fractions("snip", CONV6, 0.2, 0.2),
    lambda: freeze_counts("snip", CONV6, 0.2, 0.2),
])
def test_unknown_rule_lists_valid_names(call):
    with pytest.raises(UnknownNameError, match="unknown distribution 'snip'; valid: epl, erk, igq, uniform"):
        call()


def test_registry_holds_exactly_the_four_rules():
    assert sorted(DISTRIBUTIONS) == ["epl", "erk", "igq", "uniform"]


def test_bad_inputs_raise_value_errors():
    with pytest.raises(ValueError, match="density"):
        layer_sparsities("erk", CONV6, 1.5)
    with pytest.raises(ValueError, match="positive integer dimensions"):
        layer_sparsities("erk", [(0, 3)], 0.5)
    with pytest.raises(ValueError, match="prune_ratio \\+ lock_ratio must be <= 1"):
        allocate_freeze_fractions("uniform", CONV6, 0.6, 0.5)


def test_no_layers_gives_no_fractions():
    for rule in RULES:
        assert layer_sparsities(rule, [], 0.5) == []
        assert freeze_counts(rule, [], 0.3, 0.3) == []


def test_a_clearly_negative_lock_fraction_raises(monkeypatch):
    # No shipped rule can do this (sparsities never grow with d, test above), so a rule that gets sparser as
    # the density grows is registered for the test: s_l(d) = d gives r_l = (1 − p − r) − (1 − p) = −r.
    monkeypatch.setitem(DISTRIBUTIONS, "rising", lambda shapes, density: [density] * len(shapes))
    with pytest.raises(AllocationError, match=r"rule 'rising' gives layer 0 r_l = frozen_l - p_l = -0\.2") as info:
        allocate_freeze_fractions("rising", SMALL, 0.3, 0.2)
    assert isinstance(info.value, ValueError)
    assert "frozen_l = 0.5" in str(info.value) and "p_l = 0.7" in str(info.value)


def test_float_noise_is_clamped_to_the_bound(monkeypatch):
    # r_l = −1e-12·r and p_l = 1 + 5e-10: noise within 1e-9 lands exactly on the bound.
    monkeypatch.setitem(DISTRIBUTIONS, "noisy", lambda shapes, density: [0.5 + 1e-12 * density] * len(shapes))
    assert allocate_freeze_fractions("noisy", SMALL, 0.3, 0.2) == [(0.5 + 1e-12 * 0.7, 0.0)] * 3
    monkeypatch.setitem(DISTRIBUTIONS, "overfull", lambda shapes, density: [1 + 5e-10] * len(shapes))
    assert allocate_freeze_fractions("overfull", SMALL, 0.3, 0.2) == [(1.0, 0.0)] * 3
    monkeypatch.setitem(DISTRIBUTIONS, "broken", lambda shapes, density: [1 + 1e-6] * len(shapes))
    with pytest.raises(AllocationError, match="layer 0 p_l = 1.000001"):
        allocate_freeze_fractions("broken", SMALL, 0.3, 0.2)


def test_igq_bisection_that_cannot_converge_raises(monkeypatch):
    monkeypatch.setattr(distributions, "_IGQ_MAX_STEPS", 3)
    with pytest.raises(RuntimeError, match="IGQ bisection did not reach"):
        layer_sparsities("igq", CONV6, 0.5)
