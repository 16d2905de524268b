"""The fast global threshold is bit-identical to the authors' sort-based formulation (docs/method.md §4)."""

import math

import pytest
import torch
from torch import nn

from frozen_slt.layers import LOCKED, PRUNED, MaskedConv2d, MaskedLinear
from frozen_slt.threshold import (
    SelectionCounts,
    reference_threshold,
    select_threshold,
    selection_counts,
    update_thresholds,
)


def make_layers(sizes, prune_fraction, lock_fraction, seed, quantize=None):
    """Masked linear layers with random scores and an exact random freeze pattern per layer."""
    generator = torch.Generator().manual_seed(seed)
    layers = []
    for out_features, in_features in sizes:
        layer = MaskedLinear(in_features, out_features)
        scores = torch.randn(out_features, in_features, generator=generator)
        if quantize:
            scores = torch.round(scores * quantize) / quantize
        layer.score.data.copy_(scores)
        n = out_features * in_features
        order = torch.randperm(n, generator=generator)
        state = torch.zeros(n, dtype=torch.int8)
        pruned, locked = math.floor(n * prune_fraction), math.floor(n * lock_fraction)
        state[order[:pruned]] = PRUNED
        state[order[pruned : pruned + locked]] = LOCKED
        layer.set_freeze_state(state.view(out_features, in_features))
        layers.append(layer)
    return layers


def assert_same_threshold(layers, zeros):
    counts = selection_counts(layers, 0.0)
    counts = SelectionCounts(counts.total, counts.pruned, counts.locked, counts.free, zeros)
    expected = reference_threshold(layers, zeros)
    for fixed_shape in (False, True):
        got = select_threshold(layers, counts, fixed_shape=fixed_shape)
        assert got.dtype == torch.float32 and got.shape == ()
        assert got.view(torch.int32) == expected.view(torch.int32), (zeros, fixed_shape, got, expected)
    return expected


SIZES = [
    [(3, 4)],
    [(10, 10), (1, 7)],
    [(64, 27), (64, 576), (10, 256)],
    [(300, 400), (50, 60), (128, 128)],
]


@pytest.mark.parametrize("sizes", SIZES)
@pytest.mark.parametrize("prune_fraction,lock_fraction", [(0.0, 0.0), (0.3, 0.0), (0.2, 0.3), (0.0, 0.5), (0.45, 0.45)])
def test_fast_threshold_matches_reference_for_every_zero_count(sizes, prune_fraction, lock_fraction):
    layers = make_layers(sizes, prune_fraction, lock_fraction, seed=len(sizes))
    total = sum(o * i for o, i in sizes)
    counts = selection_counts(layers, 0.0)
    candidates = {0, 1, counts.pruned, counts.pruned + 1, counts.pruned + counts.free, counts.pruned + counts.free - 1,
                  total - 1, total, total // 3, total // 2}
    for zeros in sorted(c for c in candidates if 0 <= c <= total):
        assert_same_threshold(layers, zeros)


def test_edge_cases_have_the_authors_values():
    layers = make_layers([(20, 30)], 0.2, 0.3, seed=5)
    counts = selection_counts(layers, 0.0)
    assert counts.pruned == 120 and counts.locked == 180 and counts.free == 300
    assert assert_same_threshold(layers, 0).item() == -1.0
    assert assert_same_threshold(layers, 50).item() == -math.inf  # k_cnt <= pruned
    assert assert_same_threshold(layers, 120).item() == -math.inf  # k_cnt == pruned
    largest_free = layers[0].score.detach().abs()[layers[0].free].max()
    assert assert_same_threshold(layers, 420).item() == largest_free.item()  # k_cnt == N - locked
    assert assert_same_threshold(layers, 421).item() == math.inf  # k_cnt > N - locked
    assert assert_same_threshold(layers, 600).item() == math.inf


def test_ties_zeros_and_negative_zero_scores():
    layers = make_layers([(40, 50), (7, 9)], 0.1, 0.2, seed=3, quantize=2)
    layers[0].score.data[0, :10] = -0.0
    layers[0].score.data[1, :10] = 0.0
    total = 40 * 50 + 63
    for zeros in range(0, total + 1, 37):
        assert_same_threshold(layers, zeros)


def test_large_random_scores():
    layers = make_layers([(1000, 500), (512, 300)], 0.25, 0.25, seed=11)
    for zeros in (300_000, 400_000, 500_000):
        assert_same_threshold(layers, zeros)


def test_mask_has_exactly_the_target_zero_count():
    model = nn.Sequential(MaskedConv2d(3, 8, 3), MaskedLinear(20, 30))
    layers = list(model)
    for layer, seed in zip(layers, (1, 2)):
        generator = torch.Generator().manual_seed(seed)
        layer.score.data.copy_(torch.randn(layer.score.shape, generator=generator))
        state = torch.zeros(layer.weight.numel(), dtype=torch.int8)
        state[:40], state[40:70] = PRUNED, LOCKED
        layer.set_freeze_state(state.view(layer.weight.shape))
        layer.configure(0.45, "none")
    total = 8 * 27 + 600
    update_thresholds(model)
    zeros = sum(int((~layer.keep_mask()).sum()) for layer in layers)
    assert zeros == math.floor(total * 0.45)
    for layer in layers:
        assert not layer.keep_mask()[layer.freeze_state == PRUNED].any()
        assert layer.keep_mask()[layer.freeze_state == LOCKED].all()
    reference = model[0].threshold.clone()
    update_thresholds(model, method="reference")
    assert torch.equal(model[0].threshold, reference) and torch.equal(model[1].threshold, reference)


def test_forward_has_no_side_effects():
    model = nn.Sequential(MaskedLinear(6, 5))
    model[0].score.data.normal_()
    model[0].weight.normal_()
    model[0].configure(0.5, "dynamic")
    update_thresholds(model)
    before = {key: value.clone() for key, value in model.state_dict().items()}
    model(torch.randn(4, 6))
    model(torch.randn(4, 6))
    after = model.state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before)


def test_update_thresholds_rejects_a_model_without_masked_layers():
    with pytest.raises(ValueError, match="no masked layers"):
        update_thresholds(nn.Linear(3, 3))
