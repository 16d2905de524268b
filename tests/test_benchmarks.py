"""The benchmark suite's gates, at smoke size: bit-identity of the compared steps, never a time."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import paired  # noqa: E402
import same_results  # noqa: E402
import step  # noqa: E402
import zoo_study  # noqa: E402


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


def _config(family, sparsity, freeze, values, size):
    return {"family": family, "sparsity": sparsity, "freeze_ratio": freeze, "lock_share": None, "size_bits": size,
            "seeds": list(range(len(values))), "val_accuracy": zoo_study.spread(values)}


def test_zoo_study_pairs_equal_sizes_and_calls_a_pair_only_when_the_seed_ranges_part():
    configs = [_config("dense", 0.5, 0.0, [0.90, 0.92], 1000),
               _config("pruned", 0.3, 0.3, [0.10, 0.12], 700),   # k = p: nothing searched, left out of the verdict
               _config("frozen", 0.3, 0.3, [0.80, 0.82], 700),
               _config("pruned", 0.5, 0.3, [0.80, 0.84], 700),   # ranges overlap: within the spread
               _config("frozen", 0.5, 0.3, [0.83, 0.86], 701),
               _config("pruned", 0.7, 0.6, [0.70, 0.71], 400),   # frozen's range wholly above
               _config("frozen", 0.7, 0.6, [0.75, 0.78], 400),
               _config("frozen", 0.5, 0.6, [0.60, 0.62], 400)]  # no pruned twin (f > k)
    result = zoo_study.summarise(configs, None, [0, 1])
    pairs = {(p["sparsity"], p["freeze_ratio"]): p for p in result["comparison"]["pairs"]}
    assert sorted(pairs) == [(0.3, 0.3), (0.5, 0.3), (0.7, 0.6)]
    assert pairs[0.3, 0.3]["verdict"] == zoo_study.NOTHING_TO_SEARCH
    assert pairs[0.5, 0.3]["verdict"] == "within seed spread" and pairs[0.7, 0.6]["verdict"] == "frozen higher"
    assert pairs[0.5, 0.3]["size_ratio"] == 701 / 700
    assert result["comparison"]["verdict"].startswith("mixed: frozen higher at 1, pruned higher at 0, within the seed "
                                                      "spread at 1 of 2 matched sizes (and 1 where")
    assert result["reference"]["size_bits"] == 2000
    frozen = result["families"]["frozen"]
    # the front on the means, by size; (400, 0.61) is dominated by (400, 0.765)
    front = [(p["size_bits"], p["val_mean"]) for p in frozen["front"]]
    assert front == [(400, pytest.approx(0.765)), (700, pytest.approx(0.81)), (701, pytest.approx(0.845))]
    assert frozen["hypervolume"] == zoo_study.hypervolume(front, (2000, 0.0))
    assert frozen["hypervolume_per_seed"]["values"] == [
        zoo_study.hypervolume([(700, 0.80), (701, 0.83), (400, 0.75), (400, 0.60)], (2000, 0.0)),
        zoo_study.hypervolume([(700, 0.82), (701, 0.86), (400, 0.78), (400, 0.62)], (2000, 0.0))]
    # matched points only: the frozen (0.5, 0.6) point has no twin
    assert result["comparison"]["frozen_hypervolume_matched_only"] == zoo_study.hypervolume(front, (2000, 0.0))
    # per seed: frozen 0.561 and 0.582, pruned 0.535 and 0.556
    assert result["comparison"]["hypervolume_verdict"] == "frozen larger, per-seed ranges apart"


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
