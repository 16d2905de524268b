"""Writing files: the run's own files atomically, and the outputs a user names under stricter rules.

A write goes to a temporary file ``.<name>.<pid>.tmp`` in the same directory, is flushed to disk and is
renamed over the final name, so a reader sees either the old file or the complete new one. A write that
fails removes its temporary file and raises :class:`~frozen_slt.errors.WriteFailedError` naming the file
and the system's reason (disk full, file too large, ...). Only a killed process can leave a temporary
file behind; :func:`remove_stale_temporaries` removes those of a directory whose writer holds it alone.

An output the user names (``export -o``, ``--dense-module``) is first reserved by :func:`reserve_output`:
it must be a regular file or nothing, in a folder that exists (no folder is ever created for it), and its
temporary file must be creatable there. So every reason to refuse the path is found before anything is
computed or written, and a refusal leaves nothing behind.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from .errors import OutputPathError, WriteFailedError

_TEMPORARY = re.compile(r"^\..+\.\d+\.tmp$")


def temporary_path(path: Path) -> Path:
    """Where a write to ``path`` by this process goes first."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _sync_directory(directory: Path) -> None:
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _reason(error: OSError) -> str:
    return error.strerror or str(error) or type(error).__name__


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` (creating its folders) with ``data`` so that no reader ever sees a partial file.

    For the files of a run or a sweep, whose folders are the program's own. On failure the temporary
    file is removed and :class:`WriteFailedError` (an ``OSError``) names ``path`` and the reason.
    """
    path = Path(path)
    temporary = temporary_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        _sync_directory(path.parent)
    except OSError as error:
        _remove_quietly(temporary)
        raise WriteFailedError(f"cannot write {path}: {_reason(error)}") from None
    except BaseException:  # an interrupt mid-write: the temporary file must not outlive it either
        _remove_quietly(temporary)
        raise


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:  # the failure being reported matters more than a leftover we could not remove
        pass


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Remove the temporary files (``.<name>.<pid>.tmp``) that killed writers left directly in ``directory``,
    and return them. Only for a directory whose writer holds it alone (a locked run directory)."""
    if not directory.is_dir():
        return []
    stale = [path for path in directory.iterdir() if _TEMPORARY.match(path.name) and path.is_file()]
    for path in stale:
        _remove_quietly(path)
    return stale


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISLNK, "a symbolic link"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


class ReservedOutput:
    """A user-named output whose path passed the checks and whose temporary file is open.

    :meth:`commit` writes the data and renames it into place; :meth:`discard` (also called by ``with`` on
    leaving, for an output not committed) closes and removes the temporary file.
    """

    def __init__(self, path: Path, flag: str, shown: str):
        self.path, self.flag, self.shown = path, flag, shown
        self.temporary = temporary_path(path)
        try:
            self._handle: int | None = os.open(self.temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except OSError as error:
            raise OutputPathError(f"{flag} {shown}: cannot create a file in {path.parent} ({_reason(error)})") from None

    def commit(self, data: bytes) -> None:
        """Write ``data`` to the path (replacing a regular file there); WriteFailedError if that fails."""
        try:
            with open(self._handle, "wb") as handle:  # owns the descriptor from here on
                self._handle = None
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            _check_target(self.path, self.flag, self.shown)  # again: something may have appeared there since the reservation
            os.replace(self.temporary, self.path)
            _sync_directory(self.path.parent)
        except OSError as error:
            self.discard()
            raise WriteFailedError(f"cannot write {self.shown}: {_reason(error)}") from None
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        if self._handle is not None:
            os.close(self._handle)
            self._handle = None
        _remove_quietly(self.temporary)

    def __enter__(self) -> "ReservedOutput":
        return self

    def __exit__(self, *exc) -> None:
        self.discard()  # after a commit the temporary file is gone: this removes nothing


def _check_target(path: Path, flag: str, shown: str) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as error:
        raise OutputPathError(f"{flag} {shown}: cannot inspect it ({_reason(error)})") from None
    if stat.S_ISDIR(info.st_mode):
        raise OutputPathError(f"{flag} {shown} is a directory; name a file in it")
    if not stat.S_ISREG(info.st_mode):
        raise OutputPathError(f"{flag} {shown} is {_kind(info.st_mode)}, not a regular file; outputs are written only "
                              "as new files or over existing regular files")


def reserve_output(path: str | Path, flag: str) -> ReservedOutput:
    """Check that ``path`` (given as ``flag``) can be written as a regular file, and reserve it.

    Allowed: a new file in an existing folder, or an existing regular file (overwritten). Refused, with
    :class:`OutputPathError`: a missing folder (none is created), a directory, anything that is not a
    regular file (device, FIFO, socket, symbolic link), and a place where no file can be created.
    """
    shown = str(path)
    if not shown or shown.endswith(os.sep):
        raise OutputPathError(f"{flag} {shown or repr(shown)} names a directory, not a file")
    path = Path(shown)
    if not path.parent.is_dir():
        what = "is not a directory" if path.parent.exists() else "does not exist"
        raise OutputPathError(f"{flag} {shown}: the folder {path.parent} {what}; outputs are written only into "
                              "existing folders (create it first)")
    _check_target(path, flag, shown)
    return ReservedOutput(path, flag, shown)
