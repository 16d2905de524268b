"""A sweep's configuration: what to train, which families, how to search, with what resources.

Loaded from a TOML file in ``sweeps/configs/`` (see ``digits.toml`` for every key) and validated here, so
a typo fails before Ray starts.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from frozen_slt.cli_args import parse_toml
from frozen_slt.config import ExperimentConfig
from frozen_slt.errors import FrozenSLTError

from trainables.points import TICKET_FAMILIES

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "digits.toml"
SEARCHES = ("grid", "optuna")
SAMPLERS = ("nsga2", "tpe")


class SweepConfigError(FrozenSLTError):
    """A sweep configuration value that is not allowed."""


@dataclass(frozen=True)
class SweepSpec:
    name: str
    experiment: dict[str, Any]
    families: tuple[str, ...] = TICKET_FAMILIES
    weight_trained_baseline: bool = True
    search: str = "grid"
    grid_sparsity: tuple[float, ...] = (0.3, 0.5, 0.7)
    grid_freeze_ratio: tuple[float, ...] = (0.3, 0.5, 0.7)
    grid_lock_share: float | str = "proportional"
    seeds: tuple[int, ...] = (0,)
    num_samples: int = 24
    sampler: str = "nsga2"
    sampler_seed: int = 0
    sparsity_range: tuple[float, float] = (0.05, 0.95)
    freeze_range: tuple[float, float] = (0.1, 0.9)
    optuna_storage: str | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int | None = None
    max_failures: int = 2
    smoke: bool = field(default=False)

    def __post_init__(self) -> None:
        self.base_config()  # validates the experiment settings
        _require(set(self.families) <= set(TICKET_FAMILIES) and self.families,
                 f"families must be a non-empty subset of dense, pruned, frozen, got {list(self.families)}")
        _require(self.search in SEARCHES, f"unknown search {self.search!r}; valid: {', '.join(SEARCHES)}")
        _require(self.sampler in SAMPLERS, f"unknown sampler {self.sampler!r}; valid: {', '.join(SAMPLERS)}")
        for name in ("grid_sparsity", "grid_freeze_ratio"):
            values = getattr(self, name)
            _require(values and all(0 <= v <= 1 for v in values), f"{name} must be a non-empty list of numbers in [0, 1], got {list(values)}")
        for name, (low, high) in (("sparsity_range", self.sparsity_range), ("freeze_range", self.freeze_range)):
            _require(0 < low <= high <= 1, f"{name} must be [low, high] with 0 < low <= high <= 1, got {[low, high]}")
        _require(self.num_samples >= 1, f"num_samples must be >= 1, got {self.num_samples}")
        _require(self.cpus_per_trial > 0, f"cpus_per_trial must be > 0, got {self.cpus_per_trial}")
        _require(self.gpus_per_trial >= 0, f"gpus_per_trial must be >= 0, got {self.gpus_per_trial}")
        _require(self.max_concurrent is None or self.max_concurrent >= 1, f"max_concurrent must be >= 1, got {self.max_concurrent}")
        _require(self.max_failures >= 0, f"max_failures must be >= 0, got {self.max_failures}")
        _require(bool(self.seeds), "seeds must not be empty")

    def base_config(self) -> ExperimentConfig:
        """The ExperimentConfig every trial starts from (before its point is applied)."""
        try:
            return ExperimentConfig.from_settings(self.experiment)
        except FrozenSLTError as error:
            raise SweepConfigError(f"[experiment] in sweep {self.name!r}: {error}") from None

    def sweep_hash(self) -> str:
        """8 hex digits identifying what this sweep computes (resources and concurrency excluded)."""
        identity = {key: value for key, value in asdict(self).items()
                    if key not in ("cpus_per_trial", "gpus_per_trial", "max_concurrent", "max_failures")}
        identity["experiment"] = self.base_config().identity_dict()
        return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:8]

    @property
    def run_name(self) -> str:
        """Name of the Ray experiment and the MLflow parent run: ``<name>-<sweep hash>``."""
        return f"{self.name}-{self.sweep_hash()}"


def _require(condition: Any, message: str) -> None:
    if not condition:
        raise SweepConfigError(message)


_SECTIONS = {
    "grid": {"sparsity": "grid_sparsity", "freeze_ratio": "grid_freeze_ratio", "lock_share": "grid_lock_share", "seeds": "seeds"},
    "optuna": {"num_samples": "num_samples", "sampler": "sampler", "seed": "sampler_seed", "sparsity": "sparsity_range",
               "freeze_ratio": "freeze_range", "storage": "optuna_storage"},
    "resources": {"cpus_per_trial": "cpus_per_trial", "gpus_per_trial": "gpus_per_trial",
                  "max_concurrent": "max_concurrent", "max_failures": "max_failures"},
}
_TOP = ("name", "families", "weight_trained_baseline", "search")


def load_sweep_spec(path: str | Path) -> SweepSpec:
    """Read and validate a sweep TOML file."""
    path = Path(path)
    if not path.is_file():
        known = ", ".join(sorted(p.name for p in CONFIG_DIR.glob("*.toml")))
        raise SweepConfigError(f"sweep config {str(path)!r} does not exist; shipped configs in {CONFIG_DIR}: {known}")
    try:
        data = parse_toml(path.read_text())
    except ValueError as error:
        raise SweepConfigError(f"cannot parse {path}: {error}") from None
    kwargs: dict[str, Any] = {"experiment": _absolute_data_dir(data.pop("experiment", {}))}
    for key in _TOP:
        if key in data:
            kwargs[key] = data.pop(key)
    for section, mapping in _SECTIONS.items():
        values = data.pop(section, {})
        unknown = set(values) - set(mapping)
        _require(not unknown, f"unknown keys {sorted(unknown)} in [{section}] of {path}; valid: {', '.join(mapping)}")
        kwargs.update({mapping[key]: value for key, value in values.items()})
    _require(not data, f"unknown keys {sorted(data)} in {path}; valid: {', '.join(_TOP + ('experiment',) + tuple(_SECTIONS))}")
    kwargs.setdefault("name", path.stem)
    for key in ("families", "grid_sparsity", "grid_freeze_ratio", "seeds", "sparsity_range", "freeze_range"):
        if key in kwargs:
            kwargs[key] = tuple(kwargs[key])
    try:
        return SweepSpec(**kwargs)
    except TypeError as error:
        raise SweepConfigError(f"bad value in {path}: {error}") from None


def _absolute_data_dir(experiment: dict[str, Any]) -> dict[str, Any]:
    """Trials run in their own working directories, so a relative data_dir is resolved here, against
    the directory the sweep is started from."""
    if experiment.get("data_dir"):
        experiment = {**experiment, "data_dir": str(Path(str(experiment["data_dir"])).expanduser().resolve())}
    return experiment


def smoke_spec(spec: SweepSpec) -> SweepSpec:
    """Two trials of one epoch: a dense and a frozen point (seconds; for tests and quick checks)."""
    return replace(
        spec, experiment={**spec.experiment, "epochs": 1}, families=("dense", "frozen"), weight_trained_baseline=False,
        search="grid", grid_sparsity=(0.5,), grid_freeze_ratio=(0.5,), seeds=(spec.seeds[0],), num_samples=2, smoke=True,
    )
