"""`frozen-slt train` / `eval`: summary, run directories, a real kill and resume, and bad input."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fake_datasets import write_fake_cifar10
from frozen_slt.checkpoint import read_checkpoint
from frozen_slt.cli import main

TRAIN = ["train", "--model", "conv4", "--dataset", "digits", "--sparsity", "0.5", "--freeze-ratio", "0.5", "--device", "cpu"]


def cli(*args):
    return subprocess.run([sys.executable, "-m", "frozen_slt.cli", *args], capture_output=True, text=True, timeout=300)


def only_run_dir(root: Path) -> Path:
    (run,) = [p for p in root.iterdir() if p.is_dir()]
    return run


def test_train_prints_summary_and_writes_the_run_directory(tmp_path, capsys):
    assert main([*TRAIN, "--epochs", "2", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for needle in ("best epoch", "realised sparsity 0.500000", "ticket size:", "vs the dense-source ticket", "vs fp32"):
        assert needle in out
    run = only_run_dir(tmp_path)
    config = json.loads((run / "config.json").read_text())
    assert config["config_hash"] == run.name
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [0, 1, 2]
    result = json.loads((run / "result.json").read_text())
    assert result["config_hash"] == run.name and result["epochs"] == 2

    assert main([*TRAIN, "--epochs", "2", "--out", str(tmp_path)]) == 0
    assert "already finished" in capsys.readouterr().out

    assert main(["eval", str(run)]) == 0
    out = capsys.readouterr().out
    recorded = f"test {100 * result['test_accuracy']:.2f}%"
    assert out.count(recorded) == 2  # recomputed == recorded


def test_config_file_flags_and_set_overrides(tmp_path, capsys):
    settings = tmp_path / "run.toml"
    settings.write_text('model = "conv4"\ndataset = "digits"\n[ticket]\nsparsity = 0.7\nfreeze_ratio = 0.2\n[train]\nepochs = 5\n')
    assert main(["train", "--config", str(settings), "--epochs", "1", "--set", "lr=0.02", "--out", str(tmp_path / "runs")]) == 0
    config = json.loads((only_run_dir(tmp_path / "runs") / "config.json").read_text())["config"]
    assert config["train"]["epochs"] == 1 and config["train"]["lr"] == 0.02
    assert config["ticket"]["sparsity"] == 0.7 and config["ticket"]["prune_ratio"] == pytest.approx(0.14)


def test_kill_and_resume_gives_the_uninterrupted_result(tmp_path):
    args = [*TRAIN, "--epochs", "5"]
    reference = cli(*args, "--out", str(tmp_path / "whole"))
    assert reference.returncode == 0, reference.stderr
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "frozen_slt.cli", *args, "--out", str(tmp_path / "killed")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 120
    while time.time() < deadline and not list((tmp_path / "killed").glob("*/checkpoints/epoch_0002.pt")):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_run = only_run_dir(tmp_path / "killed")
    assert not (killed_run / "result.json").exists()
    resumed = cli(*args, "--out", str(tmp_path / "killed"))
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after epoch" in resumed.stderr
    whole_run = only_run_dir(tmp_path / "whole")
    assert whole_run.name == killed_run.name
    strip = lambda result: {k: v for k, v in result.items() if k != "history"}  # noqa: E731
    whole_result = json.loads((whole_run / "result.json").read_text())
    killed_result = json.loads((killed_run / "result.json").read_text())
    assert strip(whole_result) == strip(killed_result)
    no_time = lambda history: [{k: v for k, v in e.items() if k != "seconds"} for e in history]  # noqa: E731
    assert no_time(whole_result["history"]) == no_time(killed_result["history"])
    final_whole = read_checkpoint(whole_run / "checkpoints" / "epoch_0005.pt")
    final_killed = read_checkpoint(killed_run / "checkpoints" / "epoch_0005.pt")
    for key in ("model",):
        assert all(torch.equal(final_whole[key][name], final_killed[key][name]) for name in final_whole[key])
    assert all(torch.equal(final_whole["best"]["model"][n], final_killed["best"]["model"][n]) for n in final_whole["best"]["model"])


@pytest.mark.parametrize("args, needle", [
    (["--sparsity", "0.2", "--freeze-ratio", "0.5", "--lock-share", "0"], "below its feasible minimum"),
    (["--model", "lenet"], "unknown model 'lenet'"),
    (["--dataset", "mnist"], "unknown dataset 'mnist'"),
    (["--optimizer", "adam"], "unknown optimizer 'adam'; valid: adamw, sgd"),
    (["--model", "resnet50"], "needs image inputs of at least 32x32"),
    (["--epochs", "-1"], "epochs must be an integer >= 0"),
    (["--set", "nonsense=1"], "unknown setting 'nonsense'"),
    (["--set", "lr"], "--set expects key=value"),
    (["--dataset", "cifar10", "--data-dir", "/nonexistent"], "--download"),
    (["--config", "/nonexistent.toml"], "does not exist"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, args, needle):
    assert main([*TRAIN, "--epochs", "1", "--out", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.rglob("checkpoints"))  # nothing trained


def test_bad_input_from_the_console_script_has_no_traceback(tmp_path):
    result = cli(*TRAIN, "--epochs", "1", "--out", str(tmp_path), "--optimizer", "adam")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == "frozen-slt: error: unknown optimizer 'adam'; valid: adamw, sgd"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_requested_without_cuda(tmp_path):
    result = cli(*TRAIN, "--epochs", "1", "--device", "cuda", "--out", str(tmp_path))
    assert result.returncode == 2 and "CUDA is not available" in result.stderr


def test_run_directory_of_another_config_is_refused_and_kept(tmp_path, capsys):
    run = tmp_path / "mine"
    assert main([*TRAIN, "--epochs", "1", "--run-dir", str(run)]) == 0
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert main([*TRAIN, "--epochs", "1", "--lr", "0.01", "--run-dir", str(run)]) == 2
    assert "holds config" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_cifar10_trains_from_real_format_files(tmp_path, capsys):
    write_fake_cifar10(tmp_path / "data")
    code = main(["train", "--model", "conv2", "--dataset", "cifar10", "--data-dir", str(tmp_path / "data"),
                 "--epochs", "1", "--batch-size", "32", "--out", str(tmp_path / "runs")])
    assert code == 0 and "best epoch" in capsys.readouterr().out
