"""Masked layers: forward semantics and the straight-through gradient (docs/method.md §3, §6), on both routes
(the eager operators and the fused CPU loops), which must agree bit for bit."""

import copy
import math

import pytest
import torch
from helpers import assert_weight_follows_changes, bits, fused_loops, random_layer
from torch import nn
from torch.nn import functional as F

from frozen_slt.fused import route as routes
from frozen_slt.method.layers import LOCKED, MaskedConv2d, MaskedLinear


@pytest.fixture(params=[True, False], ids=["fused", "eager"])
def fused(request):
    with fused_loops(request.param):
        yield request.param


def plain_effective_weight(layer, sparsity, scale):
    """W_eff computed with ordinary autograd ops: hard mask plus |S| − stop_gradient(|S|)."""
    magnitude = layer.score.abs()
    hard = torch.where(layer.freeze_state == 0, magnitude > layer.threshold, layer.freeze_state == LOCKED).float()
    mask = hard + magnitude - magnitude.detach()
    factor = 1.0
    if scale == "static":
        factor = 1.0 / math.sqrt(1.0 - sparsity)
    elif scale == "dynamic":
        factor = 1.0 / math.sqrt(hard.mean().item())
    return mask * layer.weight * factor


def layer_and_inputs(kind):
    if kind == "linear":
        return MaskedLinear(12, 9), torch.randn(5, 12), F.linear
    return MaskedConv2d(3, 4, 3, stride=1, padding=1), torch.randn(2, 3, 6, 6), lambda x, w: F.conv2d(x, w, None, 1, 1)


@pytest.mark.parametrize("scale", ["none", "static", "dynamic"])
@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_gradient_matches_plain_autograd(kind, scale, fused):
    torch.manual_seed(0)  # inputs independent of the tests that ran before
    layer, x, functional = layer_and_inputs(kind)
    random_layer(layer, seed=7)
    layer.configure(0.4, scale)
    assert (routes.route(layer).path == routes.FUSED) == fused
    target = torch.randn_like(layer(x))
    loss = ((layer(x) - target) ** 2).sum()
    (grad_fast,) = torch.autograd.grad(loss, layer.score)

    plain = plain_effective_weight(layer, 0.4, scale)
    plain_loss = ((functional(x, plain) - target) ** 2).sum()
    (grad_plain,) = torch.autograd.grad(plain_loss, layer.score)

    torch.testing.assert_close(layer(x), functional(x, plain.detach()))
    # only float association differs: rounding of order 1e-7 of the largest term of a sum
    torch.testing.assert_close(grad_fast, grad_plain, rtol=1e-4, atol=1e-5 * grad_plain.abs().max().item())
    assert grad_fast.abs().sum() > 0


def forward_and_gradient(layer, inputs, target):
    layer.score.grad = None
    output = layer(inputs)
    ((output - target) ** 2).sum().backward()
    return output.detach(), layer.score.grad.clone()


@pytest.mark.parametrize("scale", ["none", "static", "dynamic"])
@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_fused_route_gives_the_eager_bits(kind, scale):
    torch.manual_seed(0)
    layer, inputs, _ = layer_and_inputs(kind)
    random_layer(layer, seed=3, pruned=40, locked=50)
    layer.configure(0.4, scale)
    target = torch.randn_like(layer(inputs))
    free_magnitudes = layer.score.detach().abs()[layer.free]
    # τ at the edges of §4 and in the middle, including one equal to a free score (|S| > τ is strict)
    for tau in (-math.inf, -1.0, 0.0, free_magnitudes.median().item(), free_magnitudes[3].item(), math.inf):
        layer.threshold.fill_(tau)
        with fused_loops(True):
            fused_output, fused_gradient = forward_and_gradient(layer, inputs, target)
        with fused_loops(False):
            eager_output, eager_gradient = forward_and_gradient(layer, inputs, target)
        assert torch.equal(fused_output, eager_output), tau  # equal values; a dropped weight's zero may differ in sign
        assert torch.equal(bits(fused_gradient), bits(eager_gradient)), tau


def test_mask_semantics_strict_threshold_and_freeze_override(fused):
    layer = MaskedLinear(4, 1)
    layer.weight.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    layer.score.data.copy_(torch.tensor([[0.5, -0.5, 0.1, 9.0]]))
    layer.threshold.fill_(0.5)
    assert layer.keep_mask().tolist() == [[False, False, False, True]]  # |S| > τ is strict
    layer.set_freeze_state(torch.tensor([[0, 1, 0, -1]], dtype=torch.int8))
    assert layer.keep_mask().tolist() == [[False, True, False, False]]  # locked kept, pruned dropped
    assert layer(torch.ones(1, 4)).item() == 2.0
    assert (layer.pruned_count, layer.locked_count, layer.free_count) == (1, 1, 2)
    for tau, expected in ((0.05, [1.0, 2.0, 3.0, 0.0]), (math.inf, [0.0, 2.0, 0.0, 0.0]),
                          (-math.inf, [1.0, 2.0, 3.0, 0.0])):
        layer.threshold.fill_(tau)
        assert layer.effective_weight().tolist() == [expected], tau


def test_dynamic_scale_counts_locked_entries_and_survives_an_empty_mask(fused):
    layer = MaskedLinear(4, 1)
    layer.weight.fill_(1.0)
    layer.score.data.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    layer.configure(0.5, "dynamic")
    layer.threshold.fill_(2.5)  # keeps 2 of 4 → factor 1/sqrt(0.5)
    assert layer(torch.ones(1, 4)).item() == pytest.approx(2 / math.sqrt(0.5))
    layer.threshold.fill_(10.0)  # keeps none → output 0, not NaN
    assert layer(torch.ones(1, 4)).item() == 0.0
    layer.set_freeze_state(torch.tensor([[1, 0, 0, -1]], dtype=torch.int8))
    layer.threshold.fill_(2.5)  # keeps the locked entry and |3| → density 2/4
    assert layer(torch.ones(1, 4)).item() == pytest.approx(2 / math.sqrt(0.5))
    layer.threshold.fill_(math.inf)  # keeps the locked entry only → density 1/4
    assert layer(torch.ones(1, 4)).item() == pytest.approx(1 / math.sqrt(0.25))


def test_the_effective_weight_follows_every_change_of_the_layer(fused):
    layer = random_layer(MaskedConv2d(2, 3, 3), seed=1)

    def eager_weight():
        with fused_loops(False):
            return copy.deepcopy(layer).effective_weight().detach()

    assert_weight_follows_changes(layer, eager_weight)
    source = random_layer(MaskedConv2d(2, 3, 3), seed=2)
    layer.load_state_dict(source.state_dict())
    assert torch.equal(layer.effective_weight(), source.effective_weight())
    layer.score = nn.Parameter(layer.score.detach().clone())  # a new tensor: new views
    assert torch.equal(layer.effective_weight(), source.effective_weight())


def test_freeze_state_survives_a_state_dict_round_trip():
    source = random_layer(MaskedConv2d(2, 3, 3), seed=1)
    copied = MaskedConv2d(2, 3, 3)
    copied.load_state_dict(source.state_dict())
    assert torch.equal(copied.keep_mask(), source.keep_mask())
    assert (copied.pruned_count, copied.locked_count) == (5, 7)
    assert torch.equal(copied.free_index, source.free_index)


def test_configure_rejects_bad_scale():
    layer = MaskedLinear(2, 2)
    with pytest.raises(ValueError, match="unknown scale"):
        layer.configure(0.5, "quadratic")
    with pytest.raises(ValueError, match="sparsity < 1"):
        layer.configure(1.0, "static")
