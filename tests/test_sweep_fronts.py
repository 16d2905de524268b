"""Front tables and the closing summary: ticket files named per front point, the smallest frozen ticket
that reaches the weight-trained baseline, worked out by hand; trials stopped early kept out of the fronts;
fronts drawn on configurations (the mean over their seeds), with their spread, seed count, incomplete
configurations marked and kept off, and the seed whose ticket a row names."""

import csv
import json
from types import SimpleNamespace

import pytest

from frozen_slt.config.experiment import ExperimentConfig
from sweeps.dominance import hypervolume, pareto_front
from sweeps.fronts import (
    COLUMNS,
    compute_fronts,
    format_fronts,
    plot_fronts,
    write_tables,
)
from sweeps.outcome import collect, early_stopping_summary
from sweeps.spec import SweepSpec


def record(family, size, val, ticket="", seed=0, seeds_expected=None):
    """A trial's record; its configuration (its freeze ratio) follows from its size, so records of one size
    are seeds of one configuration."""
    return {"family": family, "size_bits": size, "val_accuracy": val, "test_accuracy": val - 0.01,
            "sparsity": 0.5, "freeze_ratio": 0.0 if family == "dense" else 1 - size / 1000, "lock_share": None,
            "seed": seed, "seeds_expected": seeds_expected, "trial_id": f"{family}{size}-{seed}", "ticket_file": ticket}


RECORDS = [
    record("frozen", 100, 0.80, "/t/a.slt"),   # front, below the baseline
    record("frozen", 200, 0.93, "/t/b.slt"),   # front, reaches it: the answer
    record("frozen", 300, 0.97, "/t/c.slt"),   # front, reaches it but larger
    record("frozen", 250, 0.85, "/t/d.slt"),   # dominated by b
    record("dense", 1000, 0.95, "/t/e.slt"),   # reaches it, but not frozen
    record("weight_trained", 32000, 0.92),
]


def test_the_smallest_frozen_front_ticket_reaching_the_baseline_is_named_with_its_file(tmp_path):
    fronts = compute_fronts(RECORDS)
    assert [r["size_bits"] for r in fronts["families"]["frozen"]["front"]] == [100, 200, 300]
    assert fronts["smallest_reaching_baseline"]["ticket_file"] == "/t/b.slt"
    text = format_fronts(fronts)
    assert text.splitlines()[-1] == ("smallest frozen ticket reaching the weight-trained val accuracy 92.00%: "
                                     "200 bits, val 93.00%  (0) /t/b.slt")
    assert all(name in text for name in ("/t/a.slt", "/t/c.slt", "/t/e.slt")) and "/t/d.slt" not in text
    write_tables(fronts, tmp_path)
    with open(tmp_path / "pareto_front_frozen.csv") as handle:
        assert [row["ticket_file"] for row in csv.DictReader(handle)] == ["/t/a.slt", "/t/b.slt", "/t/c.slt"]


def test_the_summary_says_when_no_frozen_ticket_reaches_the_baseline():
    stronger = [*RECORDS[:-1], record("weight_trained", 32000, 0.99)]
    fronts = compute_fronts(stronger)
    assert fronts["smallest_reaching_baseline"] is None
    assert format_fronts(fronts).splitlines()[-1] == "no frozen ticket on the front reaches the weight-trained val accuracy 99.00%"
    assert compute_fronts(RECORDS[:-1])["smallest_reaching_baseline"] is None  # no baseline: nothing to reach


def fake_result(trial_id, point, epoch, accuracy, bits, full, error=None):
    metrics = {"trial_id": trial_id, "epoch": epoch, "best_val_accuracy": accuracy, "best_test_accuracy": accuracy,
               "best_epoch": epoch, "ticket_bits": bits, "done": True, "full_budget": full}
    return SimpleNamespace(metrics=metrics, config={"point": point}, error=error, checkpoint=None, path=f"/r/{trial_id}")


def test_only_full_budget_trials_enter_the_fronts_and_the_stops_are_counted(tmp_path):
    base = ExperimentConfig.from_settings({"model": "conv2", "dataset": "digits", "epochs": 9})
    frozen = {"family": "frozen", "sparsity": 0.5, "freeze_ratio": 0.5, "lock_share": "proportional", "seed": 0}
    results = [
        fake_result("a", frozen, 9, 0.80, 100, True),
        fake_result("b", {**frozen, "sparsity": 0.3}, 1, 0.95, 100, False),  # stopped at epoch 1: partial value
        fake_result("c", {**frozen, "sparsity": 0.7}, 3, 0.99, 100, False),  # stopped at epoch 3
        fake_result("d", {**frozen, "sparsity": 0.4}, 4, 0.97, 100, False),  # interrupted: not stopped by anyone
    ]
    stops = {"b": {"reason": "rung at epoch 1: not among"}, "c": {"reason": "rung at epoch 3: not among"}}
    outcome = collect(results, base, stops)
    assert [r["trial_id"] for r in outcome.records] == ["a"] and outcome.unfinished == ["d"]
    assert [(r["trial_id"], r["stopped_at_epoch"]) for r in outcome.stopped] == [("b", 1), ("c", 3)]
    assert outcome.epochs_trained == 9 + 1 + 3 + 4 and outcome.epochs_saved == 8 + 6
    fronts = compute_fronts(outcome.records)
    assert [r["val_accuracy"] for r in fronts["families"]["frozen"]["front"]] == [0.80]  # not the partial 0.99
    spec = SweepSpec(experiment={"model": "conv2", "dataset": "digits", "epochs": 9}, scheduler="mo-asha")
    fronts["early_stopping"] = early_stopping_summary(spec, outcome)
    assert ("mo-asha stopped 2 of 3 trials early (fronts and hypervolumes count only full-budget trials): "
            "17 epochs trained, 14 saved (45 % of 31)") in format_fronts(fronts)
    spec_fifo = SweepSpec(experiment={"model": "conv2", "dataset": "digits", "epochs": 9})
    assert "stopped" not in format_fronts({**fronts, "early_stopping": early_stopping_summary(spec_fifo, outcome)})
    plot = plot_fronts(outcome.records, fronts, tmp_path / "p.png", "t", stopped=outcome.stopped)
    assert plot.stat().st_size > 0


# ---- seeds: fronts on configurations (issue 25 item 1) ----

def seeded(family, size, vals, sparsity=0.5, expected=None, tests=None):
    """The records of one configuration: one per seed (0, 1, ...) with the val accuracies ``vals``."""
    freeze = 0.0 if family in ("dense", "weight_trained") else 1 - size / 1000
    return [{"family": family, "size_bits": size, "val_accuracy": val,
             "test_accuracy": (tests[seed] if tests else val - 0.02), "sparsity": sparsity, "freeze_ratio": freeze,
             "lock_share": None, "seed": seed, "seeds_expected": expected if expected is not None else list(range(len(vals))),
             "trial_id": f"{family}{size}k{sparsity}-{seed}", "config_hash": f"h{size}{sparsity}{seed}",
             "ticket_file": f"/t/{family}{size}k{sparsity}-{seed}.slt", "mlflow_run_id": f"run{size}{sparsity}{seed}"}
            for seed, val in enumerate(vals)]


def test_a_configuration_row_has_the_mean_spread_and_count_of_its_seeds():
    records = seeded("frozen", 300, [0.80, 0.90, 0.85], tests=[0.70, 0.74, 0.78])
    (row,) = compute_fronts(records)["families"]["frozen"]["front"]
    assert row["val_accuracy"] == pytest.approx(0.85) and row["val_accuracy_std"] == pytest.approx(0.05)  # ddof = 1
    assert (row["val_accuracy_min"], row["val_accuracy_max"]) == (0.80, 0.90)
    assert row["test_accuracy"] == pytest.approx(0.74) and row["test_accuracy_std"] == pytest.approx(0.04)
    assert (row["test_accuracy_min"], row["test_accuracy_max"]) == (0.70, 0.78)
    assert (row["seed_count"], row["seeds_expected"], row["seeds"], row["complete"]) == (3, 3, [0, 1, 2], True)
    assert [s["val_accuracy"] for s in row["per_seed"]] == [0.80, 0.90, 0.85]


def test_the_front_is_drawn_on_means_not_on_the_luckiest_seed():
    lucky = seeded("frozen", 200, [0.99, 0.51], sparsity=0.3)   # best seed 0.99, mean 0.75
    steady = seeded("frozen", 200, [0.90, 0.88], sparsity=0.7)  # best seed 0.90, mean 0.89
    larger = seeded("frozen", 400, [0.92, 0.70])                # mean 0.81: dominated by steady
    records = lucky + steady + larger
    fronts = compute_fronts(records)
    front = fronts["families"]["frozen"]["front"]
    assert [(r["sparsity"], r["val_accuracy"]) for r in front] == [(0.7, pytest.approx(0.89))]
    # per trial (the old fronts), the lucky seed would have been the front's point at this size
    assert records[pareto_front([(r["size_bits"], r["val_accuracy"]) for r in records])[0]]["val_accuracy"] == 0.99
    reference = fronts["reference"]["size_bits"]
    assert reference == 800 and fronts["families"]["frozen"]["hypervolume"] == pytest.approx(
        hypervolume([(200, 0.89)], (reference, 0.0)))
    assert fronts["families"]["frozen"]["configurations"] == 3 and fronts["families"]["frozen"]["trials"] == 6


def test_a_configuration_whose_seeds_did_not_all_finish_is_marked_and_kept_off_the_front(tmp_path):
    complete = seeded("frozen", 400, [0.80, 0.82])
    partial = seeded("frozen", 100, [0.99], expected=[0, 1])  # seed 1 failed or was stopped: 1 of 2
    fronts = compute_fronts(complete + partial)
    family = fronts["families"]["frozen"]
    assert [r["size_bits"] for r in family["front"]] == [400]
    (marked,) = family["incomplete"]
    assert (marked["seed_count"], marked["seeds_expected"], marked["seeds_missing"], marked["complete"]) == (1, 2, [1], False)
    assert family["hypervolume"] == compute_fronts(complete, reference_size=800)["families"]["frozen"]["hypervolume"]
    assert family["configurations"] == 1 and family["trials"] == 3
    text = format_fronts(fronts)
    (line,) = [line for line in text.splitlines() if "incomplete" in line]
    assert "  1/2  " in line and "off the front" in line and "99.00 ± 0.00" in line
    assert "  2/2  " in text
    write_tables(fronts, tmp_path)
    with open(tmp_path / "pareto_front_frozen.csv") as handle:
        assert [row["size_bits"] for row in csv.DictReader(handle)] == ["400"]  # the CSV is the front
    assert json.loads((tmp_path / "pareto_fronts.json").read_text())["families"]["frozen"]["incomplete"][0]["seeds"] == [0]
    assert plot_fronts(complete + partial, fronts, tmp_path / "p.png", "t").stat().st_size > 0


def test_the_row_points_at_the_seed_closest_to_the_mean_lowest_seed_on_ties():
    (row,) = compute_fronts(seeded("frozen", 300, [0.80, 0.90, 0.86]))["families"]["frozen"]["front"]  # mean .8533
    assert row["ticket_seed"] == 2 and row["ticket_val_accuracy"] == 0.86
    assert (row["ticket_file"], row["trial_id"], row["mlflow_run_id"], row["config_hash"]) == (
        "/t/frozen300k0.5-2.slt", "frozen300k0.5-2", "run3000.52", "h3000.52")
    tied = seeded("frozen", 300, [0.90, 0.80])  # mean .85: both .05 away (up to float rounding)
    assert compute_fronts(tied[::-1])["families"]["frozen"]["front"][0]["ticket_seed"] == 0


def test_with_one_seed_the_fronts_are_the_trials_fronts():
    import random

    rng = random.Random(4)
    records = []
    for family in ("dense", "pruned", "frozen"):
        for index in range(12):
            size = rng.choice([1000, 2000, 3000, 4000]) * (1 + index)
            records += seeded(family, size, [rng.random()], sparsity=round(rng.random(), 3))
    records += seeded("weight_trained", 99999, [0.5])
    fronts = compute_fronts(records)
    reference = (2.0 * max(r["size_bits"] for r in records if r["family"] != "weight_trained"), 0.0)
    for family, data in fronts["families"].items():
        members = [r for r in records if r["family"] == family]
        points = [(r["size_bits"], r["val_accuracy"]) for r in members]
        old = [members[i] for i in pareto_front(points)]  # what the fronts were before seeds were aggregated
        assert [(r["size_bits"], r["val_accuracy"], r["test_accuracy"], r["ticket_file"]) for r in data["front"]] == \
            [(r["size_bits"], r["val_accuracy"], r["test_accuracy"], r["ticket_file"]) for r in old]
        assert data["hypervolume"] == hypervolume(points, reference) and data["trials"] == len(members)
        assert all(r["val_accuracy_std"] == 0 and r["seed_count"] == 1 and r["ticket_seed"] == 0 for r in data["front"])
    assert fronts["weight_trained"][0]["val_accuracy"] == 0.5


def test_the_baseline_is_compared_by_its_mean():
    frozen = seeded("frozen", 500, [0.94, 0.94])
    baseline = seeded("weight_trained", 9000, [0.90, 0.96])  # mean 0.93, best seed 0.96
    fronts = compute_fronts(frozen + baseline)
    assert fronts["smallest_reaching_baseline"]["size_bits"] == 500
    assert "weight-trained dense: 9,000 bits, val 93.00 ± 4.24%" in format_fronts(fronts)
    unfinished = seeded("weight_trained", 9000, [0.90], expected=[0, 1])
    fronts = compute_fronts(frozen + unfinished)
    assert fronts["smallest_reaching_baseline"] is None and "seeds 1/2 (incomplete: not compared)" in format_fronts(fronts)


def test_tables_have_the_spread_columns_and_the_seeds(tmp_path):
    fronts = compute_fronts(seeded("dense", 900, [0.5, 0.7]) + seeded("frozen", 300, [0.6, 0.8]))
    write_tables(fronts, tmp_path)
    with open(tmp_path / "pareto_front_frozen.csv") as handle:
        reader = csv.DictReader(handle)
        (row,) = list(reader)
    assert tuple(reader.fieldnames) == COLUMNS
    assert (row["seeds"], row["seed_count"], row["seeds_expected"], row["ticket_seed"]) == ("0 1", "2", "2", "0")
    assert float(row["val_accuracy"]) == pytest.approx(0.7) and float(row["val_accuracy_min"]) == 0.6
    saved = json.loads((tmp_path / "pareto_fronts.json").read_text())
    assert [s["seed"] for s in saved["families"]["dense"]["front"][0]["per_seed"]] == [0, 1]
    assert "± 14.14" in format_fronts(fronts)  # the std of 0.5 and 0.7 (ddof = 1), in %
    assert plot_fronts(seeded("frozen", 300, [0.6, 0.8]), fronts, tmp_path / "p.png", "t").stat().st_size > 0


def test_seeds_of_one_configuration_with_different_sizes_are_a_bug():
    records = seeded("frozen", 300, [0.6, 0.8])
    records[1]["size_bits"] = 301
    with pytest.raises(ValueError, match=r"frozen k=0.5 f=0.7.* different ticket sizes \[300, 301\]"):
        compute_fronts(records)


def test_collected_records_expect_the_seeds_their_trial_config_names(tmp_path):
    base = ExperimentConfig.from_settings({"model": "conv2", "dataset": "digits", "epochs": 9})
    frozen = {"family": "frozen", "sparsity": 0.5, "freeze_ratio": 0.5, "lock_share": "proportional"}
    results = [fake_result(f"s{seed}", {**frozen, "seed": seed}, 9 if seed < 2 else 3, 0.8, 100, seed < 2)
               for seed in range(3)]
    for result in results:
        result.config["seeds"] = [0, 1, 2]
    outcome = collect(results, base, {"s2": {"reason": "rung at epoch 3"}})
    fronts = compute_fronts(outcome.records)
    assert fronts["families"]["frozen"]["front"] == []  # seed 2 was stopped early: 2 of 3, off the front
    assert fronts["families"]["frozen"]["incomplete"][0]["seeds_missing"] == [2]
    assert fronts["families"]["frozen"]["hypervolume"] == 0.0
    assert "frozen source: 0 configurations (2 trials)" in format_fronts(fronts) and "  2/3  " in format_fronts(fronts)
    assert plot_fronts(outcome.records, fronts, tmp_path / "p.png", "t", stopped=outcome.stopped).stat().st_size > 0


def test_a_configuration_drawn_twice_keeps_a_row_per_draw():
    records = seeded("frozen", 300, [0.6, 0.8]) + seeded("frozen", 300, [0.7, 0.9])  # the same point, two draws
    rows = compute_fronts(records)["families"]["frozen"]
    assert rows["configurations"] == 2 and [r["seeds"] for r in rows["front"]] == [[0, 1]]
    assert rows["front"][0]["val_accuracy"] == pytest.approx(0.8)  # the second draw's mean; not a mean over four
    assert [s["val_accuracy"] for s in rows["front"][0]["per_seed"]] == [0.7, 0.9]
