"""Sweep configuration and search spaces, without Ray: every point a space suggests is feasible."""

import copy
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from frozen_slt.config.points import point_config
from frozen_slt.errors import ConfigError
from sweeps.space import grid_points, plan_sweep
from sweeps.spec import (
    CONFIG_DIR,
    STRATEGIES,
    SweepConfigError,
    load_sweep_spec,
    smoke_spec,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_configs_load_and_every_point_they_can_search_is_feasible(path):
    spec = load_sweep_spec(path)
    base = spec.base_config()
    points, skipped = grid_points(spec)
    families = {point_config(base, point).family for point in points}
    assert families >= set(spec.families)
    for note in skipped:
        assert note.startswith("pruned") or "lock_share" in note
    for strategy in STRATEGIES:  # and every corner of every Optuna study's box
        plan_sweep(replace(spec, search="optuna", strategy=strategy))


def test_a_point_of_the_wrong_family_says_once_what_its_family_needs():
    spec = load_sweep_spec(CONFIG_DIR / "digits.toml")
    point = {"family": "frozen", "sparsity": 0.5, "freeze_ratio": 0.5, "lock_share": 0.0, "seed": 0}
    with pytest.raises(ConfigError) as error:  # an Optuna box's corner or a hand-made point could be one
        point_config(spec.base_config(), point)
    message = str(error.value)
    assert message == ("it resolves to p = 0.5, r = 0, a pruned source, not frozen: a frozen source locks some weights, "
                       "r = s·f > 0, which needs f > 0, k < 1 and 0 < s <= (1 - k)/f")


def test_default_grid_by_hand():
    spec = load_sweep_spec(CONFIG_DIR / "digits.toml")
    points, skipped = grid_points(spec)
    by_family = {}
    for point in points:
        by_family.setdefault(point["family"], []).append(point)
    # k in {0.3, 0.5, 0.7}, f in {0.2, 0.4, 0.6, 0.8}: dense 3, frozen 3·4 = 12, pruned needs f <= k: 1 + 2 + 3 = 6.
    assert {family: len(items) for family, items in by_family.items()} == {"weight_trained": 1, "dense": 3, "pruned": 6, "frozen": 12}
    assert len(skipped) == 6 and all(note.startswith("pruned") for note in skipped)


def test_smoke_spec_is_two_one_epoch_trials():
    spec = smoke_spec(load_sweep_spec(CONFIG_DIR / "digits.toml"))
    points, _ = grid_points(spec)
    assert len(points) == 2 and spec.base_config().train.epochs == 1
    assert spec.run_name != load_sweep_spec(CONFIG_DIR / "digits.toml").run_name


@pytest.mark.parametrize("text, needle", [
    ('name = "x"\nsearch = "random"\n', "unknown search 'random'"),
    ('name = "x"\nfamilies = ["dense", "lottery"]\n', "families must be a non-empty list of distinct families from dense, pruned, frozen"),
    ('name = "x"\n[grid]\nsparsity = [1.5]\n', "[grid] sparsity must be a non-empty list of distinct numbers in [0, 1], got [1.5]"),
    ('name = "x"\n[grid]\nsparsities = [0.5]\n', "unknown keys ['sparsities'] in [grid]"),
    ('name = "x"\n[experiment]\nmodel = "vgg"\n', "unknown model 'vgg'"),
    ('name = "x"\n[optuna]\nsparsity = [0.0, 0.5]\n', "[optuna] sparsity must be [low, high] with 0 < low"),
    ('name = "x"\nbogus = 1\n', "unknown keys ['bogus']"),
])
def test_bad_sweep_configs(tmp_path, text, needle):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(SweepConfigError) as error:
        load_sweep_spec(path)
    assert needle in str(error.value)


def test_missing_config_lists_the_shipped_ones(tmp_path):
    with pytest.raises(SweepConfigError, match="digits.toml"):
        load_sweep_spec(tmp_path / "nope.toml")


def test_cluster_yaml_passes_rays_own_validation():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((REPO / "cluster.yaml").read_text())
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    workers = prepared["available_node_types"]["worker.gpu"]
    assert workers["min_workers"] >= 1
    assert any("[sweep]" in command for command in prepared["setup_commands"])
    # protected: token authentication on every node, its token shipped, nothing published on 0.0.0.0
    starts = prepared["head_start_ray_commands"][-1], prepared["worker_start_ray_commands"][-1]
    assert all("RAY_AUTH_MODE=token ray start" in command for command in starts)
    assert "--dashboard-host=127.0.0.1" in starts[0]
    assert "~/.ray/auth_token" in config["file_mounts"]
    assert "0.0.0.0" not in yaml.safe_dump(config)
    broken = copy.deepcopy(config)
    broken["head_node_type"] = "missing"
    with pytest.raises(ValueError):
        validate_config(prepare_config(broken))


def test_relative_data_dir_is_made_absolute_for_trials(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = load_sweep_spec(CONFIG_DIR / "cifar10-conv6.toml")
    assert spec.base_config().data.data_dir == str(tmp_path / "data")
