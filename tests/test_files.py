"""Writing files: a failed write leaves no temporary file, and user-named outputs are only ever regular files."""

import os
import stat

import pytest

from frozen_slt.errors import OutputPathError, WriteFailedError
from frozen_slt.files import remove_stale_temporaries, reserve_output, write_atomically


def test_a_failed_atomic_write_names_the_file_and_removes_its_temporary_file(tmp_path):
    (tmp_path / "taken").mkdir()  # os.replace cannot put a file over a directory
    with pytest.raises(WriteFailedError, match=r"cannot write .*taken: Is a directory") as caught:
        write_atomically(tmp_path / "taken", b"data")
    assert isinstance(caught.value, OSError)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_an_atomic_write_replaces_a_file_and_creates_its_run_folders(tmp_path):
    write_atomically(tmp_path / "a" / "b.json", b"one")
    write_atomically(tmp_path / "a" / "b.json", b"two")
    assert (tmp_path / "a" / "b.json").read_bytes() == b"two" and os.listdir(tmp_path / "a") == ["b.json"]


def test_stale_temporary_files_are_removed_and_nothing_else(tmp_path):
    for name in (".epoch_0001.pt.123.tmp", ".metrics.jsonl.9.tmp", "keep.tmp", ".hidden", "epoch_0001.pt"):
        (tmp_path / name).write_text("x")
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == [".epoch_0001.pt.123.tmp", ".metrics.jsonl.9.tmp"]
    assert sorted(os.listdir(tmp_path)) == [".hidden", "epoch_0001.pt", "keep.tmp"]


def _make_special(path):
    try:
        os.mknod(path, 0o644 | stat.S_IFCHR, os.makedev(1, 7))  # a /dev/full of our own
    except PermissionError:
        os.mkfifo(path)


@pytest.mark.parametrize("case, needle", [
    ("device", "not a regular file"),
    ("fifo", r"a named pipe \(FIFO\), not a regular file"),
    ("link", "a symbolic link, not a regular file"),
    ("directory", "is a directory"),
    ("missing folder", "does not exist; outputs are written only into existing folders"),
    ("trailing slash", "names a directory"),
])
def test_outputs_that_are_not_regular_files_in_existing_folders_are_refused_untouched(tmp_path, case, needle):
    target = tmp_path / "out.slt"
    if case == "device":
        _make_special(target)
    elif case == "fifo":
        os.mkfifo(target)
    elif case == "link":
        (tmp_path / "real").write_text("mine")
        target.symlink_to(tmp_path / "real")
    elif case == "directory":
        target.mkdir()
    elif case == "missing folder":
        target = tmp_path / "nowhere" / "out.slt"
    before = {p.name: p.lstat() for p in tmp_path.iterdir()}
    path = str(target) + ("/" if case == "trailing slash" else "")
    with pytest.raises(OutputPathError, match=needle):
        reserve_output(path, "-o")
    after = {p.name: p.lstat() for p in tmp_path.iterdir()}
    assert {k: (v.st_mode, v.st_size) for k, v in after.items()} == {k: (v.st_mode, v.st_size) for k, v in before.items()}


def test_a_reserved_output_overwrites_a_regular_file_or_leaves_nothing_when_discarded(tmp_path):
    target = tmp_path / "out.slt"
    target.write_bytes(b"old")
    with reserve_output(target, "-o"):
        assert len(os.listdir(tmp_path)) == 2  # its temporary file
    assert os.listdir(tmp_path) == ["out.slt"] and target.read_bytes() == b"old"
    with reserve_output(target, "-o") as output:
        output.commit(b"new")
    assert os.listdir(tmp_path) == ["out.slt"] and target.read_bytes() == b"new"


def test_a_place_where_no_file_can_be_created_is_refused_before_writing():
    with pytest.raises(OutputPathError, match=r"-o /proc/foo\.slt: cannot create a file in /proc"):
        reserve_output("/proc/foo.slt", "-o")
