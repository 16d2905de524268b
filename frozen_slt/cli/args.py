"""Command-line flags generated from the configuration dataclasses (no hand-written wall of flags)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Iterable

from .config import ALTERNATE_KEYS, ExperimentConfig, default_value, leaf_fields
from .specs import ConfigError

_ALTERNATE_HELP = {
    "freeze_ratio": "f: fraction frozen (pruned + locked); resolved with --lock-share into prune/lock ratios",
    "lock_share": "s = r/f, a number or 'proportional' (s = 1 - sparsity, the default; always feasible)",
}


def add_config_flags(parser: argparse.ArgumentParser, names: Iterable[str] | None = None) -> None:
    """Add one ``--flag`` per config field (all of them, or ``names``); unset flags stay absent."""
    leaves = leaf_fields()
    wanted = list(names) if names is not None else list(leaves) + list(ALTERNATE_KEYS)
    for name in wanted:
        flag = "--" + name.replace("_", "-")
        if name in ALTERNATE_KEYS:
            parser.add_argument(flag, dest=name, default=argparse.SUPPRESS, help=_ALTERNATE_HELP[name])
            continue
        _, spec_field = leaves[name]
        help_text = f"{spec_field.metadata['help']} (default: {default_value(spec_field)})"
        if spec_field.type == "bool":
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text)
        else:
            parser.add_argument(flag, dest=name, default=argparse.SUPPRESS, metavar=name.upper(), help=help_text)


def parse_set_overrides(items: Iterable[str]) -> dict[str, str]:
    """``--set key=value`` items as a flat dict."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = value
    return out


def parse_toml(text: str) -> dict[str, Any]:
    """TOML text as a dict (``tomllib`` from Python 3.11, the ``tomli`` backport before); ValueError if malformed."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    return tomllib.loads(text)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """A TOML, YAML or JSON file as a flat ``{field: value}`` dict (sections may be nested or flat)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            data = parse_toml(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            raise ConfigError(f"config file {str(path)!r} must end in .toml, .yaml, .yml or .json")
    except (ValueError, ImportError) as error:
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(f"cannot parse config file {str(path)!r}: {str(error).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a table of settings")
    return flatten_settings(data)


def flatten_settings(data: dict[str, Any]) -> dict[str, Any]:
    """Nested ``{section: {field: value}}`` (as written by ExperimentConfig.to_dict) to flat keys."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(flatten_settings(value))
        else:
            flat[key] = value
    return flat


_SPELLINGS = ({"freeze_ratio", "lock_share"}, {"prune_ratio", "lock_ratio"})


def merge_settings(base: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``new``; a later spelling of the freeze split replaces the earlier one."""
    merged = dict(base)
    for spelling, other in (_SPELLINGS, _SPELLINGS[::-1]):
        if spelling & set(new):
            for key in other:
                merged.pop(key, None)
    merged.update(new)
    return merged


def config_from_args(args: argparse.Namespace, names: Iterable[str]) -> ExperimentConfig:
    """Defaults ← dataset recipe ← config file (``args.config``) ← flags ← ``--set`` overrides, validated once."""
    flat: dict[str, Any] = {}
    if getattr(args, "config", None):
        flat = load_config_file(args.config)
    flat = merge_settings(flat, {name: getattr(args, name) for name in names if hasattr(args, name)})
    flat = merge_settings(flat, parse_set_overrides(getattr(args, "set", None) or []))
    return ExperimentConfig.from_settings(flat)
