"""Typed, frozen configuration: specs in, validated at construction; run identity is a config hash.

The ticket is stored canonically as (sparsity, prune_ratio, lock_ratio). The other spelling of the same
setting, (sparsity, freeze_ratio, lock_share), is accepted as input through :meth:`ExperimentConfig.with_overrides`
(the CLI, config files and sweeps all go through it) and is available as properties, so two spellings
of one setting have one hash.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any, Mapping

from .distributions import DISTRIBUTIONS
from .errors import FrozenSLTError
from .initialize import INITS
from .layers import SCALE_MODES
from .ratios import check_feasible, resolve_lock_share
from .registry import lookup


class ConfigError(FrozenSLTError):
    """A configuration value that is not allowed; the message names the field and what is allowed."""


def _help(text: str, identity: bool = True) -> dict[str, Any]:
    """Field metadata: help text, and whether the field changes the result (enters the config hash)."""
    return {"help": text, "identity": identity}


def _check_choice(name: str, value: str, choices) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {name} {value!r}; valid: {', '.join(sorted(choices))}")


def _check_int(name: str, value: int, minimum: int = 0) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_positive(name: str, value: float, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{name} must be a finite number {bound}, got {value!r}")


@dataclass(frozen=True)
class TicketSpec:
    """What ticket is searched: target sparsity, freeze split, allocation rule, inits, scale, seeds."""

    sparsity: float = field(default=0.5, metadata=_help("k: fraction of zeros in the final mask, over all weights"))
    prune_ratio: float = field(default=0.0, metadata=_help("p: fraction of weights permanently pruned"))
    lock_ratio: float = field(default=0.0, metadata=_help("r: fraction of weights permanently locked"))
    distribution: str = field(default="erk", metadata=_help("layer-wise allocation rule: erk, epl, igq, uniform"))
    weight_init: str = field(default="kaiming_uniform", metadata=_help("random weight distribution (method.md §5)"))
    score_init: str = field(default="kaiming_normal", metadata=_help("initial score distribution"))
    scale: str = field(default="none", metadata=_help("effective-weight scale: none, static, dynamic"))
    weight_seed: int = field(default=0, metadata=_help("seed of the random weights"))
    score_seed: int = field(default=0, metadata=_help("seed of the initial scores"))
    freeze_seed: int = field(default=0, metadata=_help("seed of the freeze pattern"))

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
            _check_int(name, getattr(self, name))

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
        """Source family of method.md §2: dense (f = 0), pruned (r = 0 < p) or frozen (r > 0)."""
        if self.lock_ratio > 0:
            return "frozen"
        return "pruned" if self.prune_ratio > 0 else "dense"


@dataclass(frozen=True)
class DataSpec:
    """Where the data comes from and how it is split and ordered (the dataset itself is named in the experiment)."""

    data_dir: str | None = field(default=None, metadata=_help("root directory of the dataset files", identity=False))
    download: bool = field(default=False, metadata=_help("download the dataset if missing (needs the internet)", identity=False))
    split_seed: int = field(default=0, metadata=_help("seed of the train/val split"))
    order_seed: int = field(default=0, metadata=_help("seed of the data order and augmentation"))
    augment: bool = field(default=True, metadata=_help("use the dataset's training augmentation"))
    num_workers: int = field(default=4, metadata=_help("decoding worker processes (image-folder datasets)", identity=False))

    def __post_init__(self) -> None:
        _check_int("split_seed", self.split_seed)
        _check_int("order_seed", self.order_seed)
        _check_int("num_workers", self.num_workers)


OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "constant")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TrainSpec:
    """The optimisation recipe (method.md §9) and where it runs."""

    optimizer: str = field(default="sgd", metadata=_help("sgd or adamw"))
    lr: float = field(default=0.1, metadata=_help("learning rate"))
    momentum: float = field(default=0.9, metadata=_help("SGD momentum"))
    weight_decay: float = field(default=1e-4, metadata=_help("weight decay (on the scores of a ticket)"))
    epochs: int = field(default=100, metadata=_help("training epochs"))
    batch_size: int = field(default=128, metadata=_help("training mini-batch size"))
    schedule: str = field(default="cosine", metadata=_help("cosine (T_max = epochs, stepped per epoch, min 0) or constant"))
    eval_batch_size: int = field(default=1024, metadata=_help("evaluation batch size", identity=False))
    device: str = field(default="auto", metadata=_help("auto, cpu or cuda", identity=False))
    bf16: bool = field(default=False, metadata=_help("bf16 autocast on CUDA (changes numerics)"))
    channels_last: bool = field(default=False, metadata=_help("channels-last memory format on CUDA", identity=False))

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
        _check_int("epochs", self.epochs)
        _check_int("batch_size", self.batch_size, minimum=1)
        _check_int("eval_batch_size", self.eval_batch_size, minimum=1)


def _as_float(name: str, value: Any) -> float:
    """Accept ints and numpy scalars for float fields, refuse everything else with a clear message."""
    if isinstance(value, bool) or not hasattr(value, "__float__") or isinstance(value, str):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    return float(value)


SECTIONS = {"ticket": TicketSpec, "data": DataSpec, "train": TrainSpec}
TOP_LEVEL = ("model", "dataset", "weight_trained")
#: Input-only spellings of the ticket's split, resolved into prune_ratio/lock_ratio.
ALTERNATE_KEYS = ("freeze_ratio", "lock_share")
HASH_SCHEMA = 1


@dataclass(frozen=True)
class ExperimentConfig:
    """One run: architecture, dataset, ticket (or weight-trained baseline), data handling and recipe."""

    model: str = field(default="conv6", metadata=_help("architecture name (see `frozen-slt plan --help`)"))
    dataset: str = field(default="digits", metadata=_help("dataset name"))
    weight_trained: bool = field(default=False, metadata=_help("train the weights of the dense network instead of a mask (baseline)"))
    ticket: TicketSpec = field(default_factory=TicketSpec)
    data: DataSpec = field(default_factory=DataSpec)
    train: TrainSpec = field(default_factory=TrainSpec)

    def __post_init__(self) -> None:
        from .data import get_dataset_entry
        from .models import check_model_fits, get_model_entry

        get_model_entry(self.model)
        entry = get_dataset_entry(self.dataset)
        check_model_fits(self.model, entry.input_shape, entry.input_kind)
        if not isinstance(self.weight_trained, bool):
            raise ConfigError(f"weight_trained must be true or false, got {self.weight_trained!r}")
        if self.weight_trained and self.ticket.freeze_ratio > 0:
            raise ConfigError(
                "a weight-trained baseline trains every weight: prune_ratio and lock_ratio must be 0, "
                f"got {self.ticket.prune_ratio} and {self.ticket.lock_ratio}"
            )

    @property
    def family(self) -> str:
        """dense, pruned, frozen (tickets) or weight_trained (the baseline)."""
        return "weight_trained" if self.weight_trained else self.ticket.family

    def to_dict(self) -> dict[str, Any]:
        """Every field, nested by section; :meth:`from_dict` inverts it."""
        out: dict[str, Any] = {name: getattr(self, name) for name in TOP_LEVEL}
        for section in SECTIONS:
            spec = getattr(self, section)
            out[section] = {f.name: getattr(spec, f.name) for f in fields(spec)}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ExperimentConfig":
        unknown = set(data) - set(TOP_LEVEL) - set(SECTIONS)
        if unknown:
            raise ConfigError(f"unknown config keys {sorted(unknown)}; valid: {', '.join(TOP_LEVEL + tuple(SECTIONS))}")
        kwargs: dict[str, Any] = {name: data[name] for name in TOP_LEVEL if name in data}
        for section, spec_type in SECTIONS.items():
            values = dict(data.get(section) or {})
            valid = {f.name for f in fields(spec_type)}
            if set(values) - valid:
                raise ConfigError(f"unknown keys {sorted(set(values) - valid)} in [{section}]; valid: {', '.join(sorted(valid))}")
            kwargs[section] = spec_type(**values)
        return cls(**kwargs)

    def identity_dict(self) -> dict[str, Any]:
        """The fields that change the result; a weight-trained run ignores the ticket's mask settings."""
        out: dict[str, Any] = {"schema": HASH_SCHEMA}
        out.update({name: getattr(self, name) for name in TOP_LEVEL})
        for section in SECTIONS:
            spec = getattr(self, section)
            out[section] = {f.name: getattr(spec, f.name) for f in fields(spec) if f.metadata["identity"]}
        if self.weight_trained:
            out["ticket"] = {key: out["ticket"][key] for key in ("weight_init", "weight_seed")}
        return out

    def config_hash(self) -> str:
        """12 hex digits of SHA-256 over the canonical JSON of :meth:`identity_dict`."""
        canonical = json.dumps(self.identity_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    @classmethod
    def from_settings(cls, flat: Mapping[str, Any]) -> "ExperimentConfig":
        """Defaults ← the dataset's recipe (e.g. digits: batch 32, 20 epochs) ← ``flat`` settings."""
        from .data import get_dataset_entry

        dataset = flat.get("dataset", cls.__dataclass_fields__["dataset"].default)
        recipe = dict(get_dataset_entry(str(dataset)).recipe)
        return cls().with_overrides({**recipe, **flat})

    def with_overrides(self, flat: Mapping[str, Any]) -> "ExperimentConfig":
        """A new config with flat ``{field: value}`` overrides (bare or ``section.field`` keys, strings coerced).

        ``freeze_ratio`` and ``lock_share`` (a number or ``"proportional"``, the default) are resolved
        against the new sparsity into prune_ratio and lock_ratio.
        """
        leaves = leaf_fields()
        updates: dict[str | None, dict[str, Any]] = {None: {}, **{section: {} for section in SECTIONS}}
        alternate: dict[str, Any] = {}
        for raw_key, value in flat.items():
            key = raw_key.split(".", 1)[1] if raw_key.split(".", 1)[0] in SECTIONS else raw_key
            if key in ALTERNATE_KEYS:
                alternate[key] = value
                continue
            if key not in leaves:
                raise ConfigError(f"unknown setting {raw_key!r}; valid: {', '.join(sorted(set(leaves) | set(ALTERNATE_KEYS)))}")
            section, spec_field = leaves[key]
            updates[section][key] = coerce_value(key, spec_field.type, value)
        if alternate:
            updates["ticket"].update(self._resolve_split(alternate, updates["ticket"]))
        sections = {section: replace(getattr(self, section), **updates[section]) for section in SECTIONS}
        return replace(self, **updates[None], **sections)

    def _resolve_split(self, alternate: Mapping[str, Any], ticket_updates: Mapping[str, Any]) -> dict[str, float]:
        if "prune_ratio" in ticket_updates or "lock_ratio" in ticket_updates:
            raise ConfigError("give either freeze_ratio/lock_share or prune_ratio/lock_ratio, not both")
        sparsity = ticket_updates.get("sparsity", self.ticket.sparsity)
        freeze_ratio = coerce_value("freeze_ratio", "float", alternate.get("freeze_ratio", self.ticket.freeze_ratio))
        lock_share = alternate.get("lock_share", "proportional")
        if lock_share != "proportional":
            lock_share = coerce_value("lock_share", "float", lock_share)
        prune_ratio, lock_ratio = resolve_lock_share(sparsity, freeze_ratio, lock_share)
        return {"prune_ratio": prune_ratio, "lock_ratio": lock_ratio}


def leaf_fields() -> dict[str, tuple[str | None, Any]]:
    """Every settable field by its (unique) name, with its section (None for top level)."""
    out: dict[str, tuple[str | None, Any]] = {f.name: (None, f) for f in fields(ExperimentConfig) if f.name in TOP_LEVEL}
    for section, spec_type in SECTIONS.items():
        out.update({f.name: (section, f) for f in fields(spec_type)})
    return out


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def coerce_value(name: str, type_name: str, value: Any) -> Any:
    """Turn a string from the command line or a config file into the field's type; pass others through."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if "None" in type_name and text.lower() in ("none", "null", ""):
        return None
    base = type_name.replace(" | None", "")
    try:
        if base == "bool":
            if text.lower() in _TRUE + _FALSE:
                return text.lower() in _TRUE
            raise ValueError(text)
        if base == "int":
            return int(text)
        if base == "float":
            return float(text)
    except ValueError:
        raise ConfigError(f"{name} must be {'true or false' if base == 'bool' else 'a ' + base}, got {value!r}") from None
    return text


def default_value(spec_field) -> Any:
    return spec_field.default if spec_field.default is not MISSING else spec_field.default_factory()
