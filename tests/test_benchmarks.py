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


@pytest.mark.slow
def test_zoo_study_smoke_runs_each_family_through_a_real_sweep_and_compares_frozen_with_pruned(tmp_path):
    """The any-model study (benchmarks/zoo_study.py) at smoke size on a converted model: one sweep through Ray
    and MLflow, then its JSON: every family with means and spreads, the matched pair and a verdict."""
    import json
    import subprocess

    from sweep_runs import ENV

    out = tmp_path / "zoo.json"
    command = [sys.executable, str(Path(__file__).resolve().parents[1] / "benchmarks" / "zoo_study.py"), "--models", "vit",
               "--smoke", "--workdir", str(tmp_path / "work"), "--json", str(out), "--plot-dir", str(tmp_path)]
    done = subprocess.run(command, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())["models"]["vit"]
    assert result["smoke"] and result["model"] == "torchvision:VisionTransformer" and result["epochs"] == 1
    assert result["trials"] == 4 and result["seeds"] == [0]  # dense, pruned, frozen and the weight-trained baseline
    assert set(result["families"]) == {"dense", "pruned", "frozen"}
    for family, summary in result["families"].items():
        (config,) = [c for c in result["configurations"] if c["family"] == family]
        accuracy = config["val_accuracy"]
        assert accuracy["values"] == [accuracy["mean"]] and accuracy["range"] == 0.0  # one seed: no spread
        assert summary["front"][0]["val_mean"] == accuracy["mean"] and summary["hypervolume"] > 0.0
        assert summary["hypervolume_per_seed"]["values"] == [summary["hypervolume"]]
    assert result["reference"]["size_bits"] == 2 * max(c["size_bits"] for c in result["configurations"])
    (pair,) = result["comparison"]["pairs"]
    assert (pair["sparsity"], pair["freeze_ratio"]) == (0.5, 0.3) and abs(pair["size_ratio"] - 1.0) < 0.01
    assert pair["difference"] == pair["frozen_val"]["mean"] - pair["pruned_val"]["mean"]
    # one seed has no spread: only equal accuracies are within it
    expected = "frozen higher" if pair["difference"] > 0 else "pruned higher" if pair["difference"] < 0 else "within seed spread"
    assert pair["verdict"] == expected
    assert result["comparison"]["verdict"].startswith({"frozen higher": "frozen beats", "pruned higher": "pruned beats",
                                                       "within seed spread": "no difference"}[expected])
    assert (tmp_path / "zoo_study_vit.png").stat().st_size > 0 and "verdict:" in done.stdout
    assert not (tmp_path / "work" / "zoo_study.json").exists()  # --json was followed
