"""The fast path's one decision (frozen_slt.fused.route) and its loops: where each route runs, why, and that
the fused loops give the eager formulations' bits."""

import copy

import numpy as np
import pytest
import torch
from helpers import bits, fused_loops, random_layer

from frozen_slt.config.experiment import ExperimentConfig
from frozen_slt.data import load_dataset
from frozen_slt.fused import loops as loops_module
from frozen_slt.fused import route as routes
from frozen_slt.method.layers import MaskedConv2d, MaskedLinear, masked_layers
from frozen_slt.training.loop import train_step
from frozen_slt.training.network import build_network
from frozen_slt.training.optimizers import make_optimizer
from frozen_slt.training.score_sgd import ScoreSGD


def test_route_says_where_a_layer_runs_and_why(monkeypatch):
    layer = random_layer(MaskedLinear(6, 4), seed=4)
    assert routes.route(layer).path == routes.FUSED and "no fused score step" in routes.route(layer).reason
    with fused_loops(False):
        assert routes.route(layer) == (routes.EAGER, "the fused CPU loops are switched off", None)
    assert routes.route(copy.deepcopy(layer).double()).path == routes.EAGER
    assert "float32" in routes.route(copy.deepcopy(layer).double()).reason
    strided = copy.deepcopy(layer)
    strided.score = torch.nn.Parameter(torch.randn(4, 12)[:, ::2])
    assert routes.route(strided) == (routes.EAGER, "a tensor of the layer is not contiguous", None)
    optimizer = ScoreSGD(torch.nn.Sequential(layer), lr=0.1, momentum=0.9)
    expected = routes.FUSED_STEP if optimizer.rounding is not None else routes.FUSED
    assert routes.route(layer).path == expected
    layer.configure(0.5, "dynamic")
    assert routes.route(layer).path == routes.FUSED and "dynamic scale" in routes.route(layer).reason
    layer.configure(0.5, "none")
    optimizer.param_groups[0]["nesterov"] = True
    optimizer.blocker = optimizer._blocker()
    assert routes.route(layer).path == routes.FUSED and "Nesterov" in routes.route(layer).reason
    del optimizer
    assert routes.route(layer).path == routes.FUSED  # a layer is stepped only by a live optimizer
    monkeypatch.setattr(routes, "compiled", lambda: None)
    fresh = random_layer(MaskedLinear(6, 4), seed=4)
    assert routes.route(fresh) == (routes.EAGER, "numba is not importable", None)
    with pytest.raises(RuntimeError, match="need numba"):
        routes.loops()


def test_without_numba_the_eager_operators_give_the_same_weight(monkeypatch):
    layer = random_layer(MaskedLinear(6, 4), seed=4)
    expected = copy.deepcopy(layer).effective_weight()  # fused, in a copy: the layer has not asked yet
    monkeypatch.setattr(routes, "compiled", lambda: None)
    assert routes.route(layer).path == routes.EAGER
    assert torch.equal(layer.effective_weight(), expected)


def test_a_copy_of_a_layer_holds_its_own_views_and_nobodys_step():
    layer = random_layer(MaskedConv2d(2, 3, 3), seed=1)
    optimizer = ScoreSGD(torch.nn.Sequential(layer), lr=0.1, momentum=0.9)
    layer.effective_weight()
    copied = copy.deepcopy(layer)
    assert copied.stepper() is None and layer.stepper() is optimizer
    assert routes.route(copied).views.score.ctypes.data == copied.score.data_ptr() != layer.score.data_ptr()


def test_collected_window_excludes_frozen_entries_and_both_neighbours():
    values = np.array([5, 10, 12, 15, 21, 22, 30, 0x7F800000], dtype=np.int32)
    state = np.array([0, 0, -1, 0, 1, 0, 0, 0], dtype=np.int8)
    out = np.empty(8, dtype=np.int32)
    count = loops_module.collect_window(values, state, 10, 12, out, 0)  # [10, 22)
    assert out[:count].tolist() == [10, 15]
    assert loops_module.count_below(values, state, 22) == 3  # 5, 10, 15; frozen 12 and 21 not counted


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
        assert all((routes.route(layer).path != routes.EAGER) == fused for layer in layers)
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
    loops = loops_module
    generator = np.random.default_rng(5)
    size = 3 * loops.BLOCK + 77
    grad, weight = (generator.standard_normal(size).astype(np.float32) for _ in range(2))
    score = (generator.standard_normal(size) * 0.1).astype(np.float32)
    state = generator.integers(-1, 2, size).astype(np.int8)
    factor = np.float32(1.25 if scaled else 1.0)
    out, window, positions = np.empty(size, np.float32), np.empty(size, np.float32), np.empty(size, np.int64)
    low, high = np.float32(0.05), np.float32(0.052)
    arrays = loops.StepArrays(grad, weight, score, np.empty(size, np.float32), state, out)
    rates = loops.SGDRates(np.float32(-0.05), np.float32(1e-4), np.float32(0.9), factor)
    flags = loops.StepFlags(first=True, decayed=True, scaled=scaled)
    plain = loops.Contraction(False, False, False)
    below, count = loops.score_step(arrays, rates, flags, loops.Rounding(8, plain, plain),
                                    loops.WindowBuffers(low, high, window, positions), 3)
    magnitude, free = np.abs(score), state == 0
    inside = free & (magnitude >= low) & (magnitude < high)
    assert below == int((free & (magnitude < low)).sum())
    assert count == 3 + int(inside.sum()) and 0 < inside.sum() < free.sum()
    assert positions[3:count].tolist() == np.flatnonzero(inside).tolist()
    assert window[3:count].tolist() == magnitude[inside].tolist()
    kept = (free & (magnitude >= high)) | (state > 0)
    assert np.array_equal(out, np.where(kept, weight * factor if scaled else weight, 0).astype(np.float32))
    tau = np.float32(np.median(magnitude[inside]))
    loops.settle_window(score, weight, loops.Scale(factor, scaled), tau, positions[3:count], out)
    kept |= inside & (magnitude > tau)
    assert np.array_equal(out, np.where(kept, weight * factor if scaled else weight, 0).astype(np.float32))
