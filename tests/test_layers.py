"""Masked layers: forward semantics and the straight-through gradient against plain autograd (docs/method.md §3, §6)."""

import math

import pytest
import torch
from torch.nn import functional as F

from frozen_slt.layers import LOCKED, PRUNED, MaskedConv2d, MaskedLinear


def random_layer(layer, seed, pruned=5, locked=7):
    generator = torch.Generator().manual_seed(seed)
    layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator))
    layer.score.data.copy_(torch.randn(layer.score.shape, generator=generator))
    state = torch.zeros(layer.weight.numel(), dtype=torch.int8)
    order = torch.randperm(layer.weight.numel(), generator=generator)
    state[order[:pruned]] = PRUNED
    state[order[pruned : pruned + locked]] = LOCKED
    layer.set_freeze_state(state.view(layer.weight.shape))
    layer.threshold.fill_(0.6)
    return layer


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


@pytest.mark.parametrize("scale", ["none", "static", "dynamic"])
@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_gradient_matches_plain_autograd(kind, scale):
    torch.manual_seed(0)  # inputs independent of the tests that ran before
    if kind == "linear":
        layer, x = MaskedLinear(12, 9), torch.randn(5, 12)
        functional = F.linear
    else:
        layer, x = MaskedConv2d(3, 4, 3, stride=1, padding=1), torch.randn(2, 3, 6, 6)

        def functional(inputs, weight):
            return F.conv2d(inputs, weight, None, 1, 1)

    random_layer(layer, seed=7)
    layer.configure(0.4, scale)
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


def test_mask_semantics_strict_threshold_and_freeze_override():
    layer = MaskedLinear(4, 1)
    layer.weight.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    layer.score.data.copy_(torch.tensor([[0.5, -0.5, 0.1, 9.0]]))
    layer.threshold.fill_(0.5)
    assert layer.keep_mask().tolist() == [[False, False, False, True]]  # |S| > τ is strict
    layer.set_freeze_state(torch.tensor([[0, 1, 0, -1]], dtype=torch.int8))
    assert layer.keep_mask().tolist() == [[False, True, False, False]]  # locked kept, pruned dropped
    assert layer(torch.ones(1, 4)).item() == 2.0
    assert (layer.pruned_count, layer.locked_count, layer.free_count) == (1, 1, 2)


def test_dynamic_scale_uses_current_density_and_survives_an_empty_mask():
    layer = MaskedLinear(4, 1)
    layer.weight.fill_(1.0)
    layer.score.data.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    layer.configure(0.5, "dynamic")
    layer.threshold.fill_(2.5)  # keeps 2 of 4 → factor 1/sqrt(0.5)
    assert layer(torch.ones(1, 4)).item() == pytest.approx(2 / math.sqrt(0.5))
    layer.threshold.fill_(10.0)  # keeps none → output 0, not NaN
    assert layer(torch.ones(1, 4)).item() == 0.0


def test_freeze_state_survives_a_state_dict_round_trip():
    source = random_layer(MaskedConv2d(2, 3, 3), seed=1)
    copy = MaskedConv2d(2, 3, 3)
    copy.load_state_dict(source.state_dict())
    assert torch.equal(copy.keep_mask(), source.keep_mask())
    assert (copy.pruned_count, copy.locked_count) == (5, 7)
    assert torch.equal(copy.free_index, source.free_index)


def test_configure_rejects_bad_scale():
    layer = MaskedLinear(2, 2)
    with pytest.raises(ValueError, match="unknown scale"):
        layer.configure(0.5, "quadratic")
    with pytest.raises(ValueError, match="sparsity < 1"):
        layer.configure(1.0, "static")
