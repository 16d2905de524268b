"""Run directories: ``<root>/<config hash>/`` holding the config, per-epoch metrics, checkpoints, result.

``config.json``   the full config and its hash (written once; a different config is refused)
``metrics.jsonl`` one JSON object per evaluated epoch (rewritten from the checkpoint's history, so a
                  resumed run never duplicates lines)
``checkpoints/``  the newest two epoch checkpoints
``result.json``   the final :class:`~frozen_slt.train.RunResult` (present only once the run finished)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .checkpoint import DirectoryStore, write_atomically
from .config import ExperimentConfig
from .errors import RunDirectoryError
from .train import Reporter, RunResult



class RunDirectory:
    """One run's files; also the checkpoint store and a metrics-writing reporter for ``fit``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.store = DirectoryStore(self.path / "checkpoints")

    @classmethod
    def for_config(cls, root: str | Path, config: ExperimentConfig) -> "RunDirectory":
        return cls(Path(root) / config.config_hash())

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def result_path(self) -> Path:
        return self.path / "result.json"

    def read_config(self) -> ExperimentConfig:
        if not self.config_path.is_file():
            raise RunDirectoryError(f"{self.path} is not a run directory (no config.json)")
        return ExperimentConfig.from_dict(json.loads(self.config_path.read_text())["config"])

    def claim(self, config: ExperimentConfig) -> None:
        """Write ``config.json``, or check that the one already there describes the same run."""
        if self.config_path.is_file():
            stored = self.read_config()
            if stored.config_hash() != config.config_hash():
                raise RunDirectoryError(
                    f"run directory {self.path} holds config {stored.config_hash()}, but this command's config is "
                    f"{config.config_hash()}; use another --run-dir or drop it to get the config's own directory"
                )
            return
        record = {"config_hash": config.config_hash(), "config": config.to_dict()}
        write_atomically(self.config_path, (json.dumps(record, indent=2) + "\n").encode())

    def load_result(self) -> RunResult | None:
        if not self.result_path.is_file():
            return None
        return RunResult.from_dict(json.loads(self.result_path.read_text()))

    def save_result(self, result: RunResult) -> None:
        write_atomically(self.result_path, (json.dumps(result.to_dict(), indent=2) + "\n").encode())

    def write_metrics(self, history: list[dict[str, Any]]) -> None:
        lines = "".join(json.dumps(entry) + "\n" for entry in history)
        write_atomically(self.path / "metrics.jsonl", lines.encode())

    def reporter(self, inner: Reporter | None = None) -> Reporter:
        """A reporter that keeps ``metrics.jsonl`` in step with the checkpoints, then forwards to ``inner``."""
        return _MetricsFileReporter(self, inner or Reporter())


class _MetricsFileReporter(Reporter):
    def __init__(self, run: RunDirectory, inner: Reporter):
        self.run, self.inner, self.history = run, inner, []

    def on_start(self, info: dict[str, Any]) -> None:
        self.history = list(info["history"])
        self.inner.on_start(info)

    def on_step(self, epoch, step, steps, loss) -> None:
        self.inner.on_step(epoch, step, steps, loss)

    def on_epoch(self, metrics: dict[str, Any]) -> None:
        self.history.append(metrics)
        self.run.write_metrics(self.history)
        self.inner.on_epoch(metrics)
