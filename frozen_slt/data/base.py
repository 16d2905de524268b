"""What every dataset hands the training loop, and the error for a dataset that is missing or broken."""

from __future__ import annotations

from typing import Iterator, Protocol

import torch

from ..errors import FrozenSLTError

VAL_FRACTION = 0.2  # 40k/10k of CIFAR-10's 50k, 80/20 for ImageNet (method.md §9)


class DatasetError(FrozenSLTError):
    """A dataset that is missing, incomplete or corrupt; the message says what was expected where."""


class ImageData(Protocol):
    """Train/val/test splits ready for the loop. Training order and augmentation of epoch e depend only
    on (order_seed, e), so a run resumed at epoch e sees exactly the batches of an uninterrupted run."""

    name: str
    input_shape: tuple[int, int, int]
    num_classes: int
    device: torch.device
    split_sizes: dict[str, int]

    def train_batches(self, batch_size: int, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...

    def num_train_batches(self, batch_size: int) -> int: ...

    def eval_batches(self, split: str, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...


def split_indices(count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded (train, val) split of ``range(count)`` with ``round(0.2·count)`` validation items."""
    order = torch.randperm(count, generator=generator)
    val = round(VAL_FRACTION * count)
    return order[val:].sort().values, order[:val].sort().values
