"""`frozen-slt train` / `eval`: summary, run directories, a real kill and resume, and bad input.

Commands run in this process through ``main([...])``; a new interpreter starts only where a real process
is the point (the SIGKILL test, and one check that the console entry point prints no traceback). One
finished run (``finished_run``) is shared by the tests that read it or work on a copy of it.
"""

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fake_datasets import write_fake_cifar10
from hostile import CreatesFile

from frozen_slt.cli import build_parser, main
from frozen_slt.cli.runs import train_config
from frozen_slt.training.checkpoint import encode_checkpoint, read_checkpoint

REPOSITORY = Path(__file__).resolve().parents[1]
TRAIN = ["train", "--model", "conv2", "--dataset", "digits", "--sparsity", "0.5", "--freeze-ratio", "0.5", "--device", "cpu"]


def python(*args):
    """A new interpreter running this checkout's frozen_slt."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300, env=env, cwd=REPOSITORY)


def only_run_dir(root: Path) -> Path:
    (run,) = [p for p in root.iterdir() if p.is_dir()]
    return run


def files_of(directory: Path) -> dict:
    return {p: p.read_bytes() for p in directory.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """(run directory, stdout) of one finished 1-epoch run. Epoch 0 is the untrained network (near chance),
    so the best epoch is 1 on any machine."""
    root = tmp_path_factory.mktemp("runs")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main([*TRAIN, "--epochs", "1", "--out", str(root)]) == 0
    return only_run_dir(root), out.getvalue()


@pytest.fixture
def run_copy(finished_run, tmp_path):
    """A private copy of the finished run directory."""
    return Path(shutil.copytree(finished_run[0], tmp_path / "run"))


def test_train_prints_summary_and_writes_the_run_directory(finished_run, capsys):
    run, out = finished_run
    for needle in ("best epoch", "realised sparsity 0.500000", "ticket size:", "vs the dense-source ticket", "vs fp32"):
        assert needle in out
    config = json.loads((run / "config.json").read_text())
    assert config["config_hash"] == run.name
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [0, 1]
    result = json.loads((run / "result.json").read_text())
    assert result["config_hash"] == run.name and result["epochs"] == 1

    before = files_of(run)
    assert main([*TRAIN, "--epochs", "1", "--out", str(run.parent)]) == 0
    assert "already finished" in capsys.readouterr().out
    assert files_of(run) == before

    assert main(["eval", str(run)]) == 0
    out = capsys.readouterr().out
    recorded = f"test {100 * result['test_accuracy']:.2f}%"
    assert out.count(recorded) == 2  # recomputed == recorded


def test_config_file_flags_and_set_overrides(tmp_path):
    settings = tmp_path / "run.toml"
    settings.write_text('model = "conv4"\ndataset = "digits"\n[ticket]\nsparsity = 0.7\nfreeze_ratio = 0.2\n[train]\nepochs = 5\n')
    config = train_config(build_parser().parse_args(["train", "--config", str(settings), "--epochs", "1", "--set", "lr=0.02"]))
    assert config.model == "conv4" and config.train.epochs == 1 and config.train.lr == 0.02
    assert config.ticket.sparsity == 0.7 and config.ticket.prune_ratio == pytest.approx(0.14)


def test_conv6_on_cifar10_gets_its_own_recipe_which_flags_override(capsys):
    def lr(*flags):
        return train_config(build_parser().parse_args(["train", "--dataset", "cifar10", *flags])).train.lr

    assert lr("--model", "conv6") == 0.01 and lr("--model", "resnet18") == 0.1
    assert lr("--model", "conv6", "--lr", "0.1") == 0.1 and lr("--model", "conv6", "--set", "train.lr=0.2") == 0.2
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "cifar10 with conv6 (lr=0.01)" in " ".join(capsys.readouterr().out.split())


# Runs main() in a new interpreter that SIGKILLs itself in the middle of epoch 2 (after epoch 1's
# checkpoint): a real kill, no cleanup, and no race between the kill and the end of training.
KILL_IN_EPOCH_2 = """
import os, signal, sys
from frozen_slt.cli import console, main
forward = console.ConsoleReporter.on_step
def on_step(self, epoch, step, steps, loss):
    if (epoch, step) == (2, 3):
        os.kill(os.getpid(), signal.SIGKILL)
    forward(self, epoch, step, steps, loss)
console.ConsoleReporter.on_step = on_step
sys.exit(main(sys.argv[1:]))
"""


def test_kill_and_resume_gives_the_uninterrupted_result(tmp_path, capsys):
    args = [*TRAIN, "--epochs", "2"]
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    killed = python("-c", KILL_IN_EPOCH_2, *args, "--out", str(tmp_path / "killed"))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    killed_run = only_run_dir(tmp_path / "killed")
    assert not (killed_run / "result.json").exists()
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "killed")]) == 0
    assert "resuming after epoch 1" in capsys.readouterr().err
    whole_run = only_run_dir(tmp_path / "whole")
    assert whole_run.name == killed_run.name
    strip = lambda result: {k: v for k, v in result.items() if k != "history"}  # noqa: E731
    whole_result = json.loads((whole_run / "result.json").read_text())
    killed_result = json.loads((killed_run / "result.json").read_text())
    assert strip(whole_result) == strip(killed_result)
    no_time = lambda history: [{k: v for k, v in e.items() if k != "seconds"} for e in history]  # noqa: E731
    assert no_time(whole_result["history"]) == no_time(killed_result["history"])
    assert (whole_run / "metrics.jsonl").read_text().count("\n") == (killed_run / "metrics.jsonl").read_text().count("\n") == 3
    final_whole = read_checkpoint(whole_run / "checkpoints" / "epoch_0002.pt")
    final_killed = read_checkpoint(killed_run / "checkpoints" / "epoch_0002.pt")
    for key in ("model",):
        assert all(torch.equal(final_whole[key][name], final_killed[key][name]) for name in final_whole[key])
    assert all(torch.equal(final_whole["best"]["model"][n], final_killed["best"]["model"][n]) for n in final_whole["best"]["model"])


@pytest.mark.parametrize("args, needle", [
    (["--sparsity", "0.2", "--freeze-ratio", "0.5", "--lock-share", "0"], "below its feasible minimum"),
    (["--freeze-ratio", "0.5", "--lock-share", "propotional"],
     "lock_share must be a number in [0, 1] or 'proportional', got 'propotional'"),
    (["--model", "lenet"], "unknown model 'lenet'"),
    (["--dataset", "mnist"], "unknown dataset 'mnist'"),
    (["--optimizer", "adam"], "unknown optimizer 'adam'; valid: adamw, sgd"),
    (["--model", "resnet50"], "needs image inputs of at least 32x32"),
    (["--epochs", "-1"], "epochs must be an integer >= 1, got -1"),
    (["--epochs", "0"], "epochs must be an integer >= 1, got 0"),
    (["--set", "nonsense=1"], "unknown setting 'nonsense'"),
    (["--set", "lr"], "--set expects key=value"),
    (["--set", "ticket.lr=0.1"], "setting 'ticket.lr': 'lr' belongs to [train], not to [ticket]"),
    (["--set", "data.epochs=1"], "setting 'data.epochs': 'epochs' belongs to [train], not to [data]"),
    (["--dataset", "cifar10", "--data-dir", "/nonexistent"], "--download"),
    (["--config", "/nonexistent.toml"], "does not exist"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, args, needle):
    assert main([*TRAIN, "--epochs", "1", "--out", str(tmp_path / "runs"), *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()  # a run that cannot start leaves no directory behind


@pytest.mark.parametrize("extra, needle", [
    (["--sparsity", "0.3"], "so sparsity does not apply; drop it"),
    (["--set", "ticket.scale=static", "--distribution", "epl"], "so distribution, scale do not apply; drop them"),
])
def test_ticket_settings_a_weight_trained_run_would_ignore_are_refused(tmp_path, capsys, extra, needle):
    args = ["train", "--model", "conv2", "--dataset", "digits", "--weight-trained", "--epochs", "1", "--device", "cpu"]
    assert main([*args, "--out", str(tmp_path / "runs"), *extra]) == 2
    err = capsys.readouterr().err
    assert "a weight-trained baseline trains every weight" in err and needle in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("name, text, needle", [
    ("broken.yaml", "model: [conv2\nsparsity: 0.5\n", "cannot parse config file"),
    ("data_dir.yaml", "data_dir: 5\n", "data_dir must be a path (a string) or unset, got 5"),
    ("section.toml", "[ticket]\nlr = 0.2\n", "'lr' belongs to [train], not to [ticket]"),
    ("bogus.toml", "[bogus]\nlr = 0.2\n", "unknown section [bogus]"),
    ("number.json", "5\n", "must hold a table of settings, got an int"),
])
def test_bad_config_file_exits_2_with_one_line(tmp_path, capsys, name, text, needle):
    (tmp_path / name).write_text(text)
    assert main([*TRAIN, "--config", str(tmp_path / name), "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("flag", ["--out", "--run-dir"])
def test_output_location_that_is_a_file_is_refused(tmp_path, capsys, flag):
    (tmp_path / "taken").write_text("mine\n")
    assert main([*TRAIN, "--epochs", "1", flag, str(tmp_path / "taken")]) == 2
    err = capsys.readouterr().err
    assert "taken is a file, not a directory" in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "taken").read_text() == "mine\n"


@pytest.mark.parametrize("text", ["", "{\"config\": {\"model\"", "[1, 2]", "{\"config\": 5}", "{}"])
def test_eval_of_a_damaged_config_json_exits_2(run_copy, capsys, text):
    (run_copy / "config.json").write_text(text)
    assert main(["eval", str(run_copy)]) == 2
    err = capsys.readouterr().err
    assert "config.json is damaged" in err or "must be a table" in err
    assert len(err.strip().splitlines()) == 1


def test_damaged_result_json_is_reported_kept_and_rebuilt_when_moved_aside(run_copy, capsys):
    complete = (run_copy / "result.json").read_bytes()
    (run_copy / "result.json").write_bytes(complete[: len(complete) // 2])
    assert main([*TRAIN, "--epochs", "1", "--run-dir", str(run_copy)]) == 2
    err = capsys.readouterr().err
    assert "result.json is damaged" in err and "move it aside" in err and len(err.strip().splitlines()) == 1
    assert (run_copy / "result.json").read_bytes() == complete[: len(complete) // 2]
    (run_copy / "result.json").rename(run_copy / "result.json.damaged")
    assert main([*TRAIN, "--epochs", "1", "--run-dir", str(run_copy)]) == 0  # follows the advice: nothing retrained
    assert json.loads((run_copy / "result.json").read_bytes()) == json.loads(complete)


def test_bad_input_from_the_console_script_has_no_traceback(tmp_path):
    result = python("-m", "frozen_slt.cli", *TRAIN, "--epochs", "1", "--out", str(tmp_path), "--optimizer", "adam")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == "frozen-slt: error: unknown optimizer 'adam'; valid: adamw, sgd"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_requested_without_cuda_leaves_nothing_behind(tmp_path, capsys):
    assert main([*TRAIN, "--epochs", "1", "--device", "cuda", "--out", str(tmp_path / "runs")]) == 2
    assert "CUDA is not available" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_run_directory_of_another_config_is_refused_and_kept(run_copy, capsys):
    before = files_of(run_copy)
    assert main([*TRAIN, "--epochs", "1", "--lr", "0.01", "--run-dir", str(run_copy)]) == 2
    assert "holds config" in capsys.readouterr().err
    assert files_of(run_copy) == before


def test_eval_says_when_a_damaged_checkpoint_makes_its_result_differ_from_result_json(run_copy, capsys):
    result = json.loads((run_copy / "result.json").read_text())
    assert result["best_epoch"] == 1  # epoch 0 is the untrained network, near chance
    newest = run_copy / "checkpoints" / "epoch_0001.pt"
    newest.write_bytes(newest.read_bytes()[:-50])
    assert main(["eval", str(run_copy)]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith("best epoch 0:")
    assert "epoch_0001.pt is corrupted" in captured.err and "evaluated the newest intact checkpoint (epoch_0000.pt)" in captured.err
    assert "differs from the result in result.json (best epoch 1:" in captured.err
    assert newest.exists() and not list(run_copy.rglob("*.corrupt"))  # eval changes nothing


def test_eval_of_checkpoints_with_disallowed_content_exits_2(run_copy, capsys):
    for path in (run_copy / "checkpoints").glob("*.pt"):
        path.write_bytes(encode_checkpoint({"epoch": 1, "payload": CreatesFile(run_copy / "marker")}))
    assert main(["eval", str(run_copy)]) == 2
    err = capsys.readouterr().err
    assert "no intact checkpoint" in err and "holds content a checkpoint may not hold" in err
    assert len(err.strip().splitlines()) == 1 and not (run_copy / "marker").exists()


def test_cifar10_trains_from_real_format_files(tmp_path, capsys):
    write_fake_cifar10(tmp_path / "data")
    code = main(["train", "--model", "conv2", "--dataset", "cifar10", "--data-dir", str(tmp_path / "data"),
                 "--epochs", "1", "--batch-size", "32", "--out", str(tmp_path / "runs")])
    assert code == 0 and "best epoch" in capsys.readouterr().out
