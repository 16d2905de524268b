"""Plain-mapping registries whose lookup errors list the valid names."""

from __future__ import annotations

from typing import Mapping, TypeVar

from .errors import UnknownNameError

T = TypeVar("T")



def lookup(registry: Mapping[str, T], name: str, what: str) -> T:
    """Return ``registry[name]`` or raise :class:`UnknownNameError` naming ``what`` and the valid names."""
    try:
        return registry[name]
    except (KeyError, TypeError):
        valid = ", ".join(sorted(registry))
        raise UnknownNameError(f"unknown {what} {name!r}; valid: {valid}") from None
