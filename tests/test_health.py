"""The check after each training epoch: NaN and infinity, and the mask's zeros against its sparsity, with ties
at τ allowed exactly as far as they can go (docs/method.md §4)."""

import pytest
import torch

from frozen_slt.config.experiment import ExperimentConfig
from frozen_slt.errors import TrainingDivergedError
from frozen_slt.method.layers import PRUNED, MaskedLinear
from frozen_slt.method.threshold import update_thresholds
from frozen_slt.training.health import check_training_state, mask_problem
from frozen_slt.training.network import build_network


def layer_with_scores(scores, sparsity, state=None):
    """One masked layer holding ``scores`` (all free unless ``state`` says otherwise), τ computed for ``sparsity``."""
    layer = MaskedLinear(len(scores), 1)
    layer.score.data.copy_(torch.tensor([scores], dtype=torch.float32))
    if state is not None:
        layer.set_freeze_state(torch.tensor([state], dtype=torch.int8))
    layer.configure(sparsity, "none")
    update_thresholds(layer)
    return layer


def with_threshold(layer, tau):
    layer.threshold.fill_(tau)
    return layer


def test_ties_at_tau_may_add_exactly_ties_minus_one_zeros():
    # k = 0.4 of 10: E = 4 zeros; the 4th smallest |S| is 4, tied with nobody: exactly 4 zeros
    layer = layer_with_scores([1, 2, 3, 4, 5, 5, 5, 6, 7, 8], 0.4)
    assert float(layer.threshold) == 4.0 and mask_problem([layer], 0.4) is None
    # k = 0.5: the 5th smallest is 5, which three scores share: 7 zeros = E + T − 1, the most ties can give
    layer = layer_with_scores([1, 2, 3, 4, 5, 5, 5, 6, 7, 8], 0.5)
    assert float(layer.threshold) == 5.0 and int((~layer.keep_mask()).sum()) == 7
    assert mask_problem([layer], 0.5) is None
    # τ = 5 at k = 0.4 is not the 4th smallest: 7 zeros = E + T, one more than ties allow
    problem = mask_problem([with_threshold(layer_with_scores([1, 2, 3, 4, 5, 5, 5, 6, 7, 8], 0.4), 5.0)], 0.4)
    assert problem == "the mask has 7 zeros where sparsity 0.4 of 10 weights gives 4 to 6 (3 scores tie at τ)"


@pytest.mark.parametrize("tau, zeros", [(4.5, 4), (3.0, 3), (6.0, 6)])
def test_a_threshold_that_is_not_the_order_statistic_is_caught(tau, zeros):
    layer = with_threshold(layer_with_scores(list(range(1, 11)), 0.5), tau)
    assert mask_problem([layer], 0.5) == f"the mask has {zeros} zeros where sparsity 0.5 of 10 weights gives 5"


@pytest.mark.parametrize("sparsity, state", [
    (0.0, None),  # τ = −1
    (0.2, [-1, -1, -1, 0, 0, 0, 0, 0, 0, 0]),  # ⌊N·k⌋ ≤ P: τ = −∞
    (1.0, [1, 1, 1, 0, 0, 0, 0, 0, 0, 0]),  # ⌊N·k⌋ > P + F: τ = +∞
])
def test_the_edges_of_the_threshold_pass_with_exactly_their_count(sparsity, state):
    layer = layer_with_scores(list(range(1, 11)), sparsity, state)
    assert mask_problem([layer], sparsity) is None
    with_threshold(layer, 0.5)  # a finite τ where the counts ask for an edge
    assert mask_problem([layer], sparsity).startswith("the threshold τ is 0.5 where the sparsity asks for")


def test_pruned_entries_count_as_zeros_and_nan_scores_are_named():
    layer = layer_with_scores([9, 1, 2, 3, 4, 5, 6, 7, 8, 10], 0.5, [PRUNED, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    assert mask_problem([layer], 0.5) is None
    layer.score.data[0, 3] = float("nan")
    assert mask_problem([layer], 0.5) == "1 of 10 scores are NaN or infinite"
    layer.score.data[0, 3] = float("inf")
    assert mask_problem([layer], 0.5) == "1 of 10 scores are NaN or infinite"


def test_a_healthy_network_passes_and_a_broken_one_names_the_epoch_and_the_cause():
    config = ExperimentConfig.from_settings({"model": "conv2", "dataset": "digits", "freeze_ratio": 0.5})
    network = build_network(config, torch.device("cpu"))
    check_training_state(network.model, True, 0.5, 0.05, 3)
    network.model.features[0].threshold.fill_(float("nan"))
    with pytest.raises(TrainingDivergedError, match=r"^training diverged in epoch 3: the threshold τ is nan .*"
                                                     r"the learning rate \(0.05\) is likely too high"):
        check_training_state(network.model, True, 0.5, 0.05, 3)


def test_a_weight_trained_model_with_a_non_finite_weight_is_caught():
    config = ExperimentConfig.from_settings({"model": "conv2", "dataset": "digits", "weight_trained": True})
    network = build_network(config, torch.device("cpu"))
    check_training_state(network.model, False, 0.5, 0.05, 1)
    network.model.classifier[1].weight.data[0, 0] = float("inf")
    with pytest.raises(TrainingDivergedError, match=r"1 of 367,680 values of the model's state are NaN or infinite "
                                                     r"\(the first in classifier.1.weight\)"):
        check_training_state(network.model, False, 0.5, 0.05, 1)
