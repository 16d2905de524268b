"""How deeply a file from elsewhere may nest its arrays and tables, checked before a recursive parser reads it.

``json``, ``tomllib`` and PyYAML's composer recurse once per level of nesting, so ``'[' * 100000`` ends in
a RecursionError (or worse, a crash of the interpreter with a deeper stack). Every reader of such a file
(config files, a run's ``config.json`` and ``result.json``, a ticket's header) first measures the nesting
with a scan that does not recurse, and refuses more levels than its format needs in one line. Brackets
inside strings and comments do not count. A RecursionError that still escapes a parser is caught as a
backstop and reported the same way; :func:`check_data_depth` checks the parsed value (TOML's dotted keys
and table headers nest without brackets; YAML aliases can make a value contain itself).
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable

from .errors import FrozenSLTError

# Tokens that matter for nesting: strings and comments (skipped whole) and the brackets outside them.
_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')
_TOML_TOKENS = re.compile(r'"""[\s\S]*?"""|\'\'\'[\s\S]*?\'\'\'|"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'|#[^\n]*|[\[\]{}]')


def _bracket_depth_exceeds(tokens: re.Pattern, text: str, limit: int) -> bool:
    depth = 0
    for match in tokens.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > limit:
                return True
        elif token in "]}":
            depth = max(depth - 1, 0)
    return False


def _yaml_depth_exceeds(text: str, limit: int) -> bool:
    """Nesting of YAML's block and flow collections, from the parser's events (which it produces without recursion)."""
    import yaml

    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > limit:
                return True
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
    return False


def _refusal(what: str, limit: int, needs: str) -> str:
    return f"{what} nests arrays or tables more than {limit} deep, deeper than its format needs ({needs})"


def check_text_depth(text: str, kind: str, limit: int, what: str, needs: str,
                     error: type[FrozenSLTError] = FrozenSLTError) -> None:
    """Raise ``error`` when ``text`` (``kind``: json, toml or yaml) nests containers more than ``limit`` deep.

    ``what`` names the file in the message, ``needs`` says what its format holds. A YAML file that does not
    parse is left to the caller's parser to report.
    """
    if kind == "yaml":
        import yaml

        try:
            exceeds = _yaml_depth_exceeds(text, limit)
        except yaml.YAMLError:
            return
    else:
        exceeds = _bracket_depth_exceeds(_JSON_TOKENS if kind == "json" else _TOML_TOKENS, text, limit)
    if exceeds:
        raise error(_refusal(what, limit, needs))


def check_data_depth(value: Any, limit: int, what: str, needs: str, error: type[FrozenSLTError] = FrozenSLTError) -> None:
    """Raise ``error`` when the parsed ``value`` nests dicts and lists more than ``limit`` deep (without recursion,
    and finite even for a value that contains itself)."""
    pending = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, (dict, list)):
            if depth + 1 > limit:
                raise error(_refusal(what, limit, needs))
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)


def parse_limited(parse: Callable[[], Any], limit: int, what: str, needs: str,
                  error: type[FrozenSLTError] = FrozenSLTError) -> Any:
    """``parse()``, whose input was checked by :func:`check_text_depth`; a RecursionError it still raises
    (a nesting the scan did not see) becomes the same one-line refusal."""
    try:
        value = parse()
    except RecursionError:
        raise error(_refusal(what, limit, needs)) from None
    check_data_depth(value, limit, what, needs, error)
    return value


def load_json(text: str, limit: int, what: str, needs: str, error: type[FrozenSLTError] = FrozenSLTError, **options) -> Any:
    """``json.loads(text, **options)`` for a file from elsewhere, refusing more than ``limit`` levels of nesting."""
    check_text_depth(text, "json", limit, what, needs, error)
    return parse_limited(lambda: json.loads(text, **options), limit, what, needs, error)
