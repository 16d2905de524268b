"""The global threshold of both routes is bit-identical to the authors' sort-based formulation (docs/method.md §4):
the eager radix select (what CUDA runs) and the fused CPU selection (a window search, then a radix select)."""

import math

import numpy as np
import pytest
import torch
from helpers import (
    bits,
    fused_loops,
    make_layers,
    reference_threshold,
    reference_update,
)
from torch import nn

from frozen_slt.fused import route as routes
from frozen_slt.fused.window import ThresholdWindow, radix_bits
from frozen_slt.method.layers import LOCKED, PRUNED, MaskedConv2d, MaskedLinear
from frozen_slt.method.threshold import (
    SelectionCounts,
    select_threshold,
    selection_counts,
    update_thresholds,
)


def counts_for(layers, zeros):
    counts = selection_counts(layers, 0.0)
    return SelectionCounts(counts.total, counts.pruned, counts.locked, counts.free, zeros)


def assert_same_threshold(layers, zeros):
    """Both routes give the reference's bits for ``zeros`` mask zeros; returns the reference τ."""
    expected = reference_threshold(layers, zeros)
    for fused in (True, False):
        with fused_loops(fused):
            got = select_threshold(layers, counts_for(layers, zeros))
        assert got.dtype == torch.float32 and got.shape == ()
        assert got.view(torch.int32) == expected.view(torch.int32), (zeros, fused, got, expected)
    return expected


SIZES = [
    [(3, 4)],
    [(10, 10), (1, 7)],
    [(64, 27), (64, 576), (10, 256)],
    [(300, 400), (50, 60), (128, 128)],
]


@pytest.mark.parametrize("sizes", SIZES)
@pytest.mark.parametrize("prune_fraction,lock_fraction", [(0.0, 0.0), (0.3, 0.0), (0.2, 0.3), (0.0, 0.5), (0.45, 0.45)])
def test_both_routes_match_the_reference_for_every_zero_count(sizes, prune_fraction, lock_fraction):
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


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "eager"])
def test_mask_has_exactly_the_target_zero_count(fused):
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
    with fused_loops(fused):
        update_thresholds(model)
    zeros = sum(int((~layer.keep_mask()).sum()) for layer in layers)
    assert zeros == math.floor(total * 0.45)
    for layer in layers:
        assert not layer.keep_mask()[layer.freeze_state == PRUNED].any()
        assert layer.keep_mask()[layer.freeze_state == LOCKED].all()
    found = model[0].threshold.clone()
    reference_update(model)
    assert torch.equal(model[0].threshold, found) and torch.equal(model[1].threshold, found)


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


def sources(layers):
    views = [routes.route(layer).views for layer in layers]
    return [(view.score.view(np.int32), view.state) for view in views]


def rank_and_answer(layers, zeros):
    counts = selection_counts(layers, 0.0)
    return zeros - counts.pruned, int(bits(reference_threshold(layers, zeros)))


def test_window_search_is_exact_or_declines():
    layers = make_layers([(300, 400), (50, 60)], 0.2, 0.3, seed=9)
    rank, answer = rank_and_answer(layers, 70_000)
    window = ThresholdWindow()
    assert window.search(sources(layers), rank, (answer, answer - 5000, answer + 5000)) == answer
    assert window.search(sources(layers), rank, (answer, answer, answer + 1)) == answer  # the answer alone
    assert window.search(sources(layers), rank, (answer, answer + 1, answer + 5000)) is None  # window above it
    assert window.search(sources(layers), rank, (answer, answer - 5000, answer)) is None  # window below it
    assert radix_bits(sources(layers), rank) == answer


def test_window_search_declines_when_its_buffer_overflows():
    layers = make_layers([(100, 100)], 0.1, 0.1, seed=2)
    rank, answer = rank_and_answer(layers, 5000)
    window = ThresholdWindow(capacity=8)
    assert window.search(sources(layers), rank, (answer, answer - 10**6, answer + 10**6)) is None
    assert window.search(sources(layers), rank, (answer, answer, answer + 1)) == answer


def test_the_window_is_sized_by_the_last_move_and_skips_edges():
    window = ThresholdWindow()
    assert window.bounds(-1) is None and window.bounds(0x7F800000) is None  # τ = −1 or +∞: no window
    assert window.bounds(100_000) == (100_000, 100_000 - 2048, 100_000 + 2049)
    window.remember(100_000 + 3000, 100_000)
    assert window.half_width == 12_000
    window.remember(5, 6)
    assert window.half_width == ThresholdWindow.MIN_HALF_WIDTH
    assert window.bounds(0x7F800000 - 10)[2] == 0x7F800000  # never past +∞: a NaN score is never inside


@pytest.mark.parametrize("start", ["answer", "near", "far", "infinite", "negative"])
def test_fused_threshold_matches_reference_from_any_starting_threshold(start):
    layers = make_layers([(120, 90), (64, 50), (10, 30)], 0.25, 0.15, seed=6)
    total = sum(layer.weight.numel() for layer in layers)
    for zeros in (total // 4, total // 2, 3 * total // 5):
        expected = reference_threshold(layers, zeros)
        value = {"answer": expected.item(), "near": expected.item() * 1.001, "far": 1e3, "infinite": math.inf,
                 "negative": -1.0}[start]
        for layer in layers:
            layer.threshold.fill_(value)
        got = select_threshold(layers, counts_for(layers, zeros), ThresholdWindow())
        assert torch.equal(bits(got), bits(expected)), (start, zeros)


def test_successive_updates_search_the_window_and_stay_exact(monkeypatch):
    from frozen_slt.fused import window as windows

    model = nn.Sequential(*make_layers([(200, 150), (80, 60)], 0.2, 0.2, seed=8))
    for layer in model:
        layer.configure(0.5, "none")
    radix_calls = []
    radix = windows.radix_bits
    monkeypatch.setattr(windows, "radix_bits", lambda *args: radix_calls.append(1) or radix(*args))
    generator = torch.Generator().manual_seed(0)
    window, steps = ThresholdWindow(), 12
    for _ in range(steps):
        with torch.no_grad():
            for layer in model:  # a small optimizer-like move of every score
                layer.score.add_(torch.randn(layer.score.shape, generator=generator), alpha=1e-3)
        fast = update_thresholds(model, window).clone()
        assert torch.equal(bits(fast), bits(reference_update(model)))
    assert len(radix_calls) < steps / 2  # most updates were answered by the window

