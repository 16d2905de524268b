"""Run directories: the lock, and the cleanup of a run that fails before its first checkpoint."""

import pytest

from frozen_slt.cli.rundir import RunDirectory
from frozen_slt.errors import RunDirectoryError


class Failed(Exception):
    pass


def fail_in(run: RunDirectory, before=lambda: None):
    with pytest.raises(Failed):
        with run.training():
            run.lock()
            before()
            raise Failed


def test_a_run_that_fails_before_its_first_checkpoint_removes_only_what_it_created(tmp_path):
    (tmp_path / "root" / "other").mkdir(parents=True)  # another run's folder under the same root
    fail_in(RunDirectory(tmp_path / "root" / "new" / "run"))
    assert sorted(p.name for p in (tmp_path / "root").iterdir()) == ["other"]
    fail_in(RunDirectory(tmp_path / "fresh" / "run"))
    assert not (tmp_path / "fresh").exists()


def test_a_directory_that_existed_or_holds_a_checkpoint_is_kept(tmp_path):
    (tmp_path / "given").mkdir()
    fail_in(RunDirectory(tmp_path / "given"))
    assert (tmp_path / "given").is_dir()
    run = RunDirectory(tmp_path / "started")
    fail_in(run, lambda: (run.path / "checkpoints").mkdir() or (run.path / "checkpoints" / "epoch_0000.pt").write_bytes(b"x"))
    assert (run.path / "checkpoints" / "epoch_0000.pt").exists()


def test_the_lock_is_one_process_or_run_directory_object_at_a_time_and_released_at_the_end(tmp_path):
    first, second = RunDirectory(tmp_path / "run"), RunDirectory(tmp_path / "run")
    with first.training():
        first.lock()
        with pytest.raises(RunDirectoryError, match=r"is in use by pid \d+ on .* since "):
            second.lock()  # flock locks are per open file: a second open in the same process is refused too
    second.lock()
    assert (tmp_path / "run" / "lock").is_file()
