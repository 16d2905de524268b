"""The random distributions of weights and scores (docs/method.md §5), drawn from a given generator.

Plain functions of a shape and a generator, with nothing else imported, so that the configuration can
name the valid choices without loading the masked layers.
"""

from __future__ import annotations

import math
from typing import Callable

import torch


def _fan_in(shape: tuple[int, ...]) -> int:
    """C_in·k_h·k_w for a convolution weight, in_features for a linear one."""
    return math.prod(shape[1:])


def kaiming_uniform(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    bound = math.sqrt(6.0 / _fan_in(shape))
    return torch.empty(shape).uniform_(-bound, bound, generator=generator)


def kaiming_normal(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    return torch.empty(shape).normal_(0.0, math.sqrt(2.0 / _fan_in(shape)), generator=generator)


def signed_kaiming_constant(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    signs = torch.randint(0, 2, shape, generator=generator, dtype=torch.int8)
    return (signs.float() * 2.0 - 1.0) * math.sqrt(2.0 / _fan_in(shape))


INITS: dict[str, Callable[[tuple[int, ...], torch.Generator], torch.Tensor]] = {
    "kaiming_uniform": kaiming_uniform,
    "kaiming_normal": kaiming_normal,
    "signed_kaiming_constant": signed_kaiming_constant,
}
