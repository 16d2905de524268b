"""Front tables and the closing summary: ticket files named per front point, the smallest frozen ticket
that reaches the weight-trained baseline, worked out by hand."""

import csv

from sweeps.fronts import compute_fronts, format_fronts, write_tables


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
