"""Helpers for hostile-input tests: objects whose pickle runs code, commands run as a real user runs them
(a new process), and listings that show whether anything outside a run's own folder changed."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]


class CreatesFile:
    """Pickles as a call to ``open(path, "w")``: a plain ``pickle.load`` would create ``path``."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return open, (str(self.path), "w")


class EvalCreatesFile:
    """Pickles as ``builtins.eval`` of code that creates ``path``."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return eval, (f"open({str(self.path)!r}, 'w').close()",)


class SystemCreatesFile:
    """Pickles as ``os.system("touch path")`` (``posix.system`` on POSIX)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.path}",)


def run_command(args: list[str], cwd: Path, timeout: float = 300, env: dict[str, str] | None = None):
    """``python args...`` in a new interpreter that imports this checkout's packages, from ``cwd``.

    ``args`` starts with what follows ``python``: ``["-m", "frozen_slt.cli", "export", ...]`` or
    ``[str(REPOSITORY / "sweeps" / "pareto.py"), ...]``.
    """
    path = os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")]))
    full_env = {**os.environ, "PYTHONPATH": path, **(env or {})}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env=full_env)


def frozen_slt(*args: str, cwd: Path, timeout: float = 300, env: dict[str, str] | None = None):
    """The ``frozen-slt`` command with ``args``, in a new process."""
    return run_command(["-m", "frozen_slt.cli", *args], cwd, timeout, env)


def listing(root: Path, exclude: tuple[Path, ...] = ()) -> dict[str, tuple[int, int]]:
    """``{relative path: (mode, size)}`` of everything under ``root`` (links not followed), leaving out the
    trees under ``exclude``. Two listings differ when anything was created, removed, resized or had its
    kind or permissions changed (a device node replaced by a regular file, say)."""
    excluded = {os.path.abspath(path) for path in exclude}
    out: dict[str, tuple[int, int]] = {}
    for directory, subdirectories, files in os.walk(root, followlinks=False):
        here = Path(directory)
        subdirectories[:] = [name for name in subdirectories if os.path.abspath(here / name) not in excluded]
        for name in subdirectories + files:
            path = here / name
            if os.path.abspath(path) in excluded:
                continue
            info = path.lstat()
            size = info.st_size if stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode) else 0
            out[str(path.relative_to(root))] = (info.st_mode, size)
    return out


def assert_one_line_error(result, status: int = 2, needle: str | None = None) -> str:
    """``result`` exited with ``status`` and wrote exactly one line on stderr, no traceback (and ``needle``
    in it, when given); returns that line."""
    err = result.stderr.strip()
    assert result.returncode == status, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert len(err.splitlines()) == 1, result.stderr
    if needle is not None:
        assert needle in err, err
    return err
