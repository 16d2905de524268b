"""Configuration: feasibility bounds, both spellings of the freeze split, overrides and the pinned hash."""

from dataclasses import replace

import pytest

from frozen_slt.config.experiment import ALTERNATE_KEYS, ExperimentConfig, leaf_fields
from frozen_slt.config.recipes import MODEL_RECIPES
from frozen_slt.config.specs import ConfigError, DataSpec, TicketSpec, TrainSpec
from frozen_slt.data import DATASETS
from frozen_slt.errors import FrozenSLTError
from frozen_slt.method.ratios import (
    InfeasibleSettingError,
    floor_count,
    lock_share_bounds,
    resolve_lock_share,
)
from frozen_slt.models import MODELS
from frozen_slt.registry import UnknownNameError


def test_floor_count_is_exact_on_decimal_fractions():
    assert floor_count(10, 0.7) == 7  # 0.7 is 0.6999999... in binary
    assert floor_count(2_261_184, 0.5) == 1_130_592
    assert floor_count(100, 0.35) == 35
    assert floor_count(3, 0.5) == 1
    assert floor_count(7, 1.0) == 7 and floor_count(7, 0.0) == 0


def test_proportional_split_matches_the_authors_readme_example():
    assert resolve_lock_share(0.5, 0.5, "proportional") == (0.25, 0.25)
    prune, lock = resolve_lock_share(0.8, 0.7, "proportional")
    assert prune == pytest.approx(0.56) and lock == pytest.approx(0.14)
    assert resolve_lock_share(0.5, 0.0, 0.3) == (0.0, 0.0)


@pytest.mark.parametrize("freeze_ratio", [0.0, 0.5])
def test_a_misspelt_lock_share_is_refused_even_where_nothing_is_frozen(freeze_ratio):
    with pytest.raises(InfeasibleSettingError, match="lock_share must be a number in \\[0, 1\\] or 'proportional', got 'propotional'"):
        resolve_lock_share(0.5, freeze_ratio, "propotional")


@pytest.mark.parametrize("overrides", [{"lock_share": 0.5}, {"freeze_ratio": 0, "lock_share": "0.5"}, {"lock_share": 0}])
def test_a_lock_share_given_for_a_dense_source_is_refused_not_ignored(overrides):
    with pytest.raises(ConfigError, match="needs freeze_ratio > 0"):
        ExperimentConfig().with_overrides(overrides)


def test_a_sweep_may_still_make_a_dense_point_of_a_frozen_base():
    base = ExperimentConfig.from_settings({"freeze_ratio": 0.5, "lock_share": 0.3, "sparsity": 0.5})
    assert base.ticket.lock_ratio == pytest.approx(0.15)
    assert base.with_overrides({"freeze_ratio": 0.0, "sparsity": 0.7}).family == "dense"  # frozen_slt.config.points' dense point
    assert ExperimentConfig().with_overrides({"lock_share": "proportional"}).family == "dense"  # the default, said aloud


def test_lock_share_bounds_follow_from_p_le_k_le_1_minus_r():
    assert lock_share_bounds(0.5, 0.7) == pytest.approx((1 - 0.5 / 0.7, 0.5 / 0.7))
    assert lock_share_bounds(0.9, 0.5) == pytest.approx((0.0, 0.2))  # r = 0.5·s ≤ 1 − 0.9
    assert lock_share_bounds(0.1, 0.5) == pytest.approx((0.8, 1.0))  # p = 0.5·(1 − s) ≤ 0.1
    for k in (0.05, 0.2, 0.5, 0.8, 0.99):
        for f in (0.1, 0.5, 0.9, 1.0):
            low, high = lock_share_bounds(k, f)
            assert low - 1e-12 <= 1 - k <= high + 1e-12  # the proportional split is always feasible
            for s in (low, high):
                prune, lock = resolve_lock_share(k, f, s)
                assert prune <= k + 1e-9 and k <= 1 - lock + 1e-9


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sparsity": 0.3, "prune_ratio": 0.5}, "sparsity must be >= prune_ratio"),
        ({"sparsity": 0.8, "lock_ratio": 0.3}, r"sparsity must be <= 1 - lock_ratio"),
        ({"sparsity": 0.6, "prune_ratio": 0.6, "lock_ratio": 0.5}, r"prune_ratio \+ lock_ratio must be <= 1"),
        ({"sparsity": 1.2}, r"sparsity must lie in \[0, 1\], got 1.2"),
        ({"sparsity": -0.1}, r"sparsity must lie in \[0, 1\]"),
        ({"prune_ratio": float("nan")}, r"prune_ratio must be a number in \[0, 1\]"),
        ({"distribution": "fancy"}, "unknown distribution 'fancy'; valid: epl, erk, igq, uniform"),
        ({"scale": "cubic"}, "unknown scale 'cubic'; valid: dynamic, none, static"),
        ({"weight_init": "xavier"}, "unknown weight_init 'xavier'; valid: kaiming_normal"),
        ({"weight_seed": -1}, r"weight_seed must be an integer in \[0, 2\*\*63 - 1\] \(seeds are stored in 64 bits\), got -1"),
        ({"freeze_seed": 2**64}, r"freeze_seed must be an integer in \[0, 2\*\*63 - 1\]"),
        ({"sparsity": "half"}, "sparsity must be a number"),
        ({"sparsity": 1.0, "scale": "static"}, "needs sparsity < 1"),
    ],
)
def test_ticket_spec_rejects_bad_values_with_the_bound_and_values(kwargs, message):
    with pytest.raises(FrozenSLTError, match=message):
        TicketSpec(**kwargs)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"sparsity": 0.5, "freeze_ratio": 0.7, "lock_share": 0.1}, r"lock_share=0.1 is below its feasible minimum 0.285714"),
        ({"sparsity": 0.5, "freeze_ratio": 0.7, "lock_share": 0.9}, r"lock_share=0.9 is above its feasible maximum 0.714286"),
        ({"freeze_ratio": 1.5}, r"freeze_ratio must lie in \[0, 1\], got 1.5"),
        ({"lock_share": "half", "freeze_ratio": 0.5}, "lock_share must be a number"),
        ({"freeze_ratio": 0.5, "prune_ratio": 0.2}, "not both"),
        ({"model": "conv5"}, "unknown model 'conv5'; valid: conv2, conv4, conv6, conv8"),
        ({"dataset": "mnist"}, "unknown dataset 'mnist'; valid: cifar10, digits, imagenet, ogbn-arxiv"),
        ({"model": "resnet50"}, "resnet50"),
        ({"optimizer": "adam"}, "unknown optimizer 'adam'; valid: adamw, sgd"),
        ({"epochs": "ten"}, "epochs must be an integer, got .ten."),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"lr": -1}, "lr must be a finite number > 0"),
        ({"learning_rate": 0.1}, "unknown setting 'learning_rate'; valid:"),
        ({"weight_trained": True, "freeze_ratio": 0.5}, "weight-trained baseline trains every weight"),
    ],
)
def test_overrides_reject_bad_input(overrides, message):
    with pytest.raises(FrozenSLTError, match=message):
        ExperimentConfig().with_overrides(overrides)


def test_registry_errors_are_user_errors():
    assert issubclass(UnknownNameError, FrozenSLTError) and issubclass(InfeasibleSettingError, FrozenSLTError)
    assert issubclass(ConfigError, ValueError)


def test_two_spellings_of_one_setting_have_one_hash():
    by_freeze = ExperimentConfig().with_overrides({"sparsity": 0.5, "freeze_ratio": 0.5})
    by_ratios = ExperimentConfig().with_overrides({"sparsity": 0.5, "prune_ratio": 0.25, "lock_ratio": 0.25})
    assert by_freeze == by_ratios and by_freeze.config_hash() == by_ratios.config_hash()
    assert by_freeze.ticket.freeze_ratio == 0.5 and by_freeze.ticket.lock_share == 0.5
    assert by_freeze.family == "frozen"


def test_explicit_lock_share_and_families():
    config = ExperimentConfig().with_overrides({"sparsity": 0.6, "freeze_ratio": 0.5, "lock_share": "0"})
    assert config.ticket.prune_ratio == 0.5 and config.ticket.lock_ratio == 0.0 and config.family == "pruned"
    assert ExperimentConfig().family == "dense"
    assert ExperimentConfig(weight_trained=True).family == "weight_trained"


def test_string_overrides_are_coerced_and_dotted_keys_work():
    config = ExperimentConfig().with_overrides(
        {"train.epochs": "3", "lr": "0.05", "bf16": "true", "data_dir": "none", "ticket.sparsity": "0.7"}
    )
    assert config.train.epochs == 3 and config.train.lr == 0.05 and config.train.bf16 is True
    assert config.data.data_dir is None and config.ticket.sparsity == 0.7


def test_round_trip_through_dict():
    config = ExperimentConfig(
        model="conv4", ticket=TicketSpec(sparsity=0.6, prune_ratio=0.2, lock_ratio=0.1, distribution="epl"),
        data=DataSpec(split_seed=3), train=TrainSpec(epochs=7, optimizer="adamw"),
    )
    assert ExperimentConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="unknown keys"):
        ExperimentConfig.from_dict({"ticket": {"sparsityy": 0.5}})


def test_hash_ignores_execution_details_but_not_results():
    base = ExperimentConfig()
    assert base.with_overrides({"device": "cpu", "num_workers": 9, "data_dir": "/x"}).config_hash() == base.config_hash()
    for change in ({"lr": 0.2}, {"sparsity": 0.6}, {"score_seed": 1}, {"order_seed": 1}, {"bf16": True}):
        assert base.with_overrides(change).config_hash() != base.config_hash(), change
    dense = ExperimentConfig(weight_trained=True)
    assert dense.with_overrides({"sparsity": 0.9}).config_hash() == dense.config_hash()


def test_default_hash_is_pinned():
    # Changing the canonical form of the config changes every run directory: do it on purpose only.
    assert ExperimentConfig().config_hash() == "3a75e1b485ad"


def test_recipes_follow_the_papers_text_per_dataset_and_model():
    conv6 = ExperimentConfig.from_settings({"dataset": "cifar10", "model": "conv6"})
    resnet18 = ExperimentConfig.from_settings({"dataset": "cifar10", "model": "resnet18"})
    assert conv6.train.lr == 0.01 and resnet18.train.lr == 0.1  # docs/method.md §9
    assert conv6.train == replace(resnet18.train, lr=0.01)  # the rest of the CIFAR-10 recipe is shared
    assert ExperimentConfig.from_settings({"dataset": "digits", "model": "conv6"}).train.lr == 0.05  # the digits recipe
    assert ExperimentConfig.from_settings({"dataset": "cifar10", "model": "conv6", "lr": "0.1"}).train.lr == 0.1
    assert ExperimentConfig.from_settings({"dataset": "cifar10", "model": "conv6", "train.lr": 0.2}).train.lr == 0.2


def test_every_model_recipe_names_a_registered_dataset_model_and_settings():
    settable = set(leaf_fields()) | set(ALTERNATE_KEYS)
    for (dataset, model), recipe in MODEL_RECIPES.items():
        assert dataset in DATASETS and model in MODELS
        assert {key for key, _ in recipe} <= settable
        ExperimentConfig.from_settings({"dataset": dataset, "model": model})  # valid as a whole
