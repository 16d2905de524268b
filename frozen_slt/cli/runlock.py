"""The lock that makes one process at a time train in a run directory.

``fcntl.flock`` on the file ``lock`` in the run directory, held for as long as the run trains. The file
says who holds it (pid, host, start time), so a second run into the same directory can name the holder
when it refuses. The kernel releases a flock when its process dies, however it dies, so the lock of a
killed run is simply taken over by the next one: there is no stale lock to clean up, and the file itself
stays (removing it would let two processes lock two different files of the same name).
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path

from ..errors import RunDirectoryError

LOCK_FILE = "lock"


class RunLock:
    """The lock of the run directory ``directory`` (which :meth:`acquire` creates when missing)."""

    def __init__(self, directory: Path):
        self.directory = directory
        self._handle: int | None = None

    @property
    def held(self) -> bool:
        return self._handle is not None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`RunDirectoryError` naming the live process that holds it."""
        if self._handle is not None:
            return
        path = self.directory / LOCK_FILE
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise RunDirectoryError(f"cannot use run directory {self.directory}: {error.strerror or error}") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(handle, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(handle)
            raise RunDirectoryError(f"run directory {self.directory} is in use by {holder}: another run trains in it; "
                                    "wait for it to finish or stop it (a killed run's lock is taken over)") from None
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
        try:
            os.ftruncate(handle, 0)
            os.pwrite(handle, f"pid {os.getpid()} on {socket.gethostname()} since {started}\n".encode(), 0)
        except OSError:  # a full disk: the lock holds all the same, only without naming its holder
            pass
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            os.close(self._handle)  # closing the last descriptor releases the flock
            self._handle = None
