"""Command-line flags generated from the configuration dataclasses (no hand-written wall of flags)."""

from __future__ import annotations

import argparse
import logging
import textwrap
from typing import Any, Iterable

from ..config.degenerate import degenerate_ticket_note
from ..config.experiment import (
    ALTERNATE_KEYS,
    TICKET_KEYS,
    WEIGHT_TRAINED_TICKET_KEYS,
    ExperimentConfig,
    default_value,
    leaf_fields,
)
from ..config.settings import (
    ARGUMENT_TABLES,
    bare_key,
    load_config_file,
    merge_settings,
    parse_argument_items,
    parse_set_overrides,
)
from ..errors import ConfigError
from ..imports import allow, is_import_path

log = logging.getLogger(__name__)

_ALTERNATE_HELP = {
    "freeze_ratio": "f: fraction frozen (pruned + locked); resolved with --lock-share into prune/lock ratios "
                    "(default: 0, a dense source)",
    "lock_share": "s = r/f, a number or 'proportional' (s = 1 - sparsity, the default; always feasible); "
                  "a number needs --freeze-ratio > 0",
}


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, except that lines never break inside a hyphenated name (``ogbn-arxiv``,
    ``docs/ticket-format.md``), which the default wrapping splits across two lines."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False, break_long_words=False)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return textwrap.fill(" ".join(text.split()), width, initial_indent=indent, subsequent_indent=indent,
                             break_on_hyphens=False, break_long_words=False)


#: The repeatable flags that give a callable's arguments, by the setting they fill.
ARGUMENT_FLAGS = {"model_args": ("--model-arg", "model_arg", "model"), "dataset_args": ("--dataset-arg", "dataset_arg", "dataset")}


def add_config_flags(parser: argparse.ArgumentParser, names: Iterable[str] | None = None) -> None:
    """Add one ``--flag`` per config field (all of them, or ``names``); unset flags stay absent. The argument
    tables get a repeatable ``--model-arg NAME=VALUE`` (``--dataset-arg``) instead."""
    leaves = leaf_fields()
    wanted = list(names) if names is not None else list(leaves) + list(ALTERNATE_KEYS)
    for name in wanted:
        if name in ARGUMENT_TABLES:
            flag, dest, what = ARGUMENT_FLAGS[name]
            parser.add_argument(flag, dest=dest, action="append", metavar="NAME=VALUE", default=argparse.SUPPRESS,
                                help=f"a keyword argument of a {what} given by import path (repeatable); VALUE is JSON "
                                     "when it parses as JSON (64, 0.5, true, [64, 64]), else text")
            continue
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


def config_from_args(args: argparse.Namespace, names: Iterable[str], note: bool = True) -> ExperimentConfig:
    """Defaults ← dataset recipe ← config file (``args.config``) ← flags ← ``--set`` overrides, validated once;
    with ``note``, a warning says what the ticket is when the settings leave nothing to search."""
    allow_named_code(args)
    flat: dict[str, Any] = {}
    if getattr(args, "config", None):
        flat = load_config_file(args.config)
    flat = merge_settings(flat, {name: getattr(args, name) for name in names
                                 if hasattr(args, name) and name not in ARGUMENT_TABLES})
    for table, (flag, dest, _) in ARGUMENT_FLAGS.items():
        flat = merge_settings(flat, parse_argument_items(getattr(args, dest, None) or [], table, flag))
    flat = merge_settings(flat, parse_set_overrides(getattr(args, "set", None) or []))
    config = ExperimentConfig.from_settings(flat)
    _refuse_ignored_ticket_settings(config, flat)
    text = degenerate_ticket_note(config) if note else None
    if text:  # here, where train builds its config (plan says it from the counts it shows)
        log.warning(text)
    return config


def allow_named_code(args: argparse.Namespace) -> None:
    """The command line named a model or dataset by import path (``--model``, ``--dataset``): this process may
    import it, wherever it is named (a file naming it alone is refused, docs/method.md §13)."""
    for name in ("model", "dataset"):
        value = getattr(args, name, None)
        if is_import_path(value):
            allow(value)


def _refuse_ignored_ticket_settings(config: ExperimentConfig, flat: dict[str, Any]) -> None:
    """A weight-trained baseline trains every weight: the ticket's mask settings would be silently ignored
    (they are not even part of its config hash), so a user who gives one is told instead."""
    if not config.weight_trained:
        return
    kept = set(WEIGHT_TRAINED_TICKET_KEYS)
    ignored = sorted({bare_key(key) for key in flat} & ((set(TICKET_KEYS) | set(ALTERNATE_KEYS)) - kept))
    if ignored:
        raise ConfigError(f"a weight-trained baseline trains every weight, so {', '.join(ignored)} "
                          f"{'does' if len(ignored) == 1 else 'do'} not apply; drop "
                          f"{'it' if len(ignored) == 1 else 'them'} (of the ticket's settings it uses only "
                          f"{' and '.join(WEIGHT_TRAINED_TICKET_KEYS)})")
