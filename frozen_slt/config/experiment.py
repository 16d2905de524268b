"""Typed, frozen configuration: specs in, validated at construction; run identity is a config hash.

The ticket is stored canonically as (sparsity, prune_ratio, lock_ratio). The other spelling of the same
setting, (sparsity, freeze_ratio, lock_share), is accepted as input through :meth:`ExperimentConfig.with_overrides`
(the CLI, config files and sweeps all go through it) and is available as properties, so two spellings
of one setting have one hash.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any, Mapping

from ..errors import ConfigError
from ..method.ratios import resolve_lock_share
from . import checks
from .recipes import default_settings
from .settings import ARGUMENT_TABLES, SECTION_NAMES
from .specs import DataSpec, TicketSpec, TrainSpec, field_meta

SECTIONS = dict(zip(SECTION_NAMES, (TicketSpec, DataSpec, TrainSpec)))
TOP_LEVEL = ("model", "model_args", "dataset", "dataset_args", "weight_trained")
#: Input-only spellings of the ticket's split, resolved into prune_ratio/lock_ratio.
ALTERNATE_KEYS = ("freeze_ratio", "lock_share")
HASH_SCHEMA = 1
#: The ticket settings a weight-trained baseline uses (its random initial weights); it ignores the others.
WEIGHT_TRAINED_TICKET_KEYS = ("weight_init", "weight_seed")
TICKET_KEYS = tuple(f.name for f in fields(TicketSpec))


@dataclass(frozen=True)
class ExperimentConfig:
    """One run: architecture, dataset, ticket (or weight-trained baseline), data handling and recipe."""

    model: str = field(default="conv6", metadata=field_meta(
        "a built-in model (listed above), torchvision:NAME, pyg:NAME, or an import path package.module:callable "
        "(docs/method.md §13)"))
    model_args: dict[str, Any] = field(default_factory=dict, metadata=field_meta(
        "keyword arguments of a model given by import path", optional=True))
    dataset: str = field(default="digits", metadata=field_meta(
        "a built-in dataset (listed above), torchvision.datasets:NAME, pyg:NAME, or an import path "
        "package.module:callable returning the splits"))
    dataset_args: dict[str, Any] = field(default_factory=dict, metadata=field_meta(
        "keyword arguments of a dataset given by import path or library class", optional=True))
    weight_trained: bool = field(default=False, metadata=field_meta("the weight-trained baseline: train the weights of the dense network instead of a mask"))
    ticket: TicketSpec = field(default_factory=TicketSpec)
    data: DataSpec = field(default_factory=DataSpec)
    train: TrainSpec = field(default_factory=TrainSpec)

    def __post_init__(self) -> None:
        from ..data import check_dataset_name, describe_dataset
        from ..data import is_builtin as builtin_dataset
        from ..models import check_model_fits, check_model_name
        from ..models import is_builtin as builtin_model

        for name in ARGUMENT_TABLES:
            object.__setattr__(self, name, checks.arguments(name, getattr(self, name)))
        check_model_name(self.model, self.model_args)
        check_dataset_name(self.dataset, self.dataset_args)
        if builtin_dataset(self.dataset):  # the registry knows the shape: checked here, without reading anything
            facts = describe_dataset(self.dataset, None, self.data)
            if builtin_model(self.model):
                check_model_fits(self.model, facts.input_shape, facts.input_kind)
        # a model by import path, or data read from files, is checked where it is built: frozen_slt.training.network
        checks.boolean("weight_trained", self.weight_trained)
        if self.weight_trained and self.ticket.freeze_ratio > 0:
            raise ConfigError(
                "a weight-trained baseline trains every weight: prune_ratio and lock_ratio must be 0, "
                f"got {self.ticket.prune_ratio} and {self.ticket.lock_ratio}"
            )

    @property
    def family(self) -> str:
        """dense, pruned, frozen (tickets) or weight_trained (the baseline)."""
        return "weight_trained" if self.weight_trained else self.ticket.family

    @property
    def uses_additions(self) -> bool:
        """Whether the config uses what the first release did not have: a model or dataset by import path or an
        optional setting (its ticket file is then version 2, docs/ticket-format.md)."""
        from ..data import is_builtin as builtin_dataset
        from ..models import is_builtin as builtin_model

        if not (builtin_model(self.model) and builtin_dataset(self.dataset)):
            return True
        parts = [(self, TOP_LEVEL_FIELDS)] + [(getattr(self, section), fields(spec)) for section, spec in SECTIONS.items()]
        return any(f.metadata.get("optional") and getattr(obj, f.name) != default_value(f)
                   for obj, spec_fields in parts for f in spec_fields)

    def to_dict(self) -> dict[str, Any]:
        """Every field, nested by section (optional ones only when set); :meth:`from_dict` inverts it."""
        out: dict[str, Any] = _present(self, TOP_LEVEL_FIELDS)
        for section in SECTIONS:
            spec = getattr(self, section)
            out[section] = _present(spec, fields(spec))
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ExperimentConfig":
        if not isinstance(data, Mapping):
            raise ConfigError(f"a config must be a table of settings, got {type(data).__name__}")
        unknown = set(data) - set(TOP_LEVEL) - set(SECTIONS)
        if unknown:
            raise ConfigError(f"unknown config keys {sorted(unknown)}; valid: {', '.join(TOP_LEVEL + tuple(SECTIONS))}")
        kwargs: dict[str, Any] = {name: data[name] for name in TOP_LEVEL if name in data}
        for section, spec_type in SECTIONS.items():
            values = data.get(section) or {}
            if not isinstance(values, Mapping):
                raise ConfigError(f"[{section}] must be a table of settings, got {type(values).__name__}")
            valid = {f.name for f in fields(spec_type)}
            if set(values) - valid:
                raise ConfigError(f"unknown keys {sorted(set(values) - valid)} in [{section}]; valid: {', '.join(sorted(valid))}")
            kwargs[section] = spec_type(**values)
        return cls(**kwargs)

    def identity_dict(self) -> dict[str, Any]:
        """The fields that change the result; a weight-trained run ignores the ticket's mask settings."""
        out: dict[str, Any] = {"schema": HASH_SCHEMA}
        out.update(_present(self, TOP_LEVEL_FIELDS))
        for section in SECTIONS:
            spec = getattr(self, section)
            out[section] = _present(spec, [f for f in fields(spec) if f.metadata["identity"]])
        if self.weight_trained:
            out["ticket"] = {key: out["ticket"][key] for key in WEIGHT_TRAINED_TICKET_KEYS}
        return out

    def config_hash(self) -> str:
        """12 hex digits of SHA-256 over the canonical JSON of :meth:`identity_dict`."""
        canonical = json.dumps(self.identity_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    @classmethod
    def from_settings(cls, flat: Mapping[str, Any]) -> "ExperimentConfig":
        """Defaults ← the dataset's recipe (e.g. digits: batch 32, 20 epochs) ← the (dataset, model) recipe
        (e.g. Conv6 on CIFAR-10: lr 0.01) ← ``flat`` settings; see :mod:`frozen_slt.config.recipes`."""
        dataset = flat.get("dataset", cls.__dataclass_fields__["dataset"].default)
        model = flat.get("model", cls.__dataclass_fields__["model"].default)
        return cls().with_overrides({**default_settings(str(dataset), str(model)), **flat})

    def with_overrides(self, flat: Mapping[str, Any]) -> "ExperimentConfig":
        """A new config with flat ``{field: value}`` overrides (bare or ``section.field`` keys, strings coerced).

        ``freeze_ratio`` and ``lock_share`` (a number or ``"proportional"``, the default) are resolved
        against the new sparsity into prune_ratio and lock_ratio. A numeric ``lock_share`` in ``flat`` with a
        resolved freeze_ratio of 0 is refused: it would be ignored.
        """
        leaves = leaf_fields()
        updates: dict[str | None, dict[str, Any]] = {None: {}, **{section: {} for section in SECTIONS}}
        alternate: dict[str, Any] = {}
        for raw_key, value in flat.items():
            table, dot, argument = str(raw_key).partition(".")
            if table in ARGUMENT_TABLES and dot:  # one argument: model_args.hidden_channels
                current = updates[None].get(table, getattr(self, table))
                updates[None][table] = {**current, argument: value}
                continue
            given_section, key = _split_key(raw_key)
            if key in ALTERNATE_KEYS:
                _check_section(raw_key, key, "ticket", given_section)
                alternate[key] = value
                continue
            if key not in leaves:
                raise ConfigError(f"unknown setting {raw_key!r}; valid: {', '.join(sorted(set(leaves) | set(ALTERNATE_KEYS)))}")
            section, spec_field = leaves[key]
            _check_section(raw_key, key, section, given_section)
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
            try:
                lock_share = coerce_value("lock_share", "float", lock_share)
            except ConfigError:
                pass  # a word other than "proportional": resolve_lock_share refuses it, naming what is allowed
        prune_ratio, lock_ratio = resolve_lock_share(sparsity, freeze_ratio, lock_share)
        if freeze_ratio == 0 and lock_share != "proportional":
            # resolve_lock_share ignores the share of a dense source; a share given for one is a mistake
            raise ConfigError(f"lock_share={lock_share} needs freeze_ratio > 0: with freeze_ratio 0 (a dense source) "
                              "nothing is frozen, so there is nothing to lock; give freeze_ratio too, or drop lock_share")
        return {"prune_ratio": prune_ratio, "lock_ratio": lock_ratio}


TOP_LEVEL_FIELDS = [f for f in fields(ExperimentConfig) if f.name in TOP_LEVEL]


def _split_key(raw_key: str) -> tuple[str | None, str]:
    """``"train.lr"`` → ``("train", "lr")``; ``"lr"`` → ``(None, "lr")``; an unknown section is refused."""
    section, dot, key = str(raw_key).partition(".")
    if not dot:
        return None, section
    if section not in SECTIONS:
        raise ConfigError(f"unknown section {section!r} in setting {raw_key!r}; valid sections: {', '.join(SECTIONS)}")
    return section, key


def _check_section(raw_key: str, key: str, section: str | None, given_section: str | None) -> None:
    """A key qualified by a section (``ticket.lr``, or ``lr`` under ``[ticket]``) must belong to it."""
    if given_section is not None and given_section != section:
        home = f"[{section}]" if section else "the top level"
        raise ConfigError(f"setting {raw_key!r}: {key!r} belongs to {home}, not to [{given_section}]")


def _present(obj: Any, spec_fields) -> dict[str, Any]:
    """``{name: value}`` of ``spec_fields`` of ``obj``, leaving out optional fields at their default."""
    out = {}
    for spec_field in spec_fields:
        value = getattr(obj, spec_field.name)
        if not (spec_field.metadata.get("optional") and value == default_value(spec_field)):
            out[spec_field.name] = value
    return out


def leaf_fields() -> dict[str, tuple[str | None, Any]]:
    """Every settable field by its (unique) name, with its section (None for top level)."""
    out: dict[str, tuple[str | None, Any]] = {f.name: (None, f) for f in fields(ExperimentConfig) if f.name in TOP_LEVEL}
    for section, spec_type in SECTIONS.items():
        out.update({f.name: (section, f) for f in fields(spec_type)})
    return out


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
_TYPE_WORDS = {"bool": "true or false", "int": "an integer", "float": "a number"}


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
        raise ConfigError(f"{name} must be {_TYPE_WORDS.get(base, base)}, got {value!r}") from None
    return text


def default_value(spec_field) -> Any:
    return spec_field.default if spec_field.default is not MISSING else spec_field.default_factory()
