"""Front tables and the closing summary: ticket files named per front point, the smallest frozen ticket
that reaches the weight-trained baseline, worked out by hand; trials stopped early kept out of the fronts."""

import csv
from types import SimpleNamespace

from frozen_slt.config.experiment import ExperimentConfig
from sweeps.fronts import compute_fronts, format_fronts, plot_fronts, write_tables
from sweeps.outcome import collect, early_stopping_summary
from sweeps.spec import SweepSpec


def record(family, size, val, ticket=""):
    return {"family": family, "size_bits": size, "val_accuracy": val, "test_accuracy": val - 0.01,
            "sparsity": 0.5, "freeze_ratio": 0.0 if family == "dense" else 0.5, "lock_share": None,
            "trial_id": f"{family}{size}", "ticket_file": ticket}


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
                                     "200 bits, val 93.00%  /t/b.slt")
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
