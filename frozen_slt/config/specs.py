"""The three sections of an experiment's configuration, each a frozen dataclass validated at construction:
the ticket (what is searched), the data (where it comes from and how it is split and ordered) and the
training recipe. :mod:`frozen_slt.config.experiment` composes them into one run's :class:`ExperimentConfig`.

Field metadata carries the help text shown by the CLI and whether the field enters the config hash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..method.distributions import DISTRIBUTIONS
from ..method.inits import INITS
from ..method.masking import SCALE_MODES
from ..method.ratios import check_feasible
from . import checks


def field_meta(text: str, identity: bool = True, optional: bool = False) -> dict[str, Any]:
    """Field metadata: help text, whether the field changes the result (enters the config hash), and whether it
    is left out of the config's dicts while at its default (``optional``: settings added after the first
    release, so that every config that does not use them keeps its hash and its files byte for byte)."""
    return {"help": text, "identity": identity, "optional": optional}


#: Seeds are stored (and counted by the memory accounting) as 64-bit integers.
SEED_LIMIT = 2**63 - 1


def _seed(name: str, value: Any) -> int:
    return checks.integer(name, value, 0, SEED_LIMIT, shown="2**63 - 1", why="seeds are stored in 64 bits")


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
            object.__setattr__(self, name, checks.as_float(name, getattr(self, name)))
        check_feasible(self.sparsity, self.prune_ratio, self.lock_ratio)
        checks.choice("distribution", self.distribution, DISTRIBUTIONS)
        checks.choice("weight_init", self.weight_init, INITS)
        checks.choice("score_init", self.score_init, INITS)
        checks.choice("scale", self.scale, SCALE_MODES)
        if self.scale == "static" and self.sparsity >= 1:
            raise ConfigError("scale='static' needs sparsity < 1 (its factor is 1/sqrt(1 - sparsity))")
        for name in ("weight_seed", "score_seed", "freeze_seed"):
            _seed(name, getattr(self, name))

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
    input_channels: int | None = field(default=None, metadata=field_meta(
        "give the model this many channels by repeating a one-channel dataset's channel (3 for torchvision's "
        "classifiers, which hard-code them)", optional=True))

    def __post_init__(self) -> None:
        checks.text("data_dir", self.data_dir, what="a path (a string)")
        checks.boolean("download", self.download)
        checks.boolean("augment", self.augment)
        _seed("split_seed", self.split_seed)
        _seed("order_seed", self.order_seed)
        checks.integer("num_workers", self.num_workers)
        if self.input_channels is not None:
            checks.integer("input_channels", self.input_channels, minimum=2)


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
        checks.choice("optimizer", self.optimizer, OPTIMIZERS)
        checks.choice("schedule", self.schedule, SCHEDULES)
        checks.choice("device", self.device, DEVICES)
        for name, strict in (("lr", True), ("momentum", False), ("weight_decay", False)):
            value = checks.as_float(name, getattr(self, name))
            object.__setattr__(self, name, checks.number(name, value, 0, strict=strict))
        checks.integer("epochs", self.epochs, minimum=1)
        checks.boolean("bf16", self.bf16)
        checks.boolean("channels_last", self.channels_last)
        checks.integer("batch_size", self.batch_size, minimum=1)
        checks.integer("eval_batch_size", self.eval_batch_size, minimum=1)
