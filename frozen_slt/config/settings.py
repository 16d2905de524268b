"""Reading settings from files and ``key=value`` strings into flat ``{key: value}`` dicts.

Used by the ``frozen-slt`` command (``--config``, ``--set``) and by the sweeps (their TOML files). A
key is either bare (``lr``) or qualified by the section it belongs to (``train.lr``); a file may nest a
section as a table (``[train]``). :meth:`~frozen_slt.config.experiment.ExperimentConfig.with_overrides` checks that
a qualified key really belongs to its section, so ``[ticket] lr = 0.2`` is refused instead of being
applied to the training recipe.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Iterable

from ..errors import ConfigError, with_article
from ..nesting import check_text_depth, parse_limited

#: The sections of an experiment's settings (the order of ExperimentConfig's nested specs).
SECTION_NAMES = ("ticket", "data", "train")
#: Tables of a callable's keyword arguments ([model_args], [dataset_args]); flattened to ``model_args.NAME``.
ARGUMENT_TABLES = ("model_args", "dataset_args")

#: Two spellings of the ticket's freeze split; a later one replaces an earlier one when merging.
_SPELLINGS = ({"freeze_ratio", "lock_share"}, {"prune_ratio", "lock_ratio"})


def parse_toml(text: str) -> dict[str, Any]:
    """TOML text as a dict (``tomllib`` from Python 3.11, the ``tomli`` backport before); ValueError if malformed."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    return tomllib.loads(text)


#: A config file is a table of settings, or of [section] tables of settings: two levels of tables, and one more
#: for a list as a [model_args] argument.
CONFIG_DEPTH = 3
_CONFIG_NEEDS = "a table of settings, or of [ticket]/[data]/[train]/[model_args]/[dataset_args] tables of settings"
_KINDS = {".toml": "toml", ".yaml": "yaml", ".yml": "yaml", ".json": "json"}


def read_settings_file(path: str | Path) -> dict[str, Any]:
    """The table in a TOML, YAML or JSON file, or :class:`ConfigError` naming the file and the problem.

    A key given twice in one table is refused (TOML's own rule, applied to YAML and JSON too, where the
    parsers would silently keep the last value), and so is nesting deeper than :data:`CONFIG_DEPTH`.
    """
    path = Path(path)
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise ConfigError(f"config file {str(path)!r} {what}")
    if path.suffix not in _KINDS:
        raise ConfigError(f"config file {str(path)!r} must end in .toml, .yaml, .yml or .json")
    kind, what = _KINDS[path.suffix], f"config file {str(path)!r}"
    try:
        text = path.read_text()
    except UnicodeDecodeError as error:
        raise ConfigError(f"cannot parse {what}: {error}") from None
    check_text_depth(text, kind, CONFIG_DEPTH, what, _CONFIG_NEEDS, ConfigError)
    try:
        data = parse_limited(lambda: _parse(kind, text, what), CONFIG_DEPTH, what, _CONFIG_NEEDS, ConfigError)
    except ConfigError:
        raise
    except ValueError as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(f"cannot parse {what}: {first_line}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{what} must hold a table of settings, got {with_article(type(data).__name__)}")
    return data


def _parse(kind: str, text: str, what: str) -> Any:
    """``text`` parsed as ``kind``; ValueError when it does not parse, ConfigError for a key given twice."""
    if kind == "toml":
        return parse_toml(text)
    if kind == "json":
        return json.loads(text, object_pairs_hook=lambda pairs: _unique_table(pairs, what))
    import yaml

    try:
        return yaml.load(text, Loader=_unique_key_loader(what))  # a SafeLoader: builds plain values only
    except yaml.YAMLError as error:
        raise ValueError(" ".join(str(error).split())) from None


def _unique_table(pairs: list[tuple[Any, Any]], what: str) -> dict[Any, Any]:
    table: dict[Any, Any] = {}
    for key, value in pairs:
        if key in table:
            raise ConfigError(f"{what} gives the key {key!r} twice in one table; give each setting once")
        table[key] = value
    return table


def _unique_key_loader(what: str):
    """PyYAML's SafeLoader, refusing a key given twice in one mapping (explicit keys; merged ``<<`` keys may be
    overridden, as YAML intends)."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                keys = [self.construct_object(key, deep=True) for key, _ in node.value
                        if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge"]
                _unique_table([(key, None) for key in keys], what)
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


def flatten_settings(data: dict[str, Any], source: str = "settings") -> dict[str, Any]:
    """``{section: {field: value}}`` tables to ``{"section.field": value}``; bare keys stay bare.

    Only the experiment's sections and the argument tables (``[model_args]``, whose values may be lists) may be
    tables; anything else nested is refused, naming ``source``. ``model = "..."`` and a
    ``[model]`` table cannot both be written in TOML, hence the table's name.
    """
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if not isinstance(value, dict):
            flat[str(key)] = value
            continue
        if key not in SECTION_NAMES + ARGUMENT_TABLES:
            hint = "; the model's arguments go in [model_args]" if key == "model" else ""
            raise ConfigError(f"unknown section [{key}] in {source}; valid sections: "
                              f"{', '.join(SECTION_NAMES + ARGUMENT_TABLES)}{hint}")
        for inner, inner_value in value.items():
            if isinstance(inner_value, dict):
                raise ConfigError(f"[{key}] in {source}: {inner!r} must be a value, not a table")
            flat[f"{key}.{inner}"] = inner_value
    return flat


def load_config_file(path: str | Path) -> dict[str, Any]:
    """A TOML, YAML or JSON settings file as flat keys (see :func:`flatten_settings`)."""
    return flatten_settings(read_settings_file(path), f"config file {str(path)!r}")


def parse_set_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``--set key=value`` items as a flat dict (values stay strings, the config coerces them; a callable's
    argument, ``model_args.NAME=VALUE``, is read by :func:`argument_value`)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key = key.strip()
        out[key] = argument_value(value) if key.partition(".")[0] in ARGUMENT_TABLES else value
    return out


def parse_argument_items(items: Iterable[str], table: str, flag: str) -> dict[str, Any]:
    """``--model-arg name=value`` items as flat ``{"model_args.name": value}`` (see :func:`argument_value`)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} expects name=value, got {item!r}")
        out[f"{table}.{key.strip()}"] = argument_value(value)
    return out


def argument_value(text: str) -> Any:
    """A callable's argument from the command line: JSON when it parses as JSON (``64``, ``0.5``, ``true``,
    ``null``, ``[64, 64]``, ``"quoted"``), else the text itself (``relu``, ``Cora``)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def bare_key(key: str) -> str:
    """``train.lr`` → ``lr``; a bare key is returned as it is; a callable's argument (``model_args.lr``) stays
    whole, so it never replaces a setting of the same name."""
    if key.partition(".")[0] in ARGUMENT_TABLES:
        return key
    return key.rpartition(".")[2]


def merge_settings(base: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``new``: a key replaces the same setting however it was qualified, and a
    later spelling of the freeze split replaces the earlier one."""
    incoming = {bare_key(key) for key in new}
    dropped = set(incoming)
    for spelling, other in (_SPELLINGS, _SPELLINGS[::-1]):
        if spelling & incoming:
            dropped |= other
    merged = {key: value for key, value in base.items() if bare_key(key) not in dropped}
    merged.update(new)
    return merged
