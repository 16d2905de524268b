"""ScoreSGD (frozen_slt.training.score_sgd) trains a ticket bit for bit like torch's fused SGD followed by the threshold
update, whether its fused score step runs or one of its fallbacks does."""

import copy

import numpy as np
import pytest
import torch
from helpers import assert_weight_follows_changes, bits, fused_loops

from frozen_slt.config.experiment import ExperimentConfig
from frozen_slt.data import load_dataset
from frozen_slt.fused import loops
from frozen_slt.fused import route as routes
from frozen_slt.fused import weight as fused_weight
from frozen_slt.fused.rounding import torch_sgd_rounding
from frozen_slt.fused.window import ThresholdWindow
from frozen_slt.method import threshold as thresholds
from frozen_slt.method.layers import masked_layers
from frozen_slt.training import score_sgd
from frozen_slt.training.loop import train_step
from frozen_slt.training.network import build_network
from frozen_slt.training.optimizers import make_optimizer, make_scheduler
from frozen_slt.training.score_sgd import ScoreSGD

ROUNDING = torch_sgd_rounding()
needs_fused_step = pytest.mark.skipif(
    ROUNDING is None, reason="torch's fused SGD rounds on this CPU in a way the fused score step does not "
                             "reproduce (ScoreSGD falls back to torch's SGD; tested below)")


def config(**settings) -> ExperimentConfig:
    return ExperimentConfig.from_settings({"model": "conv2", "dataset": "digits", "batch_size": 32, "device": "cpu",
                                           "sparsity": 0.5, "freeze_ratio": 0.4, "epochs": 2, **settings})


def torch_sgd(cfg: ExperimentConfig, model) -> torch.optim.SGD:
    recipe = cfg.train
    return torch.optim.SGD(list(model.parameters()), lr=recipe.lr, momentum=recipe.momentum,
                           weight_decay=recipe.weight_decay, fused=True)


class Run:
    """One network and its optimizer, trained batch by batch; ``fused`` switches the fused CPU loops."""

    def __init__(self, cfg: ExperimentConfig, fused: bool, optimizer=make_optimizer):
        self.cfg, self.fused = cfg, fused
        with fused_loops(fused):
            self.network = build_network(cfg, torch.device("cpu"))
            self.optimizer = optimizer(cfg, self.network.model)
        self.scheduler = make_scheduler(cfg, self.optimizer)

    def step(self, inputs, labels) -> torch.Tensor:
        with fused_loops(self.fused):
            return train_step(self.network, self.optimizer, self.cfg, (inputs,), labels)[0]

    def layers(self):
        return masked_layers(self.network.model)


def train_side_by_side(cfg: ExperimentConfig, runs: list[Run], epochs: int = 2, each_step=None) -> int:
    """Train ``runs`` on the same batches; assert they agree bit for bit after every step; returns the steps."""
    data = load_dataset("digits", cfg.data, torch.device("cpu"))
    steps = 0
    for epoch in range(1, epochs + 1):
        for inputs, labels in data.train_batches(cfg.train.batch_size, epoch):
            if each_step is not None:
                each_step(runs)
            losses = [run.step(inputs, labels) for run in runs]
            first = runs[0]
            for run, loss in zip(runs[1:], losses[1:]):
                assert torch.equal(bits(loss), bits(losses[0])), steps
                for a, b in zip(first.layers(), run.layers()):
                    assert torch.equal(bits(a.threshold), bits(b.threshold)), steps
                    assert torch.equal(bits(a.score), bits(b.score)), steps
                    assert torch.equal(bits(first.optimizer.state[a.score]["momentum_buffer"]),
                                       bits(run.optimizer.state[b.score]["momentum_buffer"])), steps
                    assert torch.equal(a.keep_mask(), b.keep_mask()), steps
            steps += 1
        for run in runs:
            run.scheduler.step()
    return steps


@pytest.fixture
def settles(monkeypatch):
    """How many steps the fused score step settled through its window, and how many fell back."""
    counts = {"window": 0, "fallback": 0}
    settle = ScoreSGD._settle

    def counting(self, *args):
        settled = settle(self, *args)
        counts["window" if settled else "fallback"] += 1
        return settled

    monkeypatch.setattr(ScoreSGD, "_settle", counting)
    return counts


@needs_fused_step
@pytest.mark.parametrize("settings", [
    {},  # frozen source: pruned, locked and free entries
    {"freeze_ratio": 0.0},  # dense source
    {"freeze_ratio": 0.4, "lock_share": 0.0},  # pruned source
    {"scale": "static"},
    {"weight_decay": 0.0},
], ids=["frozen", "dense", "pruned", "static-scale", "no-decay"])
def test_fused_score_step_trains_like_torch_sgd_and_eager_masking(settings, settles):
    cfg = config(**settings)
    fused, eager = Run(cfg, fused=True), Run(cfg, fused=False, optimizer=torch_sgd)
    assert fused.optimizer.rounding == ROUNDING
    assert all(routes.route(layer).path == routes.FUSED_STEP for layer in fused.layers())
    steps = train_side_by_side(cfg, [fused, eager])  # two epochs: the cosine schedule changes lr in between
    assert settles["window"] >= 0.5 * steps and settles["window"] + settles["fallback"] == steps
    untrained = masked_layers(build_network(cfg, torch.device("cpu")).model)
    for layer, start in zip(fused.layers(), untrained):
        assert layer.score.grad is None  # ∂L/∂S was never materialised
        assert not torch.equal(layer.score, start.score)


@needs_fused_step
def test_fused_step_engages_on_the_default_sweeps_trial():
    network = build_network(config(model="conv6"), torch.device("cpu"))
    optimizer = make_optimizer(config(model="conv6"), network.model)
    assert optimizer.rounding is not None and optimizer.blocker is None
    assert all(routes.route(layer).path == routes.FUSED_STEP for layer in masked_layers(network.model))


@needs_fused_step
def test_edge_thresholds_and_window_misses_fall_back_with_the_same_bits(monkeypatch, settles):
    # k = 0: no mask zeros at all, τ = −1 at every step (§4's first edge), so there is no window to search.
    edge = config(sparsity=0.0, freeze_ratio=0.0)
    train_side_by_side(edge, [Run(edge, fused=True), Run(edge, fused=False, optimizer=torch_sgd)], epochs=1)
    assert settles["window"] == 0 and settles["fallback"] > 0

    def narrow(runs):  # a window one float step wide around the last τ: the next τ is almost never in it
        runs[0].optimizer.window.half_width = 1

    settles.update(window=0, fallback=0)
    cfg = config()
    train_side_by_side(cfg, [Run(cfg, fused=True), Run(cfg, fused=False, optimizer=torch_sgd)], epochs=1,
                       each_step=narrow)
    assert settles["fallback"] > 0

    settles.update(window=0, fallback=0)
    overflowing = Run(cfg, fused=True)
    overflowing.optimizer.window = ThresholdWindow(capacity=4)  # the window overflows its buffer
    train_side_by_side(cfg, [overflowing, Run(cfg, fused=False, optimizer=torch_sgd)], epochs=1)
    assert settles["window"] == 0 and settles["fallback"] > 0


def test_without_a_reproducible_rounding_scoresgd_is_torch_sgd(monkeypatch):
    monkeypatch.setattr(score_sgd, "torch_sgd_rounding", lambda: None)
    cfg = config()
    plain = Run(cfg, fused=True)
    assert plain.optimizer.rounding is None
    assert all(routes.route(layer).path == routes.FUSED and "rounds" in routes.route(layer).reason
               for layer in plain.layers())
    train_side_by_side(cfg, [plain, Run(cfg, fused=False, optimizer=torch_sgd)], epochs=1)


def test_dynamic_scale_and_disabled_loops_take_the_ordinary_path():
    cfg = config(scale="dynamic")
    dynamic = Run(cfg, fused=True)
    assert all(routes.route(layer).path == routes.FUSED for layer in dynamic.layers())
    train_side_by_side(cfg, [dynamic, Run(cfg, fused=False, optimizer=torch_sgd)], epochs=1)
    switched_off = Run(config(), fused=False)
    assert switched_off.optimizer.rounding is None  # no fused loops: the probe does not even run
    with fused_loops(False):
        assert all(routes.route(layer).path == routes.EAGER for layer in switched_off.layers())


@needs_fused_step
def test_settings_the_fused_step_does_not_compute_materialise_the_score_gradient():
    cfg = config()
    fused, eager = Run(cfg, fused=True), Run(cfg, fused=False, optimizer=torch_sgd)
    for run in (fused, eager):
        run.optimizer.param_groups[0]["nesterov"] = True  # torch's SGD computes it; the fused loop does not
    train_side_by_side(cfg, [fused, eager], epochs=1)


@needs_fused_step
def test_gradients_accumulate_on_the_prepared_weight_and_zero_grad_clears_them():
    # Several backward passes before a step sum ∂L/∂W_eff before the chain rule to S, where torch sums the
    # score gradients: the same gradient, rounded in another order, so only close, not the same bits.
    cfg = config()
    runs = [Run(cfg, fused=True), Run(cfg, fused=False, optimizer=torch_sgd)]
    data = load_dataset("digits", cfg.data, torch.device("cpu"))
    batches = [batch for _, batch in zip(range(4), data.train_batches(16, 1))]
    for run in runs:
        with fused_loops(run.fused):
            run.optimizer.zero_grad()
            for inputs, labels in batches[:2]:  # two backward passes, one step
                torch.nn.functional.cross_entropy(run.network.model(inputs), labels).backward()
            run.optimizer.step()
            if not isinstance(run.optimizer, ScoreSGD):
                thresholds.update_thresholds(run.network.model)
    untrained = masked_layers(build_network(cfg, torch.device("cpu")).model)
    for a, b, start in zip(runs[0].layers(), runs[1].layers(), untrained):
        torch.testing.assert_close(a.score, b.score, rtol=1e-6, atol=1e-7)
        assert not torch.equal(a.score, start.score)
    layer = runs[0].layers()[0]
    with fused_loops(True):
        torch.nn.functional.cross_entropy(runs[0].network.model(batches[2][0]), batches[2][1]).backward()
    assert fused_weight.pending_gradient(layer) is not None and layer.score.grad is None
    runs[0].optimizer.zero_grad()
    assert fused_weight.pending_gradient(layer) is None


@needs_fused_step
def test_a_prepared_weight_follows_changes_made_outside_the_optimizer():
    cfg = config()
    run = Run(cfg, fused=True)
    data = load_dataset("digits", cfg.data, torch.device("cpu"))
    inputs, labels = next(iter(data.train_batches(32, 1)))
    run.step(inputs, labels)
    layer = run.layers()[1]

    def eager_weight():
        unprepared = copy.deepcopy(layer)  # a copy is nobody's to step
        assert routes.route(unprepared).path == routes.FUSED
        return unprepared.effective_weight().detach()

    assert_weight_follows_changes(layer, eager_weight)
    loaded = Run(cfg, fused=True)
    loaded.network.load_saved_state(run.network.state_to_save())
    for a, b in zip(loaded.layers(), run.layers()):
        assert torch.equal(a.effective_weight(), b.effective_weight())


@needs_fused_step
def test_checkpoints_move_between_scoresgd_and_torch_sgd():
    cfg = config()
    data = load_dataset("digits", cfg.data, torch.device("cpu"))
    batches = list(data.train_batches(32, 1))
    first = Run(cfg, fused=True)
    for inputs, labels in batches[:3]:
        first.step(inputs, labels)
    runs = [Run(cfg, fused=True), Run(cfg, fused=False, optimizer=torch_sgd)]
    for run in runs:
        run.network.load_saved_state(first.network.state_to_save())
        run.optimizer.load_state_dict(copy.deepcopy(first.optimizer.state_dict()))
    for inputs, labels in batches[3:6]:
        losses = [run.step(inputs, labels) for run in runs + [first]]
        assert torch.equal(bits(losses[0]), bits(losses[1])) and torch.equal(bits(losses[0]), bits(losses[2]))


def test_scoresgd_needs_masked_layers_and_a_weight_trained_model_gets_torch_sgd():
    network = build_network(config(weight_trained=True, freeze_ratio=0.0), torch.device("cpu"))
    with pytest.raises(ValueError, match="has none"):
        ScoreSGD(network.model, lr=0.1)
    assert type(make_optimizer(config(weight_trained=True, freeze_ratio=0.0), network.model)) is torch.optim.SGD
    masked = build_network(config(optimizer="adamw"), torch.device("cpu"))
    assert isinstance(make_optimizer(config(optimizer="adamw"), masked.model), torch.optim.AdamW)


@needs_fused_step
@pytest.mark.parametrize("threads", [1, 2])
def test_score_step_rounds_like_torch_sgd_at_any_size(threads):
    torch.set_num_threads(threads)  # torch's kernel splits large tensors between threads
    generator = torch.Generator().manual_seed(threads)
    window = loops.WindowBuffers(np.float32(0), np.float32(0), np.empty(1, np.float32), np.empty(1, np.int64))
    for size in (1, 7, 8, 9, 15, 16, 17, 31, 1000, 100_003):
        for decay in (0.0, 1e-4):
            start = torch.randn(size, generator=generator) * 0.1
            weight = torch.randn(size, generator=generator)
            parameter = start.clone().requires_grad_()
            reference = torch.optim.SGD([parameter], lr=0.05, momentum=0.9, weight_decay=decay, fused=True)
            score, velocity = start.clone(), torch.empty(size)
            rates = loops.SGDRates(np.float32(-0.05), np.float32(decay), np.float32(0.9), np.float32(1.0))
            for step in range(3):
                grad = torch.randn(size, generator=generator)
                parameter.grad = (grad * weight) * parameter.detach().sign()
                reference.step()
                arrays = loops.StepArrays(routes.flat(grad), routes.flat(weight), routes.flat(score),
                                          routes.flat(velocity), np.zeros(size, np.int8), np.empty(size, np.float32))
                flags = loops.StepFlags(first=step == 0, decayed=decay != 0, scaled=False)
                loops.score_step(arrays, rates, flags, ROUNDING, window, 0)
                assert torch.equal(bits(score), bits(parameter)), (size, decay, step)
                assert torch.equal(bits(velocity), bits(reference.state[parameter]["momentum_buffer"])), (size, step)


def test_the_rounding_probe_answers_for_the_machine_not_for_the_switch():
    torch_sgd_rounding.cache_clear()
    try:
        with fused_loops(False):
            assert torch_sgd_rounding() == ROUNDING
    finally:
        torch_sgd_rounding.cache_clear()
