"""The three sections of an experiment's configuration, each a frozen dataclass validated at construction:
the ticket (what is searched), the data (where it comes from and how it is split and ordered) and the
training recipe. :mod:`frozen_slt.config.experiment` composes them into one run's :class:`ExperimentConfig`.

Field metadata carries the help text shown by the CLI and whether the field enters the config hash.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..method.distributions import DISTRIBUTIONS
from ..method.inits import INITS
from ..method.masking import SCALE_MODES
from ..method.ratios import check_feasible


def field_meta(text: str, identity: bool = True) -> dict[str, Any]:
    """Field metadata: help text, and whether the field changes the result (enters the config hash)."""
    return {"help": text, "identity": identity}


def _check_choice(name: str, value: str, choices) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {name} {value!r}; valid: {', '.join(sorted(choices))}")


#: Seeds are stored (and counted by the memory accounting) as 64-bit integers.
SEED_LIMIT = 2**63 - 1


def _check_int(name: str, value: int, minimum: int = 0) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_seed(name: str, value: int) -> None:
    _check_int(name, value)
    if value > SEED_LIMIT:
        raise ConfigError(f"{name} must be an integer in [0, 2**63 - 1] (seeds are stored in 64 bits), got {value!r}")


def _check_bool(name: str, value: bool) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}")


def _check_optional_path(name: str, value: str | None) -> None:
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{name} must be a path (a string) or unset, got {value!r}")


def _check_positive(name: str, value: float, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{name} must be a finite number {bound}, got {value!r}")


@dataclass(frozen=True)
class TicketSpec:
    """What ticket is searched: target sparsity, freeze split, allocation rule, inits, scale, seeds."""

    sparsity: float = field(default=0.5, metadata=field_meta("k: fraction of zeros in the final mask, over all weights"))
    prune_ratio: float = field(default=0.0, metadata=field_meta("p: fraction of weights permanently pruned"))
    lock_ratio: float = field(default=0.0, metadata=field_meta("r: fraction of weights permanently locked"))
    distribution: str = field(default="erk", metadata=field_meta("layer-wise allocation rule: erk, epl, igq, uniform"))
    weight_init: str = field(default="kaiming_uniform",
                             metadata=field_meta(f"random weight distribution, docs/method.md §5: {', '.join(INITS)}"))
    score_init: str = field(default="kaiming_normal", metadata=field_meta(f"initial score distribution: {', '.join(INITS)}"))
    scale: str = field(default="none", metadata=field_meta("effective-weight scale: none, static, dynamic"))
    weight_seed: int = field(default=0, metadata=field_meta("seed of the random weights"))
    score_seed: int = field(default=0, metadata=field_meta("seed of the initial scores"))
    freeze_seed: int = field(default=0, metadata=field_meta("seed of the freeze pattern"))

    def __post_init__(self) -> None:
        for name in ("sparsity", "prune_ratio", "lock_ratio"):
            object.__setattr__(self, name, _as_float(name, getattr(self, name)))
        check_feasible(self.sparsity, self.prune_ratio, self.lock_ratio)
        _check_choice("distribution", self.distribution, DISTRIBUTIONS)
        _check_choice("weight_init", self.weight_init, INITS)
        _check_choice("score_init", self.score_init, INITS)
        _check_choice("scale", self.scale, SCALE_MODES)
        if self.scale == "static" and self.sparsity >= 1:
            raise ConfigError("scale='static' needs sparsity < 1 (its factor is 1/sqrt(1 - sparsity))")
        for name in ("weight_seed", "score_seed", "freeze_seed"):
            _check_seed(name, getattr(self, name))

    @property
    def freeze_ratio(self) -> float:
        """f = p + r."""
        return self.prune_ratio + self.lock_ratio

    @property
    def lock_share(self) -> float | None:
        """s = r / f, or None for a dense source (f = 0)."""
        return self.lock_ratio / self.freeze_ratio if self.freeze_ratio > 0 else None

    @property
    def family(self) -> str:
        """Source family of docs/method.md §2: dense (f = 0), pruned (r = 0 < p) or frozen (r > 0)."""
        if self.lock_ratio > 0:
            return "frozen"
        return "pruned" if self.prune_ratio > 0 else "dense"


@dataclass(frozen=True)
class DataSpec:
    """Where the data comes from and how it is split and ordered (the dataset itself is named in the experiment)."""

    data_dir: str | None = field(default=None, metadata=field_meta("root directory of the dataset files", identity=False))
    download: bool = field(default=False, metadata=field_meta("download the dataset if missing (needs the internet)", identity=False))
    split_seed: int = field(default=0, metadata=field_meta("seed of the train/val split"))
    order_seed: int = field(default=0, metadata=field_meta("seed of the data order and augmentation"))
    augment: bool = field(default=True, metadata=field_meta("use the dataset's training augmentation"))
    num_workers: int = field(default=4, metadata=field_meta("decoding worker processes (image-folder datasets)", identity=False))

    def __post_init__(self) -> None:
        _check_optional_path("data_dir", self.data_dir)
        _check_bool("download", self.download)
        _check_bool("augment", self.augment)
        _check_seed("split_seed", self.split_seed)
        _check_seed("order_seed", self.order_seed)
        _check_int("num_workers", self.num_workers)


OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "constant")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TrainSpec:
    """The optimisation recipe (docs/method.md §9) and where it runs."""

    optimizer: str = field(default="sgd", metadata=field_meta("sgd or adamw"))
    lr: float = field(default=0.1, metadata=field_meta("learning rate"))
    momentum: float = field(default=0.9, metadata=field_meta("SGD momentum"))
    weight_decay: float = field(default=1e-4, metadata=field_meta("weight decay, on the scores of a ticket"))
    epochs: int = field(default=100, metadata=field_meta("training epochs, an integer >= 1"))
    batch_size: int = field(default=128, metadata=field_meta("training mini-batch size"))
    schedule: str = field(default="cosine", metadata=field_meta("cosine (T_max = epochs, stepped per epoch, min 0) or constant"))
    eval_batch_size: int = field(default=1024, metadata=field_meta("evaluation batch size", identity=False))
    device: str = field(default="auto", metadata=field_meta("auto, cpu or cuda", identity=False))
    bf16: bool = field(default=False, metadata=field_meta("bf16 autocast on CUDA; changes numerics"))
    channels_last: bool = field(default=False, metadata=field_meta("channels-last memory format on CUDA", identity=False))

    def __post_init__(self) -> None:
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("schedule", self.schedule, SCHEDULES)
        _check_choice("device", self.device, DEVICES)
        object.__setattr__(self, "lr", _as_float("lr", self.lr))
        object.__setattr__(self, "momentum", _as_float("momentum", self.momentum))
        object.__setattr__(self, "weight_decay", _as_float("weight_decay", self.weight_decay))
        _check_positive("lr", self.lr)
        _check_positive("momentum", self.momentum, allow_zero=True)
        _check_positive("weight_decay", self.weight_decay, allow_zero=True)
        _check_int("epochs", self.epochs, minimum=1)
        _check_bool("bf16", self.bf16)
        _check_bool("channels_last", self.channels_last)
        _check_int("batch_size", self.batch_size, minimum=1)
        _check_int("eval_batch_size", self.eval_batch_size, minimum=1)


def _as_float(name: str, value: Any) -> float:
    """Accept ints and numpy scalars for float fields, refuse everything else with a clear message."""
    if isinstance(value, bool) or not hasattr(value, "__float__") or isinstance(value, str):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    return float(value)
