"""Hostile but honest input to the `frozen-slt` command (issue 22), each case run as a user runs it: in a new
process. Every case checks the exit status, that the error is one line without a traceback (the only line
on stderr, or for a run that had started the last one, after its progress lines), and that nothing outside
the run's own folder changed (``listing``: no file written, replaced or left behind). No case may leave a
temporary file anywhere under its tmp_path (``no_temporary_files``, after every test).

One finished 1-epoch run (``finished``) is shared by the module; a case that damages or extends a run works
on its own copy (``run``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import stat
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from fake_datasets import write_fake_imagenet
from hostile import (
    REPOSITORY,
    SystemCreatesFile,
    assert_one_line_error,
    frozen_slt,
    listing,
    run_command,
)

from frozen_slt.training.checkpoint import (
    encode_checkpoint,
    read_checkpoint,
    write_checkpoint,
)

TRAIN = ("train", "--model", "conv2", "--dataset", "digits", "--epochs", "1", "--device", "cpu")

#: ``python -c LIMITED <frozen-slt args>``: the command with the size of any file it writes capped at
#: argv-given bytes (RLIMIT_FSIZE; Python ignores SIGXFSZ, so a write past the cap fails with EFBIG), the
#: portable stand-in for a full disk.
LIMITED = ("import resource, sys\n"
           "limit = int(sys.argv[1])\n"
           "resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))\n"
           "from frozen_slt.cli import main\n"
           "sys.exit(main(sys.argv[2:]))\n")


def frozen_slt_limited(limit: int, *args: str, cwd: Path):
    return run_command(["-c", LIMITED, str(limit), *args], cwd)


def temporaries(root: Path) -> list[Path]:
    """frozen-slt's temporary files (``.<name>.<pid>.tmp``) under ``root``."""
    return [path for path in root.rglob(".*.tmp")]


def assert_run_error(result, status: int, needle: str) -> str:
    """``result`` exited with ``status``, printed no traceback, and its last stderr line is the one-line error
    holding ``needle`` (lines before it are the run's progress and warnings); returns that line."""
    assert result.returncode == status and "Traceback" not in result.stderr, (result.returncode, result.stderr)
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("frozen-slt: error: ") and needle in last, result.stderr
    return last


@pytest.fixture(autouse=True)
def no_temporary_files(tmp_path):
    yield
    assert not temporaries(tmp_path)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("finished")
    done = frozen_slt(*TRAIN, "--run-dir", str(root / "run"), cwd=root)
    assert done.returncode == 0, done.stderr
    return root / "run"


@pytest.fixture
def run(finished, tmp_path) -> Path:
    """A private copy of the finished run, under this test's tmp_path."""
    return Path(shutil.copytree(finished, tmp_path / "run"))


def make_device(path: Path) -> None:
    """A character device like /dev/full (as root), else a FIFO: either is a target that is not a regular file."""
    try:
        os.mknod(path, 0o644 | stat.S_IFCHR, os.makedev(1, 7))
    except PermissionError:
        os.mkfifo(path)


# -- export: where outputs may be written ------------------------------------------------------------------

@pytest.mark.parametrize("case, needle", [
    ("device", "not a regular file"),  # a FIFO where mknod is not allowed; tests/test_files.py has every kind
    ("missing folder", "does not exist; outputs are written only into existing folders"),
    ("directory", "is a directory"),
    ("proc", "-o /proc/foo.slt: cannot create a file in /proc"),
    ("dense in sys", "--dense-module /sys/x.pt2: cannot create a file in /sys"),
    ("inside the run", "inside SOURCE"),
])
def test_export_refuses_outputs_it_may_not_write_and_writes_neither(run, tmp_path, case, needle):
    ticket = tmp_path / "ticket.slt"
    outputs = {
        "device": ["-o", str(tmp_path / "dev")],
        "missing folder": ["-o", str(tmp_path / "nonexistent_dir" / "x.slt")], "directory": ["-o", str(tmp_path / "dir")],
        "proc": ["-o", "/proc/foo.slt"], "dense in sys": ["-o", str(ticket), "--dense-module", "/sys/x.pt2"],
        "inside the run": ["-o", str(ticket), "--dense-module", str(run / "plain.pt")],
    }[case]
    make_device(tmp_path / "dev")
    (tmp_path / "dir").mkdir()
    before, run_before = listing(tmp_path, exclude=(run,)), listing(run)
    assert_one_line_error(frozen_slt("export", str(run), *outputs, cwd=tmp_path), 2, needle)
    assert listing(tmp_path, exclude=(run,)) == before and listing(run) == run_before


def test_export_overwrites_an_existing_regular_file_and_nothing_else(run, tmp_path):
    (tmp_path / "ticket.slt").write_bytes(b"an older ticket")
    before, run_before = listing(tmp_path, exclude=(run, tmp_path / "ticket.slt")), listing(run)
    done = frozen_slt("export", str(run), "-o", "ticket.slt", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "ticket.slt").read_bytes().startswith(b"\x89SLT")
    assert listing(tmp_path, exclude=(run, tmp_path / "ticket.slt")) == before and listing(run) == run_before


def test_export_on_a_full_disk_fails_with_one_line_and_leaves_nothing(run, tmp_path):
    before = listing(tmp_path, exclude=(run,))
    done = frozen_slt_limited(10_000, "export", str(run), "-o", "ticket.slt", cwd=tmp_path)
    assert_one_line_error(done, 1, "cannot write ticket.slt: File too large")
    assert listing(tmp_path, exclude=(run,)) == before


# -- export and eval read a run without changing it ---------------------------------------------------------

def test_export_refuses_a_run_whose_newest_checkpoint_is_damaged_and_changes_nothing(run, tmp_path):
    newest = run / "checkpoints" / "epoch_0001.pt"
    newest.write_bytes(newest.read_bytes()[:-100])
    before, run_before = listing(tmp_path, exclude=(run,)), listing(run)
    err = assert_one_line_error(frozen_slt("export", str(run), "-o", "t.slt", cwd=tmp_path), 2, "epoch_0001.pt is corrupted")
    assert "move it aside" in err and "epoch_0000.pt" in err
    assert listing(tmp_path, exclude=(run,)) == before and listing(run) == run_before


def test_export_of_a_run_with_every_checkpoint_damaged_says_so_in_one_line(run, tmp_path):
    for path in (run / "checkpoints").iterdir():
        path.write_bytes(b"damaged")
    run_before = listing(run)
    err = assert_one_line_error(frozen_slt("export", str(run), "-o", "t.slt", cwd=tmp_path), 2, "no intact checkpoint")
    assert "restarts" not in err and listing(run) == run_before and not (tmp_path / "t.slt").exists()


# -- checkpoints with a valid checksum but content fit never wrote -------------------------------------------

def craft(run: Path, name: str, change) -> None:
    """Rewrite checkpoint ``name`` of ``run`` as ``change(state)``, with a valid checksum."""
    path = run / "checkpoints" / name
    write_checkpoint(path, change(read_checkpoint(path)))


def test_eval_skips_a_crafted_newest_checkpoint_like_a_damaged_one_and_says_so_in_one_line(run, tmp_path):
    craft(run, "epoch_0001.pt", lambda state: {})
    before = listing(tmp_path)
    err = assert_one_line_error(frozen_slt("eval", str(run), cwd=tmp_path), 1, "epoch_0001.pt is not a checkpoint of this run")
    assert "evaluated the newest intact checkpoint (epoch_0000.pt)" in err and "differs from the result in result.json" in err
    assert listing(tmp_path) == before


@pytest.mark.parametrize("command", ["eval", "export"])
def test_every_checkpoint_crafted_is_refused_read_only_in_one_line(run, tmp_path, command):
    for name in ("epoch_0000.pt", "epoch_0001.pt"):
        craft(run, name, lambda state: {**state, "epoch": 99})
    args = ["-o", str(tmp_path / "t.slt")] if command == "export" else []
    before = listing(tmp_path)
    err = assert_one_line_error(frozen_slt(command, str(run), *args, cwd=tmp_path), 2, "no intact checkpoint")
    assert "epoch 99 is not an integer in [0, 1]" in err and listing(tmp_path) == before


def test_export_refuses_a_crafted_newest_checkpoint(run, tmp_path):
    craft(run, "epoch_0001.pt", lambda state: {**state, "epoch": "abc"})
    before = listing(tmp_path)
    assert_one_line_error(frozen_slt("export", str(run), "-o", str(tmp_path / "t.slt"), cwd=tmp_path), 2,
                          "epoch 'abc' is not an integer")
    assert listing(tmp_path) == before


def test_train_moves_a_crafted_checkpoint_aside_and_resumes_from_the_one_before(run, tmp_path):
    (run / "result.json").unlink()
    craft(run, "epoch_0001.pt", lambda state: {})
    before = listing(tmp_path, exclude=(run,))
    done = frozen_slt(*TRAIN, "--run-dir", str(run), cwd=tmp_path)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert listing(tmp_path, exclude=(run,)) == before
    assert "epoch_0001.pt is not a checkpoint of this run" in done.stderr and "resuming after epoch 0" in done.stderr
    assert (run / "checkpoints" / "epoch_0001.pt.corrupt").exists()
    assert [line.count('"epoch": ') for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 1]
    assert (run / "metrics.jsonl").read_text().startswith('{"epoch": 0')


def test_a_checkpoint_that_would_run_code_is_refused_without_torchs_unsafe_advice(run, tmp_path):
    marker = tmp_path / "marker"
    for path in (run / "checkpoints").glob("*.pt"):
        path.write_bytes(encode_checkpoint({"epoch": 1, "payload": SystemCreatesFile(marker)}))
    err = assert_one_line_error(frozen_slt("eval", str(run), cwd=tmp_path), 2, "a pickled reference to posix.system")
    assert "weights_only" not in err and not marker.exists()


# -- deep nesting and keys given twice -----------------------------------------------------------------------

DEEP = "[" * 100_000 + "]" * 100_000


def ticket_with_header(header: bytes) -> bytes:
    """A ticket file (docs/ticket-format.md) with this header, empty sections and a valid checksum."""
    body = b"\x89SLT\r\n\x1a\n" + struct.pack("<HI", 1, len(header)) + header + struct.pack("<QQ", 0, 0)
    return body + hashlib.sha256(body).digest()


@pytest.mark.parametrize("name, text, needle", [
    ("deep.json", DEEP, "nests arrays or tables more than 3 deep"),
    ("deep.yaml", DEEP, "nests arrays or tables more than 3 deep"),
    ("deep.toml", "lr = " + DEEP, "nests arrays or tables more than 3 deep"),
    ("twice.yaml", "train:\n  lr: 0.1\n  lr: 0.2\n", "gives the key 'lr' twice"),
    ("twice.json", '{"lr": 0.1, "epochs": 1, "lr": 0.2}', "gives the key 'lr' twice"),
])
def test_config_files_nested_too_deep_or_with_a_key_twice_are_refused(tmp_path, name, text, needle):
    (tmp_path / name).write_text(text)
    before = listing(tmp_path)
    assert_one_line_error(frozen_slt(*TRAIN, "--config", name, "--out", "runs", cwd=tmp_path), 2, needle)
    assert listing(tmp_path) == before


@pytest.mark.parametrize("case", ["config.json", "result.json", "ticket header"])
def test_run_files_and_ticket_headers_nested_too_deep_are_refused(run, tmp_path, case):
    if case == "ticket header":
        (tmp_path / "deep.slt").write_bytes(ticket_with_header(DEEP.encode()))
        args, needle, depth = ["eval", "deep.slt"], "the header nests arrays or tables more than 4 deep", 4
    elif case == "config.json":  # a model's argument may be a list: one level more than the settings
        (run / "config.json").write_text(DEEP)
        args, needle, depth = ["eval", str(run)], "config.json is damaged", 4
    else:
        (run / "result.json").write_text(DEEP)
        args, needle, depth = [*TRAIN, "--run-dir", str(run)], "result.json is damaged", 3
    before = listing(tmp_path)
    err = assert_one_line_error(frozen_slt(*args, cwd=tmp_path), 2, needle)
    assert f"more than {depth} deep" in err and listing(tmp_path) == before


# -- settings that would be ignored, and settings that leave nothing to search --------------------------------

@pytest.mark.parametrize("command, args", [
    ("train", ["--lock-share", "0.5"]),
    ("plan", ["--freeze-ratio", "0", "--lock-share", "0.5"]),
    ("train", ["--config", "share.toml"]),
])
def test_a_lock_share_without_a_freeze_ratio_is_refused(tmp_path, command, args):
    (tmp_path / "share.toml").write_text("[ticket]\nlock_share = 0.3\n")
    before = listing(tmp_path)
    extra = [*TRAIN[1:], "--out", "runs"] if command == "train" else ["--model", "conv2"]
    assert_one_line_error(frozen_slt(command, *extra, *args, cwd=tmp_path), 2, "needs freeze_ratio > 0")
    assert listing(tmp_path) == before


@pytest.mark.parametrize("args, needle", [
    (["--freeze-ratio", "1"], "freeze_ratio 1 freezes every weight: of 367,680, 183,838 are pruned and 183,839 locked, "
                              "3 left free by rounding, so the ticket is its seeds and 3 mask bits"),
    (["--sparsity", "0"], "sparsity 0 asks for no zeros: the ticket keeps every weight"),
    (["--sparsity", "1"], "the ticket keeps no weight at all"),
])
def test_plan_warns_once_what_a_degenerate_ticket_is(tmp_path, args, needle):
    done = frozen_slt("plan", "--model", "conv2", "--dataset", "digits", *args, cwd=tmp_path)
    assert done.returncode == 0 and done.stderr.count("\n") == 1 and needle in done.stderr, done.stderr
    assert done.stderr.startswith("frozen-slt: WARNING: ") and not list(tmp_path.iterdir())


def test_train_warns_once_too(tmp_path):
    done = frozen_slt(*TRAIN, "--sparsity", "1", "--out", "runs", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("the ticket keeps no weight at all") == 1
    assert "realised sparsity 1.000000" in done.stdout  # and the check after the epoch accepts an all-zero mask


# -- a run that goes wrong ------------------------------------------------------------------------------------

def test_scores_that_become_nan_stop_the_run_with_one_line_and_status_1(tmp_path):
    done = frozen_slt(*TRAIN, "--epochs", "2", "--lr", "1e30", "--out", "runs", cwd=tmp_path)
    last = assert_run_error(done, 1, "training diverged in epoch 1: 367,680 of 367,680 scores are NaN or infinite")
    assert "learning rate (1e+30) is likely too high" in last
    (run,) = (tmp_path / "runs").iterdir()
    assert set(listing(tmp_path, exclude=(run,))) == {"runs"}  # only the run's own folder was written
    assert not (run / "result.json").exists() and sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch_0000.pt"]


# -- one run at a time in a run directory ---------------------------------------------------------------------

HOLD_LOCK = ("import sys, time\n"
             "from frozen_slt.cli.rundir import RunDirectory\n"
             "RunDirectory(sys.argv[1]).lock()\n"
             "print('locked', flush=True)\n"
             "time.sleep(600)\n")


def test_a_second_run_into_a_locked_directory_is_refused_and_a_killed_holders_lock_is_taken_over(run, tmp_path):
    (run / "result.json").unlink()  # unfinished: train would resume it
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")]))}
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = listing(tmp_path, exclude=(run,))
        err = assert_one_line_error(frozen_slt(*TRAIN, "--run-dir", str(run), cwd=tmp_path), 2, f"pid {holder.pid} on ")
        assert "is in use by" in err and listing(tmp_path, exclude=(run,)) == before
        assert not (run / "result.json").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    done = frozen_slt(*TRAIN, "--run-dir", str(run), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (run / "result.json").exists()


# -- a full disk, and what killed writers leave ---------------------------------------------------------------

def test_a_full_disk_during_a_run_is_one_line_with_status_1_and_leaves_no_temporary_file(run, tmp_path):
    (run / "result.json").unlink()
    (run / "checkpoints" / "epoch_0001.pt").unlink()  # resumes after epoch 0 and must write epoch 1's checkpoint
    size = (run / "checkpoints" / "epoch_0000.pt").stat().st_size
    before = listing(tmp_path, exclude=(run,))
    done = frozen_slt_limited(size // 2, *TRAIN, "--run-dir", str(run), cwd=tmp_path)
    assert_run_error(done, 1, f"cannot write {run / 'checkpoints' / 'epoch_0001.pt'}: File too large")
    assert not temporaries(run) and listing(tmp_path, exclude=(run,)) == before
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch_0000.pt"]


def test_a_full_disk_before_the_first_checkpoint_leaves_no_run_directory(tmp_path):
    before = listing(tmp_path)
    done = frozen_slt_limited(100_000, *TRAIN, "--out", "runs", cwd=tmp_path)
    assert_run_error(done, 1, "epoch_0000.pt: File too large")
    assert listing(tmp_path) == before  # not even runs/


def test_a_resumed_run_removes_the_temporary_files_killed_writers_left(run, tmp_path):
    (run / "result.json").unlink()
    left = [run / ".metrics.jsonl.4242.tmp", run / "checkpoints" / ".epoch_0002.pt.4242.tmp"]
    for path in left:
        path.write_bytes(b"partial")
    (run / "notes.tmp").write_text("mine")  # not a temporary file of frozen-slt's naming: kept
    before = listing(tmp_path, exclude=(run,))
    done = frozen_slt(*TRAIN, "--run-dir", str(run), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert listing(tmp_path, exclude=(run,)) == before
    assert not any(path.exists() for path in left) and (run / "notes.tmp").exists()


# -- image folders with files that cannot be read -------------------------------------------------------------

@pytest.mark.parametrize("case, needle", [
    ("dangling link", "cannot be read: a link to nothing"),
    ("truncated image", "cannot be decoded"),  # found only when epoch 0 is evaluated, in a DataLoader worker
])
def test_unreadable_images_are_one_line_and_leave_no_run_directory(tmp_path, case, needle):
    data = write_fake_imagenet(tmp_path / "imagenet", per_class_train=2, per_class_val=1)
    if case == "dangling link":
        (data / "train" / "n00000001" / "gone.png").symlink_to(data / "nowhere.png")
    else:
        image = data / "val" / "n00000002" / "img_0.png"
        image.write_bytes(image.read_bytes()[:60])
    before = listing(tmp_path)
    done = frozen_slt("train", "--model", "resnet18-imagenet", "--dataset", "imagenet", "--data-dir", str(data),
                      "--epochs", "1", "--batch-size", "4", "--num-workers", "1", "--device", "cpu", "--out", "runs",
                      cwd=tmp_path)
    assert assert_run_error(done, 2, needle).startswith("frozen-slt: error: image ")
    assert listing(tmp_path) == before  # no runs/ folder
