"""Run directories: ``<root>/<config hash>/`` holding the config, per-epoch metrics, checkpoints, result.

``config.json``   the full config and its hash (written once training starts; a different config is refused)
``metrics.jsonl`` one JSON object per evaluated epoch (rewritten from the checkpoint's history, so a
                  resumed run never duplicates lines)
``checkpoints/``  the newest two epoch checkpoints (damaged ones are kept aside as ``*.corrupt``)
``result.json``   the final :class:`~frozen_slt.training.loop.RunResult` (present only once the run finished)
``lock``          held (``flock``) by the process that trains in the directory, naming it (:mod:`frozen_slt.cli.runlock`)

Nothing is written before ``fit`` has loaded the data and built the network, so a run that cannot start
(no CUDA, missing data) leaves no directory behind; and a run that fails before its first checkpoint
(unreadable images, a full disk) removes the directory it created (:meth:`RunDirectory.training`). A
directory that held anything before is never removed. Damaged files are reported, never deleted; the
temporary files a killed run left are removed by the next run that takes the lock.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any, Iterator

from ..config.experiment import ExperimentConfig
from ..errors import RunDirectoryError, WriteFailedError
from ..files import remove_stale_temporaries, write_atomically
from ..nesting import load_json
from ..training.checkpoint import DirectoryStore, check_fit_state
from ..training.loop import Reporter, RunResult
from .runlock import RunLock

log = logging.getLogger(__name__)


#: config.json holds {"config": {section: {field: value}}}, and a model's argument may be a list (one more);
#: result.json {"history": [{metric: value}], ...}.
CONFIG_FILE_DEPTH, RESULT_FILE_DEPTH = 4, 3
_CONFIG_NEEDS = "the config's sections of settings"
_RESULT_NEEDS = "a result with per-epoch records"


class RunDirectory:
    """One run's files; also the checkpoint store and a metrics-writing reporter for ``fit``.

    ``config`` is the run's config when the caller knows it (``train``); otherwise (``eval``, ``export``)
    the one in ``config.json``. The store checks every checkpoint against it (:func:`check_fit_state`)
    and treats one that fails like a damaged file.
    """

    def __init__(self, path: str | Path, config: ExperimentConfig | None = None):
        self.path = Path(path)
        self.config = config
        self._store: DirectoryStore | None = None
        self._lock = RunLock(self.path)
        self._created: Path | None = None  # the topmost folder that lock() created, if any

    @classmethod
    def for_config(cls, root: str | Path, config: ExperimentConfig) -> "RunDirectory":
        return cls(Path(root) / config.config_hash(), config)

    @property
    def store(self) -> DirectoryStore:
        if self._store is None:
            config = self.config or self.read_config()
            config_hash, epochs = config.config_hash(), config.train.epochs

            def check(state, source: str) -> None:
                check_fit_state(state, config_hash, epochs, source)

            self._store = _LockingStore(self, check)
        return self._store

    def lock(self) -> None:
        """Take the run directory for this process (creating it); RunDirectoryError naming the holder when
        another live process trains in it. Then remove the temporary files killed writers left in it."""
        if self._lock.held:
            return
        missing = [path for path in (self.path, *self.path.parents) if not path.exists()]
        self._lock.acquire()
        self._created = missing[-1] if missing else None
        for directory in (self.path, self.path / "checkpoints"):
            for stale in remove_stale_temporaries(directory):
                log.info("removed %s, left by a killed run", stale)

    @contextlib.contextmanager
    def training(self) -> Iterator["RunDirectory"]:
        """The span of one ``train`` command: releases the lock at the end, and when it ends in an error
        before the first checkpoint, removes the directory (and the empty folders above it) that this
        process created."""
        try:
            yield self
        except BaseException:
            self._remove_if_unstarted()
            raise
        finally:
            self._lock.release()

    def _remove_if_unstarted(self) -> None:
        if not self._lock.held or self._created is None or not DirectoryStore(self.path / "checkpoints").is_empty():
            return
        shutil.rmtree(self.path, ignore_errors=True)
        for folder in self.path.parents:
            if not folder.is_relative_to(self._created):
                break
            with contextlib.suppress(OSError):  # not empty (another run's folder): it stays
                folder.rmdir()

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def result_path(self) -> Path:
        return self.path / "result.json"

    def read_config(self) -> ExperimentConfig:
        """The config in ``config.json``; RunDirectoryError when it is missing or damaged."""
        if not self.config_path.is_file():
            raise RunDirectoryError(f"{self.path} is not a run directory (no config.json)")
        try:
            record = load_json(self.config_path.read_text(), CONFIG_FILE_DEPTH, "it", _CONFIG_NEEDS)
            return ExperimentConfig.from_dict(record["config"])
        except (ValueError, UnicodeDecodeError, KeyError, TypeError) as error:
            raise RunDirectoryError(
                f"{self.config_path} is damaged ({_first_line(error)}); it must hold the JSON that `frozen-slt train` "
                "wrote: restore it, or train again into a new directory"
            ) from None

    def check_claim(self, config: ExperimentConfig) -> None:
        """Refuse, without writing anything, a path that cannot be a run directory or that holds another config."""
        for path in (self.path, *self.path.parents):
            if path.exists():
                if not path.is_dir():
                    raise RunDirectoryError(f"cannot use run directory {self.path}: {path} is a file, not a directory")
                break
        if not self.config_path.exists():
            return
        stored = self.read_config()
        if stored.config_hash() != config.config_hash():
            raise RunDirectoryError(
                f"run directory {self.path} holds config {stored.config_hash()}, but this command's config is "
                f"{config.config_hash()}; use another --run-dir or drop it to get the config's own directory"
            )

    def claim(self, config: ExperimentConfig) -> None:
        """Write ``config.json``, or check that the one already there describes the same run."""
        self.check_claim(config)
        if self.config_path.exists():
            return
        record = {"config_hash": config.config_hash(), "config": config.to_dict()}
        try:
            write_atomically(self.config_path, (json.dumps(record, indent=2) + "\n").encode())
        except WriteFailedError as error:  # the run has not started: nothing of it is lost
            raise RunDirectoryError(str(error)) from None

    def load_result(self) -> RunResult | None:
        """The stored result, None before the run finished; RunDirectoryError (file untouched) when damaged."""
        if not self.result_path.is_file():
            return None
        try:
            return RunResult.from_dict(load_json(self.result_path.read_text(), RESULT_FILE_DEPTH, "it", _RESULT_NEEDS))
        except (ValueError, UnicodeDecodeError, KeyError, TypeError) as error:
            raise RunDirectoryError(
                f"{self.result_path} is damaged ({_first_line(error)}) and was left as it is; move it aside "
                "(e.g. to result.json.damaged) and run the same command again: it resumes from the last checkpoint "
                "and rewrites result.json"
            ) from None

    def save_result(self, result: RunResult) -> None:
        write_atomically(self.result_path, (json.dumps(result.to_dict(), indent=2) + "\n").encode())

    def write_metrics(self, history: list[dict[str, Any]]) -> None:
        lines = "".join(json.dumps(entry) + "\n" for entry in history)
        write_atomically(self.path / "metrics.jsonl", lines.encode())

    def reporter(self, config: ExperimentConfig, inner: Reporter | None = None) -> Reporter:
        """A reporter for ``fit`` of ``config``: claims the directory (writes ``config.json``) when training
        starts, keeps ``metrics.jsonl`` in step with the checkpoints, and forwards every call to ``inner``."""
        return _MetricsFileReporter(self, config, inner or Reporter())


class _LockingStore(DirectoryStore):
    """The run's checkpoints; reading them to resume (or writing one) first takes the run's lock, which
    ``fit`` does only once the data is loaded and the network built. Reading them only (eval, export) does not."""

    def __init__(self, run: RunDirectory, check):
        super().__init__(run.path / "checkpoints", check=check)
        self.run = run

    def load(self) -> dict[str, Any] | None:
        self.run.lock()
        return super().load()

    def save(self, state: dict[str, Any]) -> None:
        self.run.lock()
        super().save(state)


def _first_line(error: Exception) -> str:
    if isinstance(error, KeyError):
        return f"no {error.args[0]!r} entry"
    return (str(error).splitlines() or [type(error).__name__])[0]


class _MetricsFileReporter(Reporter):
    def __init__(self, run: RunDirectory, config: ExperimentConfig, inner: Reporter):
        self.run, self.config, self.inner, self.history = run, config, inner, []

    def on_start(self, info: dict[str, Any]) -> None:
        self.run.claim(self.config)  # only now: the data is loaded and the network built, so the run can start
        self.history = list(info["history"])
        self.inner.on_start(info)

    def on_step(self, epoch, step, steps, loss) -> None:
        self.inner.on_step(epoch, step, steps, loss)

    def on_epoch(self, metrics: dict[str, Any]) -> None:
        self.history.append(metrics)
        self.run.write_metrics(self.history)
        self.inner.on_epoch(metrics)
