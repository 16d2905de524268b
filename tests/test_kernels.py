"""The fused CPU loops (frozen_slt.kernels) give the eager formulations' results bit for bit."""

import contextlib
import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from frozen_slt import kernels
from frozen_slt import threshold as thresholds
from frozen_slt.config import ExperimentConfig
from frozen_slt.data import load_dataset
from frozen_slt.layers import LOCKED, PRUNED, MaskedConv2d, MaskedLinear, masked_layers
from frozen_slt.network import build_network
from frozen_slt.threshold import reference_threshold, selection_counts, update_thresholds
from frozen_slt.train import make_optimizer, train_step
from test_layers import random_layer
from test_threshold import make_layers


@contextlib.contextmanager
def fused_loops(enabled: bool):
    previous = kernels.set_enabled(enabled)
    try:
        yield
    finally:
        kernels.set_enabled(previous)


def bits(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().contiguous().view(torch.int32)


def forward_and_gradient(layer, inputs, target):
    layer.score.grad = None
    output = layer(inputs)
    ((output - target) ** 2).sum().backward()
    return output.detach(), layer.score.grad.clone()


def threshold_values(layer):
    """τ at the edges of §4 and in the middle, including one equal to a free score (|S| > τ is strict)."""
    free_magnitudes = layer.score.detach().abs()[layer.free]
    return [-math.inf, -1.0, 0.0, free_magnitudes.median().item(), free_magnitudes[3].item(), math.inf]


@pytest.mark.parametrize("scale", ["none", "static", "dynamic"])
@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_masked_layer_fused_equals_eager(kind, scale):
    torch.manual_seed(0)
    if kind == "linear":
        layer, inputs = MaskedLinear(30, 20), torch.randn(5, 30)
    else:
        layer, inputs = MaskedConv2d(3, 8, 3, padding=1), torch.randn(2, 3, 6, 6)
    random_layer(layer, seed=3, pruned=40, locked=50)
    layer.configure(0.4, scale)
    target = torch.randn_like(layer(inputs))
    for tau in threshold_values(layer):
        layer.threshold.fill_(tau)
        with fused_loops(True):
            assert layer.fused_arrays() is not None
            fused_output, fused_gradient = forward_and_gradient(layer, inputs, target)
        with fused_loops(False):
            assert layer.fused_arrays() is None
            eager_output, eager_gradient = forward_and_gradient(layer, inputs, target)
        assert torch.equal(fused_output, eager_output), tau  # equal values; a dropped weight's zero may differ in sign
        assert torch.equal(bits(fused_gradient), bits(eager_gradient)), tau
        assert fused_gradient.abs().sum() > 0


def test_fused_mask_keeps_locked_drops_pruned_and_is_strict():
    layer = MaskedLinear(4, 1)
    layer.weight.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    layer.score.data.copy_(torch.tensor([[0.5, -0.5, 0.1, 9.0]]))
    layer.set_freeze_state(torch.tensor([[0, 1, 0, -1]], dtype=torch.int8))
    for tau, expected in ((0.5, [0.0, 2.0, 0.0, 0.0]), (0.05, [1.0, 2.0, 3.0, 0.0]), (math.inf, [0.0, 2.0, 0.0, 0.0]),
                          (-math.inf, [1.0, 2.0, 3.0, 0.0])):
        layer.threshold.fill_(tau)
        assert layer.fused_arrays() is not None
        assert layer.effective_weight().tolist() == [expected], tau


def test_dynamic_scale_counts_locked_entries_as_kept():
    layer = MaskedLinear(4, 1)
    layer.weight.fill_(1.0)
    layer.score.data.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    layer.set_freeze_state(torch.tensor([[1, 0, 0, -1]], dtype=torch.int8))
    layer.configure(0.5, "dynamic")
    layer.threshold.fill_(2.5)  # keeps the locked entry and |3| → density 2/4
    assert layer(torch.ones(1, 4)).item() == pytest.approx(2 / math.sqrt(0.5))
    layer.threshold.fill_(math.inf)  # keeps the locked entry only → density 1/4
    assert layer(torch.ones(1, 4)).item() == pytest.approx(1 / math.sqrt(0.25))


def test_views_follow_the_layers_tensors():
    layer = random_layer(MaskedConv2d(2, 3, 3), seed=1)
    first = layer.fused_arrays()
    assert first is layer.fused_arrays()  # kept while the tensors stay put
    with torch.no_grad():
        layer.score.copy_(-layer.score)  # in place: the views see it
    assert np.array_equal(first[0], layer.score.detach().view(-1).numpy())
    source = random_layer(MaskedConv2d(2, 3, 3), seed=2)
    layer.load_state_dict(source.state_dict())
    assert torch.equal(layer.effective_weight(), source.effective_weight())
    layer.score = nn.Parameter(layer.score.detach().clone())  # a new tensor: new views
    assert layer.fused_arrays()[0].ctypes.data == layer.score.data_ptr()
    assert layer.double().fused_arrays() is None  # float64: the eager operators run
    copied = copy.deepcopy(source)
    assert "_fused_views" not in copied.__dict__
    assert copied.fused_arrays()[0].ctypes.data == copied.score.data_ptr()


def test_without_numba_the_eager_operators_run(monkeypatch):
    layer = random_layer(MaskedLinear(6, 4), seed=4)
    expected = copy.deepcopy(layer).effective_weight()  # fused, in a copy: the layer has not looked yet
    monkeypatch.setattr(kernels, "_loops", lambda: None)
    assert not kernels.usable(layer.score)
    assert layer.fused_arrays() is None
    assert torch.equal(layer.effective_weight(), expected)
    with pytest.raises(RuntimeError, match="need numba"):
        kernels.loops()


def sources(layers):
    return [(layer.fused_arrays()[0].view(np.int32), layer.fused_arrays()[2]) for layer in layers]


def rank_and_answer(layers, zeros):
    counts = selection_counts(layers, 0.0)
    return zeros - counts.pruned, int(bits(reference_threshold(layers, zeros)))


def test_window_search_is_exact_or_declines():
    layers = make_layers([(300, 400), (50, 60)], 0.2, 0.3, seed=9)
    rank, answer = rank_and_answer(layers, 70_000)
    assert thresholds._window_bits(sources(layers), rank, answer - 5000, answer + 5000) == answer
    assert thresholds._window_bits(sources(layers), rank, answer, answer + 1) == answer  # the answer alone
    assert thresholds._window_bits(sources(layers), rank, answer + 1, answer + 5000) is None  # window above it
    assert thresholds._window_bits(sources(layers), rank, answer - 5000, answer) is None  # window below it


def test_window_search_declines_when_its_buffer_overflows(monkeypatch):
    layers = make_layers([(100, 100)], 0.1, 0.1, seed=2)
    rank, answer = rank_and_answer(layers, 5000)
    monkeypatch.setattr(thresholds, "_WINDOW_CAPACITY", 8)
    assert thresholds._window_bits(sources(layers), rank, answer - 10**6, answer + 10**6) is None
    assert thresholds._window_bits(sources(layers), rank, answer, answer + 1) == answer


def test_collected_window_excludes_frozen_entries_and_both_neighbours():
    values = np.array([5, 10, 12, 15, 21, 22, 30, 0x7F800000], dtype=np.int32)
    state = np.array([0, 0, -1, 0, 1, 0, 0, 0], dtype=np.int8)
    out = np.empty(8, dtype=np.int32)
    count = kernels.loops().collect_window(values, state, 10, 12, out, 0)  # [10, 22)
    assert out[:count].tolist() == [10, 15]
    assert kernels.loops().count_below(values, state, 22) == 3  # 5, 10, 15; frozen 12 and 21 not counted


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
        counts = selection_counts(layers, 0.0)
        got = thresholds.select_threshold(layers, thresholds.SelectionCounts(counts.total, counts.pruned, counts.locked,
                                                                             counts.free, zeros))
        assert torch.equal(bits(got), bits(expected)), (start, zeros)


def test_successive_updates_search_the_window_and_stay_exact(monkeypatch):
    model = nn.Sequential(*make_layers([(200, 150), (80, 60)], 0.2, 0.2, seed=8))
    for layer in model:
        layer.configure(0.5, "none")
    radix_calls = []
    radix = thresholds._fused_radix_bits
    monkeypatch.setattr(thresholds, "_fused_radix_bits", lambda *args: radix_calls.append(1) or radix(*args))
    generator = torch.Generator().manual_seed(0)
    steps = 12
    for _ in range(steps):
        with torch.no_grad():
            for layer in model:  # a small optimizer-like move of every score
                layer.score.add_(torch.randn(layer.score.shape, generator=generator), alpha=1e-3)
        fast = update_thresholds(model).clone()
        assert torch.equal(bits(fast), bits(update_thresholds(model, method="reference")))
    assert len(radix_calls) < steps / 2  # most updates were answered by the window


def tiny_run(fused: bool, steps: int = 4):
    config = ExperimentConfig.from_settings({"model": "conv4", "dataset": "digits", "batch_size": 16,
                                             "sparsity": 0.5, "freeze_ratio": 0.4, "lr": 0.05, "device": "cpu"})
    with fused_loops(fused):
        network = build_network(config, torch.device("cpu"))
        optimizer = make_optimizer(config, network.model)
        data = load_dataset("digits", config.data, torch.device("cpu"))
        losses = []
        for step, (inputs, labels) in enumerate(data.train_batches(16, 1)):
            if step == steps:
                break
            losses.append(train_step(network, optimizer, config, (inputs,), labels)[0])
        layers = masked_layers(network.model)
        assert all((layer.fused_arrays() is not None) == fused for layer in layers)
        return losses, [layer.threshold.clone() for layer in layers], [layer.score.detach().clone() for layer in layers]


def test_training_steps_are_identical_with_and_without_the_fused_loops():
    fused, eager = tiny_run(True), tiny_run(False)
    for fused_values, eager_values in zip(fused, eager):
        assert all(torch.equal(bits(a), bits(b)) for a, b in zip(fused_values, eager_values))
    assert fused[0][0] != fused[0][-1]  # the steps trained something


@pytest.mark.parametrize("scaled", [False, True])
def test_score_step_counts_collects_and_prepares_the_next_effective_weight(scaled):
    """Beside the update (compared with torch's SGD in test_score_sgd), one pass counts the new free |S| below
    the window, collects those inside it and writes W_eff wherever the window decides the mask."""
    generator = np.random.default_rng(5)
    size = 3 * kernels.BLOCK + 77
    grad, weight = (generator.standard_normal(size).astype(np.float32) for _ in range(2))
    score = (generator.standard_normal(size) * 0.1).astype(np.float32)
    state = generator.integers(-1, 2, size).astype(np.int8)
    factor = np.float32(1.25 if scaled else 1.0)
    rates = (np.float32(-0.05), np.float32(1e-4), np.float32(0.9), factor)
    low, high = np.float32(0.05), np.float32(0.052)
    out, window, positions = np.empty(size, np.float32), np.empty(size, np.float32), np.empty(size, np.int64)
    mode = kernels.FIRST | kernels.DECAYED | (kernels.SCALED if scaled else 0)
    below, count = kernels.loops().score_step(grad, weight, score, np.empty(size, np.float32), state, rates, mode, 8,
                                              low, high, out, window, positions, 3)
    magnitude, free = np.abs(score), state == 0
    inside = free & (magnitude >= low) & (magnitude < high)
    assert below == int((free & (magnitude < low)).sum())
    assert count == 3 + int(inside.sum()) and 0 < inside.sum() < free.sum()
    assert positions[3:count].tolist() == np.flatnonzero(inside).tolist()
    assert window[3:count].tolist() == magnitude[inside].tolist()
    kept = (free & (magnitude >= high)) | (state > 0)
    assert np.array_equal(out, np.where(kept, weight * factor if scaled else weight, 0).astype(np.float32))
    tau = np.float32(np.median(magnitude[inside]))
    kernels.loops().settle_window(score, weight, factor, scaled, tau, positions[3:count], out)
    kept |= inside & (magnitude > tau)
    assert np.array_equal(out, np.where(kept, weight * factor if scaled else weight, 0).astype(np.float32))
