"""Plain-mapping registries whose lookup errors list the valid names."""

from __future__ import annotations

from typing import Mapping, TypeVar

from .errors import FrozenSLTError

T = TypeVar("T")


class UnknownNameError(FrozenSLTError):
    """A name that is not in a registry; the message lists the valid names."""


def lookup(registry: Mapping[str, T], name: str, what: str) -> T:
    """Return ``registry[name]`` or raise :class:`UnknownNameError` naming ``what`` and the valid names."""
    try:
        return registry[name]
    except (KeyError, TypeError):
        valid = ", ".join(sorted(registry))
        raise UnknownNameError(f"unknown {what} {name!r}; valid: {valid}") from None
