"""The benchmark suite's gates, at smoke size: bit-identity of the compared steps, never a time."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import paired  # noqa: E402
import same_results  # noqa: E402
import step  # noqa: E402


def test_step_benchmark_smoke_finds_the_project_and_the_authors_step_bit_identical(capsys):
    step.main(["--smoke", "--rounds", "2", "--warmup", "1"])
    out = capsys.readouterr().out
    assert "bit-identical loss/threshold/masks over 3 steps" in out
    assert "project/floor" in out and "reference/project" in out


def test_the_identity_gate_stops_a_step_that_changes_the_result(monkeypatch):
    """A reference whose threshold is nudged one float up must be caught before any time is reported."""
    original = step.reference_step

    def nudged(network, optimizer, config, inputs, labels):
        loss = original(network, optimizer, config, inputs, labels)
        for layer in step.masked_layers(network.model):
            layer.threshold.copy_(torch.nextafter(layer.threshold, torch.tensor(torch.inf)))
        return loss

    monkeypatch.setattr(step, "reference_step", nudged)
    with pytest.raises(SystemExit, match="changes the result: threshold"):
        step.main(["--smoke", "--rounds", "1", "--warmup", "1"])


def test_paired_ratio_is_the_median_of_per_round_ratios():
    ratio = paired.paired_ratio([2.0, 9.0, 3.0, 8.0], [1.0, 3.0, 1.0, 2.0])  # ratios 2, 3, 3, 4
    assert (ratio.median, ratio.minimum, ratio.maximum, ratio.rounds) == (3.0, 2.0, 4.0, 4)
    assert ratio.low_quartile == 2.75 and ratio.high_quartile == 3.25
    with pytest.raises(ValueError):
        paired.paired_ratio([1.0], [1.0, 2.0])


def test_interleave_rotates_the_order_of_the_sides():
    calls = []
    sides = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    times = paired.interleave(sides, 3, torch.device("cpu"))
    assert calls == list("abc" "bca" "cab") and all(len(values) == 3 for values in times.values())


def test_same_results_compare_reports_every_difference():
    ours = {"run": {"config_hash": "h", "history": [{"epoch": 0, "val_loss": "0x1p+0"}], "best": [0, "a", "b"],
                    "final_state": "s", "best_state": "t", "optimizer_state": "o"}}
    theirs = {"run": {**ours["run"], "history": [{"epoch": 0, "val_loss": "0x1.0000000000001p+0"}], "final_state": "x"}}
    assert same_results.compare(ours, ours) == []
    differences = same_results.compare(ours, theirs)
    assert any("val_loss" in line for line in differences) and any("final_state" in line for line in differences)
