"""The one validator toolkit of the project's settings: the experiment's specs and the sweeps' specs use it.

Every check takes ``where`` (the setting as the user names it: ``lr``, ``[grid] sparsity``), the value
and the error class of its caller (:class:`~frozen_slt.errors.ConfigError` by default,
``SweepConfigError`` for a sweep file), and returns the value as the field keeps it (a float for a
number, a tuple for a list), or raises one line in one of two forms:

    <where> must be <what is allowed>, got <the value>
    unknown <where> <the value>; valid: <the choices, sorted>
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Iterable, NoReturn

from ..errors import ConfigError, FrozenSLTError

Error = type[FrozenSLTError]


def fail(where: str, what: str, value: Any, error: Error = ConfigError) -> NoReturn:
    raise error(f"{where} must be {what}, got {value!r}")


def is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite real number (numpy scalars included), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def boolean(where: str, value: Any, error: Error = ConfigError) -> bool:
    if not isinstance(value, bool):
        fail(where, "true or false", value, error)
    return value


def integer(where: str, value: Any, minimum: int = 0, maximum: int | None = None, *, shown: str | None = None,
            why: str = "", error: Error = ConfigError) -> int:
    """An integer >= ``minimum`` (and <= ``maximum``, written ``shown`` in the message, for which ``why`` gives
    the reason)."""
    if maximum is None:
        if not is_integer(value) or value < minimum:
            fail(where, f"an integer >= {minimum}", value, error)
    elif not is_integer(value) or not minimum <= value <= maximum:
        fail(where, f"an integer in [{minimum}, {shown or maximum}]" + (f" ({why})" if why else ""), value, error)
    return value


def number(where: str, value: Any, minimum: float | None = None, *, strict: bool = False,
           error: Error = ConfigError) -> float:
    """A finite number (> or >= ``minimum`` when given), as a float."""
    if not is_number(value) or (minimum is not None and (value < minimum or (strict and value == minimum))):
        bound = "" if minimum is None else f" {'>' if strict else '>='} {minimum:g}"
        fail(where, f"a finite number{bound}", value, error)
    return float(value)


def as_float(where: str, value: Any, error: Error = ConfigError) -> float:
    """Any real number (ints and numpy scalars too, infinities and NaN included: the caller bounds it) as a float."""
    if isinstance(value, (bool, str)) or not hasattr(value, "__float__"):
        fail(where, "a number", value, error)
    return float(value)


def choice(where: str, value: Any, choices: Iterable[str], error: Error = ConfigError) -> str:
    valid = sorted(choices)
    if not isinstance(value, str) or value not in valid:
        raise error(f"unknown {where} {value!r}; valid: {', '.join(valid)}")
    return value


def text(where: str, value: Any, *, optional: bool = True, what: str = "a non-empty string",
         error: Error = ConfigError) -> str | None:
    """A non-empty string (or None when ``optional``)."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        fail(where, what + (" or unset" if optional else ""), value, error)
    return value


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, str)) or is_number(value)


def arguments(where: str, value: Any, error: Error = ConfigError) -> dict[str, Any]:
    """Keyword arguments of a callable: a table whose keys are Python names and whose values are numbers,
    strings, booleans, null, or lists of those (what a settings file, a ticket header and ``--model-arg
    key=value`` can all hold, one level deeper than a setting). Returned as a new dict, lists as lists."""
    if not isinstance(value, dict):
        fail(where, "a table of keyword arguments", value, error)
    out = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise error(f"{where}: {key!r} is not an argument name (a Python identifier)")
        inner = list(item) if isinstance(item, (list, tuple)) else [item]
        if not all(_plain(part) for part in inner):
            raise error(f"{where}: argument {key} must be a number, string, boolean or null, or a list of those, "
                        f"got {item!r}")
        out[key] = list(item) if isinstance(item, (list, tuple)) else item
    return out


def distinct_list(where: str, value: Any, accepts: Callable[[Any], bool], what: str, error: Error = ConfigError) -> tuple:
    """A non-empty list of distinct items that ``accepts``; ``what`` describes the items (``numbers in [0, 1]``)."""
    if not isinstance(value, (list, tuple)) or not value or not all(accepts(item) for item in value) \
            or len(set(value)) != len(value):
        fail(where, f"a non-empty list of distinct {what}", value, error)
    return tuple(value)


def fraction(value: Any) -> bool:
    """Whether ``value`` is a number in [0, 1] (for :func:`distinct_list`)."""
    return is_number(value) and 0 <= value <= 1
