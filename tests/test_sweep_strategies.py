"""Optuna-mode search without Ray: family budgets, the unit boxes, the size-aware plan worked out by hand,
feasibility of every suggestion of every strategy, what the studies are told, and a resumed search."""

import json
import pickle

import optuna
import pytest
from dashboard import optuna_dashboard, studies_once

from frozen_slt.config.points import coordinates, point_config
from frozen_slt.errors import SweepConfigError
from sweeps.boxes import FamilyBox, size_freeze_ratios
from sweeps.search import FamilySearch
from sweeps.spec import CONFIG_DIR, STRATEGIES, load_sweep_spec
from sweeps.strategies import (
    COMPLETE,
    FAILED,
    PRUNED,
    SearchStrategy,
    family_budgets,
    interleave,
    plan_cells,
    split_budget,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)
RANGE = (0.1, 0.9)


def test_family_budgets_split_by_largest_remainder():
    even = {"dense": 1, "pruned": 1, "frozen": 1}
    assert family_budgets(24, even) == {"dense": 8, "pruned": 8, "frozen": 8}
    assert family_budgets(23, even) == {"dense": 8, "pruned": 8, "frozen": 7}  # the remainder goes to the first listed
    assert family_budgets(24, {"dense": 1, "pruned": 1, "frozen": 2}) == {"dense": 6, "pruned": 6, "frozen": 12}
    assert family_budgets(4, {"dense": 1, "frozen": 10}) == {"dense": 1, "frozen": 3}  # every family gets one
    assert family_budgets(3, {"dense": 1, "pruned": 1, "frozen": 10}) == {"dense": 1, "pruned": 1, "frozen": 1}
    with pytest.raises(SweepConfigError, match="num_samples = 2 cannot give each of the 3 families"):
        family_budgets(2, even)


def test_boxes_map_corners_and_centres_to_the_bounds_by_hand():
    frozen = FamilyBox("frozen", RANGE, RANGE)
    # k = .5, f = .9: s in [max(.01, 1 - .5/.9), min(1, .5/.9)] = [.444, .556]
    point = frozen.point({"u_sparsity": 0.5, "u_freeze_ratio": 1.0, "u_lock_share": 0.0}, seed=3)
    assert point["sparsity"] == pytest.approx(0.5) and point["freeze_ratio"] == 0.9 and point["seed"] == 3
    assert point["lock_share"] == pytest.approx(1 - 0.5 / 0.9)
    # k = .1, f = .1: s in [max(.01, 1 - 1), min(1, 9)] = [.01, 1]
    assert frozen.point({"u_sparsity": 0.0, "u_freeze_ratio": 0.0, "u_lock_share": 0.0}, 0)["lock_share"] == 0.01
    pruned = FamilyBox("pruned", RANGE, RANGE)
    # k = .3: f in [min(.1, .3), min(.9, .3)] = [.1, .3], so p = f <= k everywhere
    assert pruned.point({"u_sparsity": 0.25, "u_freeze_ratio": 1.0}, 0)["freeze_ratio"] == pytest.approx(0.3)
    sized = FamilyBox("pruned", RANGE, RANGE, freeze_ratio=0.5)  # the size fixed: k in [.5, .9]
    assert sized.dimensions == ("u_sparsity",) and sized.point({"u_sparsity": 0.5}, 0)["sparsity"] == pytest.approx(0.7)
    assert FamilyBox("pruned", RANGE, RANGE, freeze_ratio=0.9).is_single_point() and not sized.is_single_point()
    assert FamilyBox("dense", RANGE, RANGE).point({"u_sparsity": 1.0}, 0) == {"family": "dense", "sparsity": 0.9, "seed": 0}
    assert coordinates(point) == pytest.approx({"k": 0.5, "f": 0.9, "s": 4 / 9, "p": 0.5, "r": 0.4})
    with pytest.raises(ValueError, match="box coordinates of the frozen box"):
        frozen.point({"u_sparsity": 1.5, "u_freeze_ratio": 0.0, "u_lock_share": 0.0}, 0)
    with pytest.raises(SweepConfigError, match="a pruned source needs freeze_ratio <= sparsity"):
        FamilyBox("pruned", (0.1, 0.3), (0.5, 0.9))


def test_sizes_are_log_spaced_over_the_reachable_range_smallest_first():
    # sizes (1 - f) from .1 to .9 in 3 log steps: .1, .3, .9
    assert size_freeze_ratios(FamilyBox("frozen", RANGE, RANGE), 3) == pytest.approx([0.9, 0.7, 0.1])
    assert size_freeze_ratios(FamilyBox("frozen", RANGE, RANGE), 1) == pytest.approx([0.7])  # the geometric middle
    # a pruned source reaches f <= k_hi = .6 only: sizes .4 and .9
    assert size_freeze_ratios(FamilyBox("pruned", (0.1, 0.6), RANGE), 2) == pytest.approx([0.6, 0.1])
    assert size_freeze_ratios(FamilyBox("dense", RANGE, RANGE), 4) == [0.0]


def test_the_size_aware_plan_by_hand():
    cells = plan_cells("size-aware", {"dense": 8, "pruned": 8, "frozen": 8}, RANGE, RANGE)
    plan = [(c.name, c.box.freeze_ratio, c.budget, c.objectives) for c in cells]
    # round(sqrt 8) = 3 sizes; pruned at f = .9 = k_hi is a single point: one trial, the rest to the other sizes
    assert plan == [("dense-size0", None, 8, 1), ("pruned-size0", 0.9, 1, 1), ("pruned-size1", 0.7, 4, 1),
                    ("pruned-size2", 0.1, 3, 1), ("frozen-size0", 0.9, 3, 1), ("frozen-size1", 0.7, 3, 1),
                    ("frozen-size2", 0.1, 2, 1)]
    assert split_budget(5, [True, False, True]) == [2, 1, 2] and split_budget(2, [False, False]) == [1, 1]
    generic = plan_cells("nsga2", {"dense": 1, "frozen": 2}, RANGE, RANGE)
    assert [(c.name, c.budget, c.objectives) for c in generic] == [("dense", 1, 2), ("frozen", 2, 2)]
    # each next trial to the family furthest behind its budget: frozen (0/2), dense (0/1), frozen
    assert interleave(generic) == [1, 0, 1]


def fake_accuracy(point):
    return 1 - abs(point["sparsity"] - 0.5) - 0.3 * point.get("freeze_ratio", 0.0)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_suggestion_of_every_strategy_is_feasible_and_its_family_gets_its_budget(strategy):
    spec = load_sweep_spec(CONFIG_DIR / "digits.toml")
    base = spec.base_config()
    budgets = {"dense": 10, "pruned": 20, "frozen": 30} if strategy != "gp" else {"dense": 4, "pruned": 8, "frozen": 12}
    search = SearchStrategy(strategy, budgets, spec.sparsity_range, spec.freeze_range, seed=1, trial_seed=5, baseline=True)
    families = []
    for number in range(len(search.order)):
        config = search.ask(f"t{number}")
        point = config["point"]
        families.append(point["family"])
        ticket = point_config(base, point).ticket  # raises if infeasible or of another family
        if point["family"] == "weight_trained":
            continue
        assert point["seed"] == 5 and all(0 <= u <= 1 for u in config["box"].values())
        assert ticket.prune_ratio <= ticket.sparsity + 1e-9 and ticket.sparsity <= 1 - ticket.lock_ratio + 1e-9
        if point["family"] == "frozen":
            assert ticket.lock_ratio > 0
        search.tell(f"t{number}", COMPLETE, fake_accuracy(point), int(1e6 * (1 - point.get("freeze_ratio", 0.0))))
    assert search.ask("one more") is None
    assert families[0] == "weight_trained" and {f: families.count(f) for f in budgets} == budgets


def test_studies_are_told_only_full_budget_values():
    search = SearchStrategy("size-aware", {"frozen": 4}, RANGE, RANGE, seed=0, trial_seed=0, baseline=False)
    for key in "abcd":
        search.ask(key)
    search.tell("a", COMPLETE, 0.9, 1000)
    search.tell("b", PRUNED)
    search.tell("c", FAILED)
    search.tell("a", PRUNED)  # told already: nothing changes
    told = [search._study(search.asked[key]["cell"]).trials[search.asked[key]["number"]] for key in "abc"]
    assert [(t.state.name, t.values) for t in told] == [("COMPLETE", [0.9]), ("PRUNED", None), ("FAIL", None)]
    first = search._study(search.asked["a"]["cell"]).trials[0]
    assert first.params == {"u_sparsity": 0.5, "u_lock_share": 0.5}  # each size starts at its box's centre
    assert set(first.user_attrs) == {"family", "k", "f", "s", "p", "r"} and first.user_attrs["f"] == 0.9


def test_size_aware_starts_each_size_with_the_same_fixed_design_then_tpe():
    search = SearchStrategy("size-aware", {"frozen": 8}, RANGE, RANGE, seed=0, trial_seed=0, baseline=False)
    assert [c.name for c in search.cells] == ["frozen-size0", "frozen-size1", "frozen-size2"]
    asked = {}
    for number in range(8):
        config = search.ask(str(number))
        asked.setdefault(config["study"], []).append(tuple(config["box"][n] for n in ("u_sparsity", "u_lock_share")))
        search.tell(str(number), COMPLETE, 1 - config["point"]["sparsity"], 100)
    design = [(0.5, 0.5), (0.1, 0.5), (0.9, 0.5)]
    assert asked["frozen-size0"] == design and asked["frozen-size1"] == design and asked["frozen-size2"] == design[:2]
    pruned = SearchStrategy("size-aware", {"pruned": 2}, RANGE, (0.2, 0.5), seed=0, trial_seed=0, baseline=False)
    assert [pruned.ask(key)["box"] for key in "ab"] == [{"u_sparsity": 0.5}, {"u_sparsity": 0.5}]  # one per size


def test_nsga2_population_is_a_third_of_the_budget():
    search = SearchStrategy("nsga2", {"dense": 9}, RANGE, RANGE, seed=0, trial_seed=0, baseline=False)
    for number in range(9):
        config = search.ask(f"t{number}")
        search.tell(f"t{number}", COMPLETE, fake_accuracy(config["point"]), 100)
    generations = [t.system_attrs["NSGAIISampler:generation"] for t in search._study(0).trials]
    assert generations == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def study_storage(tmp_path):
    """A new handle on ``tmp_path``'s sqlite study storage, as each driver of a resumed sweep opens its own."""
    return optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'study.db'}")


def begun_search(args, tmp_path, prefix):
    """A search over ``args`` that handed out w, a and b and was told a (val 0.8, 500 bits)."""
    search = SearchStrategy(*args, storage=study_storage(tmp_path), prefix=prefix)
    for key in ("w", "a", "b"):
        search.ask(key)
    search.tell("a", COMPLETE, 0.8, 500)
    return search


def test_a_resumed_search_continues_and_fails_the_trial_asked_before_the_kill(tmp_path):
    args = ("size-aware", {"frozen": 6}, RANGE, RANGE, 0, 0, True)
    first = begun_search(args, tmp_path, "sweep")
    saved = json.loads(json.dumps(first.get_state()))
    first.ask("c")  # handed out after the last snapshot: Ray will not know this trial
    again = SearchStrategy(*args, storage=study_storage(tmp_path), prefix="sweep")
    again.set_state(saved)
    assert again.ask("c2")["point"]["family"] == "frozen" and again.live() == 3  # w, b and c2
    again.tell("b", PRUNED)
    states = sorted(t.state.name for cell in range(len(again.cells)) for t in again._study(cell).trials)
    assert states.count("FAIL") == 1 and states.count("COMPLETE") == 1 and states.count("PRUNED") == 1
    with pytest.raises(SweepConfigError, match="another search"):
        SearchStrategy("nsga2", {"frozen": 6}, RANGE, RANGE, 0, 0, True).set_state(saved)


def test_studies_name_their_objectives_resumed_ones_too(tmp_path, recwarn):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    # a study a sweep opened before studies named their objectives, continued now
    optuna.create_study(storage=url, study_name="old.frozen", directions=["maximize", "minimize"])
    for strategy, prefix, names in (("nsga2", "old", ["val_accuracy", "ticket_bits"]), ("size-aware", "new", ["val_accuracy"])):
        search = SearchStrategy(strategy, {"frozen": 4}, RANGE, RANGE, 0, 0, False, storage=url, prefix=prefix)
        study = search.ask("a")["study"]
        assert optuna.load_study(study_name=f"{prefix}.{study}", storage=url).metric_names == names
    # Optuna calls naming them experimental: a sweep's output does not say so at every study it opens
    assert not [w for w in recwarn if issubclass(w.category, optuna.exceptions.ExperimentalWarning)]


def test_the_ray_searcher_tells_stopped_trials_pruned_and_survives_pickling(tmp_path):
    settings = {"strategy": "tpe", "budgets": {"dense": 2, "frozen": 2}, "sparsity_range": list(RANGE),
                "freeze_range": list(RANGE), "seed": 0, "trial_seed": 0, "baseline": False, "prefix": "s"}
    searcher = FamilySearch(settings, f"sqlite:///{tmp_path / 'study.db'}")
    assert searcher.set_max_concurrency(2) and searcher.total == 4
    for trial_id in ("full", "stopped"):
        assert "point" in searcher.suggest(trial_id)
    assert searcher.suggest("waits") is None  # two live trials: the searcher's own concurrency limit
    final = {"best_val_accuracy": 0.9, "ticket_bits": 1000, "epoch": 6, "done": True, "full_budget": True}
    searcher.on_trial_complete("full", result=final)
    # Ray marks a stopped trial's last result done too: only full_budget tells it apart
    searcher.on_trial_complete("stopped", result={**final, "best_val_accuracy": 0.4, "epoch": 1, "full_budget": False})
    searcher.save(str(tmp_path / "searcher-state.pkl"))
    copy = pickle.loads(pickle.dumps(searcher))
    copy.restore(str(tmp_path / "searcher-state.pkl"))
    assert copy.suggest("failed") is not None
    copy.on_trial_complete("failed", error=True)
    trials = [t for name in ("s.dense", "s.frozen")
              for t in optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path / 'study.db'}").trials]
    assert sorted(t.state.name for t in trials) == ["COMPLETE", "FAIL", "PRUNED"]
    assert [t.values for t in trials if t.state.name == "COMPLETE"] == [[0.9, 1000.0]]


def tell_pair(search, keys, outcomes):
    for key, (outcome, accuracy) in zip(keys, outcomes):
        search.tell(key, outcome, accuracy, None if accuracy is None else 1000)


def test_repeats_hand_out_each_configuration_with_consecutive_seeds_and_tell_its_study_the_mean():
    search = SearchStrategy("tpe", {"dense": 2, "frozen": 2}, RANGE, RANGE, seed=0, trial_seed=3, baseline=True,
                            repeats=2)
    assert search.total == 10  # (1 baseline + 4 configurations) x 2 seeds
    configs = [search.ask(f"t{number}") for number in range(10)]
    assert search.ask("one more") is None
    for first, second in zip(configs[::2], configs[1::2]):  # a configuration's seeds come one after the other
        assert first["seeds"] == second["seeds"] == [3, 4]
        assert (first["point"]["seed"], second["point"]["seed"]) == (3, 4)
        assert {**first["point"], "seed": 4} == second["point"] and first.get("box") == second.get("box")
    assert configs[0]["point"]["family"] == "weight_trained"
    assert len({json.dumps(c["point"], sort_keys=True) for c in configs[2::2]}) == 4  # four distinct configurations
    studies = {entry["cell"] for entry in search.asked.values()} - {-1}
    assert sum(len(search._study(cell).trials) for cell in studies) == 4  # one study trial per configuration

    def study_trial(key):
        entry = search.asked[key]
        return search._study(entry["cell"]).trials[entry["number"]]

    search.tell("t2", COMPLETE, 0.5, 1000)
    assert study_trial("t2").state.name == "RUNNING"  # one seed of two: nothing told yet
    search.tell("t3", COMPLETE, 0.75, 1000)
    assert study_trial("t2").state.name == "COMPLETE" and study_trial("t2").values == [0.625, 1000]  # the mean
    tell_pair(search, ("t4", "t5"), [(COMPLETE, 0.9), (PRUNED, None)])
    assert study_trial("t4").state.name == "PRUNED"  # a seed stopped early: never COMPLETE with the other's value
    tell_pair(search, ("t6", "t7"), [(PRUNED, None), (FAILED, None)])
    assert study_trial("t6").state.name == "FAIL"
    tell_pair(search, ("t8", "t9", "t0", "t1"), [(COMPLETE, 0.6), (COMPLETE, 0.7), (COMPLETE, 0.8), (COMPLETE, 0.9)])
    assert study_trial("t8").values == [pytest.approx(0.65), 1000] and search.live() == 0


def test_a_search_killed_between_the_seeds_of_a_configuration_neither_loses_nor_double_counts_them(tmp_path):
    args = ("size-aware", {"frozen": 3}, RANGE, RANGE, 0, 7, False)
    first = SearchStrategy(*args, storage=study_storage(tmp_path), prefix="sweep", repeats=3)
    a, b = first.ask("a"), first.ask("b")
    first.tell("a", COMPLETE, 0.8, 500)
    saved = json.loads(json.dumps(first.get_state()))  # Ray's snapshot: plain JSON
    again = SearchStrategy(*args, storage=study_storage(tmp_path), prefix="sweep", repeats=3)
    again.set_state(saved)
    c = again.ask("c")  # the configuration's third seed, not a new configuration
    assert [x["point"]["seed"] for x in (a, b, c)] == [7, 8, 9] and c["box"] == a["box"] and c["study"] == a["study"]
    again.tell("a", COMPLETE, 0.1, 500)  # told before the kill: changes nothing
    again.tell("b", COMPLETE, 0.7, 500)  # the trial Ray resumed
    study = again._study(again.asked["a"]["cell"])
    assert study.trials[0].state.name == "RUNNING"
    again.tell("c", COMPLETE, 0.9, 500)
    assert [(t.state.name, t.values) for t in study.trials] == [("COMPLETE", [pytest.approx(0.8)])]
    d = again.ask("d")  # the next configuration: a new study trial, first seed again
    assert d["point"]["seed"] == 7 and (d["study"], d["box"]) != (a["study"], a["box"])
    assert sum(len(again._study(cell).trials) for cell in range(len(again.cells))) == 2
    with pytest.raises(SweepConfigError, match="trains 3 seeds per configuration, not \\[optuna\\] repeats = 2"):
        SearchStrategy(*args, storage=study_storage(tmp_path), prefix="sweep", repeats=2).set_state(saved)


def test_a_search_state_saved_before_repeats_existed_resumes(tmp_path):
    args = ("nsga2", {"dense": 3}, RANGE, RANGE, 0, 0, True)
    first = begun_search(args, tmp_path, "old")
    saved = {"strategy": "nsga2", "cells": ["dense"],  # the old format: no repeats, no groups, no current config
             "asked": {key: {name: entry[name] for name in ("cell", "number", "told")} for key, entry in first.asked.items()}}
    again = SearchStrategy(*args, storage=study_storage(tmp_path), prefix="old")
    again.set_state(json.loads(json.dumps(saved)))
    assert again.ask("c")["point"]["family"] == "dense" and again.ask("d") is None  # the baseline and 3 dense trials
    again.tell("b", COMPLETE, 0.6, 500)
    assert [t.state.name for t in again._study(0).trials] == ["COMPLETE", "COMPLETE", "RUNNING"]


def test_the_ray_searcher_runs_every_configuration_repeats_times(tmp_path):
    settings = {"strategy": "random", "budgets": {"frozen": 2}, "sparsity_range": list(RANGE), "freeze_range": list(RANGE),
                "seed": 0, "trial_seed": 0, "baseline": True, "prefix": "r", "repeats": 2}
    searcher = FamilySearch(settings, f"sqlite:///{tmp_path / 'study.db'}")
    assert searcher.total == 6  # Ray's num_samples: (baseline + 2 configurations) x 2 seeds
    final = {"ticket_bits": 1000, "epoch": 6, "done": True, "full_budget": True}
    for trial_id in ("b0", "b1", "x0"):
        searcher.suggest(trial_id)
    searcher.on_trial_complete("x0", result={**final, "best_val_accuracy": 0.6})
    searcher.save(str(tmp_path / "searcher-state.json"))
    copy = pickle.loads(pickle.dumps(searcher))
    copy.restore(str(tmp_path / "searcher-state.json"))
    assert copy.suggest("x1")["point"]["seed"] == 1
    copy.on_trial_complete("x1", result={**final, "best_val_accuracy": 0.7})
    study = optuna.load_study(study_name="r.frozen", storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert [t.values for t in study.trials] == [[pytest.approx(0.65), 1000.0]]


def test_repeats_is_validated_and_the_default_keeps_a_sweeps_name(tmp_path):
    shipped = (CONFIG_DIR / "digits.toml").read_text().replace('search = "grid"', 'search = "optuna"')
    assert "\nrepeats = 1 " in shipped  # the shipped config states the default; the variants below replace it
    text = "\n".join(line for line in shipped.splitlines() if not line.startswith("repeats ="))
    names = {}
    for value in ("", "repeats = 1", "repeats = 3"):
        path = tmp_path / f"s{len(names)}.toml"
        path.write_text(text.replace("[optuna]", f"[optuna]\n{value}"))
        spec = load_sweep_spec(path)
        names[value] = (spec.sweep_hash(), spec.repeats, spec.expected_seeds())
    assert names[""] == names["repeats = 1"] == (names[""][0], 1, (0,))
    assert names["repeats = 3"][0] != names[""][0] and names["repeats = 3"][1:] == (3, (0, 1, 2))
    for value in ("0", "2.5", '"two"'):
        path = tmp_path / "bad.toml"
        path.write_text(text.replace("[optuna]", f"[optuna]\nrepeats = {value}"))
        with pytest.raises(SweepConfigError, match=r"\[optuna\] repeats"):
            load_sweep_spec(path)


SMOKE_SETTINGS = {"model": "conv2", "dataset": "digits", "epochs": 1, "batch_size": 256, "lr": 0.05}


@pytest.fixture(scope="module")
def train_once():
    """Train a point for one epoch (each config once per module): the smoke sweeps' real objective."""
    from frozen_slt.config.experiment import ExperimentConfig
    from frozen_slt.training.loop import fit

    base, results = ExperimentConfig.from_settings(SMOKE_SETTINGS), {}

    def train(point):
        config = point_config(base, point)
        if config.config_hash() not in results:
            result = fit(config)
            results[config.config_hash()] = {"family": config.family, "size_bits": result.size_bits,
                                             "val_accuracy": result.val_accuracy, "seed": point["seed"],
                                             **{key: point.get(key) for key in ("sparsity", "freeze_ratio", "lock_share")}}
        return results[config.config_hash()]
    return train


@pytest.mark.slow
def test_optuna_dashboard_shows_a_two_objective_search_with_its_trials_and_objective_names(tmp_path, train_once):
    # the studies of an nsga2 search in the storage a sweep gives them, served by the optuna-dashboard the sweep
    # names (a size-aware sweep through Ray is watched by it in tests/test_sweeps_e2e.py)
    settings = {"strategy": "nsga2", "budgets": {"dense": 1, "frozen": 2}, "sparsity_range": [0.2, 0.8],
                "freeze_range": [0.2, 0.8], "seed": 0, "trial_seed": 0, "baseline": False, "prefix": "sweep-1"}
    url = f"sqlite:///{tmp_path / 'sweep-1.optuna.db'}"
    searcher, told = FamilySearch(settings, url), {}

    def trial(number: int) -> None:
        record = train_once(searcher.suggest(f"trial{number}")["point"])
        searcher.on_trial_complete(f"trial{number}", result={"best_val_accuracy": record["val_accuracy"],
                                                              "ticket_bits": record["size_bits"], "full_budget": True})
        told.setdefault(f"sweep-1.{record['family']}", []).append([record["val_accuracy"], record["size_bits"]])

    trial(0)  # the storage exists before the dashboard opens it, as a sweep's does once it printed the command
    with optuna_dashboard(url) as get:
        for number in (1, 2):
            trial(number)
            # read while the search goes on: each trial is there once told (and the dashboard's cache refreshed)
            shown = studies_once(get, lambda shown: sum(len(study["trials"]) for study in shown.values()) > number)
            assert sum(len(study["trials"]) for study in shown.values()) == number + 1
    assert set(shown) == {"sweep-1.dense", "sweep-1.frozen"}
    for name, study in shown.items():
        assert study["directions"] == ["maximize", "minimize"]
        assert study["objective_names"] == ["val_accuracy", "ticket_bits"]
        assert [trial["state"] for trial in study["trials"]] == ["Complete"] * len(told[name])
        assert [trial["values"] for trial in study["trials"]] == told[name]
        assert {param["name"] for trial in study["trials"] for param in trial["params"]} >= {"u_sparsity"}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_smoke_sweep_of_each_strategy_maps_every_family(strategy, tmp_path, train_once):
    # Ray's calls to the searcher, in-process: suggest, the trial trained for real, on_trial_complete; halfway,
    # the searcher is pickled and restored from its saved state as a resumed sweep's would be. What Ray adds
    # around these calls does not depend on the strategy: a size-aware sweep runs through Ray, killed and
    # resumed, in tests/test_sweeps_e2e.py.
    from sweeps.fronts import compute_fronts

    budgets = {"dense": 1, "pruned": 1, "frozen": 2}
    settings = {"strategy": strategy, "budgets": budgets, "sparsity_range": [0.2, 0.8], "freeze_range": [0.2, 0.8],
                "seed": 0, "trial_seed": 0, "baseline": True, "prefix": "smoke"}
    url = f"sqlite:///{tmp_path / 'study.db'}"
    searcher, records, number = FamilySearch(settings, url), [], 0
    while (config := searcher.suggest(f"trial{number}")) != FamilySearch.FINISHED:
        record = train_once(config["point"])
        searcher.on_trial_complete(f"trial{number}", result={"best_val_accuracy": record["val_accuracy"],
                                                              "ticket_bits": record["size_bits"], "full_budget": True})
        records.append(record)
        number += 1
        if number == 3:
            searcher.save(str(tmp_path / "state.json"))
            searcher = pickle.loads(pickle.dumps(searcher))
            searcher.restore(str(tmp_path / "state.json"))
    fronts = compute_fronts(records)
    assert len(records) == 5 and len(fronts["weight_trained"]) == 1
    assert {f: fronts["families"][f]["trials"] for f in budgets} == budgets
    assert all(fronts["families"][f]["front"] and fronts["families"][f]["hypervolume"] > 0 for f in budgets)
    studies = [optuna.load_study(study_name=summary.study_name, storage=url)
               for summary in optuna.get_all_study_summaries(url)]
    assert len(studies) == (4 if strategy == "size-aware" else 3)  # size-aware: two sizes of the frozen family
    told = sorted((t.values[0], t.user_attrs["family"]) for study in studies for t in study.trials)
    assert all(t.state.name == "COMPLETE" for study in studies for t in study.trials)
    assert told == sorted((r["val_accuracy"], r["family"]) for r in records[1:])
