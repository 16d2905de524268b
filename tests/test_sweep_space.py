"""Sweep configuration and search spaces, without Ray: every point a space suggests is feasible."""

import copy
import pickle
from pathlib import Path

import optuna
import pytest
import yaml

from sweeps.spec import CONFIG_DIR, SweepConfigError, load_sweep_spec, smoke_spec
from sweeps.space import OptunaSpace, grid_points
from trainables.points import point_config

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_configs_load_and_every_grid_point_is_feasible(path):
    spec = load_sweep_spec(path)
    base = spec.base_config()
    points, skipped = grid_points(spec)
    families = {point_config(base, point).family for point in points}
    assert families >= set(spec.families)
    for note in skipped:
        assert note.startswith("pruned") or "lock_share" in note


def test_default_grid_by_hand():
    spec = load_sweep_spec(CONFIG_DIR / "digits.toml")
    points, skipped = grid_points(spec)
    by_family = {}
    for point in points:
        by_family.setdefault(point["family"], []).append(point)
    # k in {0.3, 0.5, 0.7}, f in {0.2, 0.4, 0.6, 0.8}: dense 3, frozen 3·4 = 12, pruned needs f <= k: 1 + 2 + 3 = 6.
    assert {family: len(items) for family, items in by_family.items()} == {"weight_trained": 1, "dense": 3, "pruned": 6, "frozen": 12}
    assert len(skipped) == 6 and all(note.startswith("pruned") for note in skipped)


@pytest.mark.parametrize("sampler", [optuna.samplers.NSGAIISampler(seed=1), optuna.samplers.TPESampler(seed=1)])
def test_every_optuna_suggestion_is_feasible(sampler):
    spec = load_sweep_spec(CONFIG_DIR / "digits.toml")
    base = spec.base_config()
    define = OptunaSpace(spec)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seen = set()
    for index in range(150):
        trial = study.ask()
        constants = define(trial)
        point = {**trial.params, **constants}
        config = point_config(base, point)  # raises if infeasible or of another family
        ticket = config.ticket
        assert ticket.prune_ratio <= ticket.sparsity + 1e-9 and ticket.sparsity <= 1 - ticket.lock_ratio + 1e-9
        if point["family"] == "frozen":
            assert ticket.lock_ratio > 0
        seen.add(point["family"])
        study.tell(trial, [ticket.sparsity, 1 - ticket.freeze_ratio])  # any values: only the sampler's moves matter
    assert seen == {"dense", "pruned", "frozen"}


def test_optuna_space_survives_pickling():
    # Ray pickles the searcher with its space in every experiment snapshot; a closure would fail there
    spec = load_sweep_spec(CONFIG_DIR / "digits.toml")
    space = pickle.loads(pickle.dumps(OptunaSpace(spec)))
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.TPESampler(seed=3))
    trial = study.ask()
    assert space(trial) == {"seed": 0, **({"lock_share": 0.0} if trial.params["family"] == "pruned" else {})}


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
