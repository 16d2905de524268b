"""Freeze pattern and random state: exact counts, independent seeds, determinism (docs/method.md §5, §7)."""

import math

import pytest
import torch
from torch import nn

from frozen_slt.config.specs import TicketSpec
from frozen_slt.method.freezing import LayerFreezeCounts, sample_freeze_pattern
from frozen_slt.method.initialize import initialize_ticket
from frozen_slt.method.inits import INITS
from frozen_slt.method.layers import LOCKED, PRUNED, MaskedConv2d, MaskedLinear


def small_model():
    return nn.Sequential(MaskedConv2d(3, 16, 3), nn.ReLU(), nn.Flatten(), MaskedLinear(64, 32), MaskedLinear(32, 10))


def snapshot(model):
    layers = [model[0], model[3], model[4]]
    return [(layer.weight.clone(), layer.score.detach().clone(), layer.freeze_state.clone()) for layer in layers]


TICKET = TicketSpec(sparsity=0.6, prune_ratio=0.3, lock_ratio=0.2, distribution="uniform", weight_seed=1, score_seed=2, freeze_seed=3)


def test_same_seeds_give_identical_tickets():
    first, second = small_model(), small_model()
    initialize_ticket(first, TICKET)
    initialize_ticket(second, TICKET)
    for a, b in zip(snapshot(first), snapshot(second)):
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert torch.equal(first[0].threshold, second[0].threshold)


@pytest.mark.parametrize("seed_name, changed_index", [("freeze_seed", 2), ("weight_seed", 0), ("score_seed", 1)])
def test_each_seed_drives_only_its_own_randomness(seed_name, changed_index):
    base, other = small_model(), small_model()
    initialize_ticket(base, TICKET)
    counts = initialize_ticket(other, TicketSpec(**{**TICKET.__dict__, seed_name: 99}))
    for a, b in zip(snapshot(base), snapshot(other)):
        for index in range(3):
            assert torch.equal(a[index], b[index]) == (index != changed_index), (seed_name, index)
    for layer, planned in zip([other[0], other[3], other[4]], counts):
        assert (layer.pruned_count, layer.locked_count) == (planned.pruned, planned.locked)


def test_equal_seed_values_for_weights_and_scores_are_still_independent():
    model = small_model()
    initialize_ticket(model, TicketSpec(sparsity=0.5, weight_init="kaiming_normal", score_init="kaiming_normal"))
    assert not torch.equal(model[0].weight, model[0].score.detach())


def test_pattern_has_exact_counts_from_one_permutation_per_layer():
    counts = [LayerFreezeCounts("a", (10, 10), 100, 33, 21), LayerFreezeCounts("b", (7,), 7, 0, 0), LayerFreezeCounts("c", (5, 4), 20, 5, 15)]
    states = sample_freeze_pattern(counts, seed=4)
    assert [s.shape for s in states] == [(10, 10), (7,), (5, 4)]
    assert [(int((s == PRUNED).sum()), int((s == LOCKED).sum())) for s in states] == [(33, 21), (0, 0), (5, 15)]
    again = sample_freeze_pattern(counts, seed=4)
    assert all(torch.equal(a, b) for a, b in zip(states, again))
    assert not torch.equal(states[0], sample_freeze_pattern(counts, seed=5)[0])


def test_initialised_ticket_realises_the_target_zero_count():
    model = small_model()
    initialize_ticket(model, TICKET)
    layers = [model[0], model[3], model[4]]
    total = sum(layer.weight.numel() for layer in layers)
    zeros = sum(int((~layer.keep_mask()).sum()) for layer in layers)
    assert zeros == math.floor(total * 0.6)


@pytest.mark.parametrize("shape", [(64, 3, 3, 3), (10, 256)])
def test_weight_inits_follow_method_section_5(shape):
    fan_in = math.prod(shape[1:])
    generator = torch.Generator().manual_seed(0)
    uniform = INITS["kaiming_uniform"](shape, generator)
    assert uniform.abs().max() <= math.sqrt(6 / fan_in) and uniform.abs().max() > 0.9 * math.sqrt(6 / fan_in)
    constant = INITS["signed_kaiming_constant"](shape, generator)
    assert torch.allclose(constant.abs(), torch.full(shape, math.sqrt(2 / fan_in)))
    assert 0.3 < (constant > 0).float().mean() < 0.7
    normal = INITS["kaiming_normal"]((400, *shape[1:]), generator)
    assert normal.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.1)
