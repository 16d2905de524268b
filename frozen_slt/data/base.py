"""What every dataset hands the training loop, and the error for a dataset that is missing or broken."""

from __future__ import annotations

from typing import Iterator, NamedTuple, Protocol

import torch

from ..errors import DatasetError

VAL_FRACTION = 0.2  # 40k/10k of CIFAR-10's 50k, 80/20 for ImageNet (docs/method.md §9)
EVAL_SPLITS = ("val", "test")



#: What a model may take: images (C, H, W), graphs (features,), float sequences (any other shape) and
#: token sequences (int64). A model by import path is checked on zeros of its data's kind and shape.
INPUT_KINDS = ("image", "graph", "sequence", "tokens")


class DataFacts(NamedTuple):
    """What the model needs to know of its data, read from the data (or the registry), never typed twice:
    the shape of one input (C, H, W for images, (features,) for a graph's nodes), the class count, the kind."""

    input_shape: tuple[int, ...]
    num_classes: int
    input_kind: str

    def shape_text(self) -> str:
        return "x".join(map(str, self.input_shape))


class ImageData(Protocol):
    """Train/val/test splits ready for the loop.

    ``train_batches(batch_size, epoch)`` yields (float32 normalised images, int64 labels) on ``device``,
    shuffled and augmented by the dataset's recipe; the last partial batch is kept. The order and the
    augmentation of epoch e depend only on (order_seed, e), never on earlier calls, so a run resumed at
    epoch e sees exactly the batches of an uninterrupted run. ``eval_batches(split, batch_size)`` with
    split "val" or "test" yields the split in a fixed order, without augmentation.
    """

    name: str
    input_shape: tuple[int, int, int]
    num_classes: int
    device: torch.device
    split_sizes: dict[str, int]

    def train_batches(self, batch_size: int, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...

    def num_train_batches(self, batch_size: int) -> int: ...

    def eval_batches(self, split: str, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...


def split_indices(count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded (train, val) split of ``range(count)`` with ``round(0.2·count)`` validation items, each sorted."""
    order = torch.randperm(count, generator=generator)
    val = round(VAL_FRACTION * count)
    return order[val:].sort().values, order[:val].sort().values


def check_batch_size(batch_size: int) -> None:
    """Refuse a batch size that is not a positive integer (a zero would loop forever or divide by zero)."""
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")


def check_eval_split(split: str) -> None:
    """Refuse anything but "val" and "test": the training split is only served shuffled and augmented."""
    if split not in EVAL_SPLITS:
        raise ValueError(f"unknown evaluation split {split!r}; valid: {', '.join(EVAL_SPLITS)}")


def locate_or_download(data_dir: str | None, download: bool, find, fetch):
    """``find(data_dir)``, or, when that raises DatasetError and ``download`` is set, ``fetch(data_dir)``
    and then ``find(data_dir)`` again: a dataset is downloaded only when it is missing and asked for."""
    try:
        return find(data_dir)
    except DatasetError:
        if not download:
            raise
    fetch(data_dir)
    return find(data_dir)
