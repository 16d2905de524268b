"""`frozen-slt plan`: the per-layer table, the JSON report, and one-line errors with exit status 2."""

import json
import subprocess
import sys

import pytest

from frozen_slt.cli import main


def run_plan(capsys, *args):
    code = main(["plan", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_json_report_has_the_documented_keys_and_exact_counts(capsys):
    code, out, _ = run_plan(capsys, "--model", "conv6", "--dataset", "cifar10", "--freeze-ratio", "0.7",
                            "--sparsity", "0.5", "--distribution", "uniform", "--json")
    assert code == 0
    report = json.loads(out)
    for key in ("model", "dataset", "total_weights", "sparsity", "prune_ratio", "lock_ratio", "distribution", "layers", "memory_bits"):
        assert key in report
    assert report["total_weights"] == 2_261_184
    assert report["prune_ratio"] == pytest.approx(0.35) and report["lock_ratio"] == pytest.approx(0.35)
    first = report["layers"][0]
    assert first == {"name": "features.0", "shape": [64, 3, 3, 3], "weights": 1728, "pruned": 604, "locked": 604, "free": 520}
    assert [layer["name"] for layer in report["layers"]][-1] == "classifier.5"
    assert report["memory_bits"] == {"ticket": 678_492, "mask": 678_364, "seeds": 128, "batchnorm_stats": 0,
                                     "dense_source_ticket": 2_261_248, "weight_trained": 72_357_888}


def test_resnet50_imagenet_ticket_is_about_three_point_three_times_smaller(capsys):
    code, out, _ = run_plan(capsys, "--model", "resnet50", "--dataset", "imagenet", "--freeze-ratio", "0.7",
                            "--sparsity", "0.5", "--distribution", "epl", "--json")
    report = json.loads(out)
    bits = report["memory_bits"]
    assert code == 0 and report["total_weights"] == 25_502_912
    assert 3.3 <= bits["dense_source_ticket"] / bits["ticket"] <= 3.34
    assert bits["batchnorm_stats"] == 53_120 * 32
    assert sum(layer["free"] for layer in report["layers"]) == bits["mask"]


def test_table_output(capsys):
    code, out, _ = run_plan(capsys, "--model", "conv4", "--dataset", "digits", "--prune-ratio", "0.2", "--lock-ratio", "0.1")
    assert code == 0
    assert "features.0" in out and "total" in out and "dense-source ticket" in out and "BatchNorm statistics" in out


@pytest.mark.parametrize("args, needle", [
    (["--sparsity", "0.2", "--prune-ratio", "0.5"], "sparsity must be >= prune_ratio"),
    (["--sparsity", "0.5", "--freeze-ratio", "0.7", "--lock-share", "0.9"], "above its feasible maximum"),
    (["--freeze-ratio", "1.4"], r"freeze_ratio must lie in [0, 1], got 1.4"),
    (["--model", "resnet99"], "unknown model 'resnet99'; valid:"),
    (["--dataset", "svhn"], "unknown dataset 'svhn'; valid:"),
    (["--distribution", "snip"], "unknown distribution 'snip'"),
    (["--model", "resnet50", "--dataset", "digits"], "needs image inputs of at least 32x32"),
])
def test_bad_input_is_one_line_on_stderr_with_status_2(capsys, args, needle):
    code, out, err = run_plan(capsys, *args)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and needle in err and err.startswith("frozen-slt: error: ")


@pytest.mark.parametrize("command", ["plan", "train", "export"])
def test_help_points_at_what_it_shows_and_keeps_hyphenated_names_whole(capsys, command):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    assert "see `frozen-slt plan --help`" not in out
    for name in ("ogbn-arxiv", "synthetic-arxiv", "resnet34-imagenet", "docs/ticket-format.md"):
        if name.split("-")[0] in out:  # export's help names only the docs
            assert name in out, (name, out)


def test_planning_a_graph_model_prints_no_dependency_warning():
    # PyTorch Geometric scripts helpers with torch.jit.script when first imported, which PyTorch deprecates;
    # a fresh interpreter is needed, since the import happens once per process
    done = subprocess.run([sys.executable, "-m", "frozen_slt.cli", "plan", "--model", "gin", "--dataset", "ogbn-arxiv"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "378,280" in done.stdout
    assert done.stderr == ""
