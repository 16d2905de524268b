"""Dataset registry: what each dataset looks like (input shape, classes) and how to load it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..errors import DatasetError
from ..registry import lookup
from .base import ImageData


@dataclass(frozen=True)
class DatasetEntry:
    """A dataset's declared shape: (C, H, W) for images, (features,) for graphs.

    ``load(spec, device)`` returns its :class:`ImageData`; None for a dataset that can be planned but not
    trained yet. ``recipe`` holds the dataset's default settings, applied before the user's.
    """

    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    input_kind: str
    description: str
    load: Callable | None = None
    recipe: tuple[tuple[str, object], ...] = ()  # default settings of this dataset (docs/method.md §5, §9)


def _load_digits(spec, device):
    from .digits import load_digits_data

    return load_digits_data(spec, device)


def _load_cifar10(spec, device):
    from .cifar10 import load_cifar10_data

    return load_cifar10_data(spec, device)


def _load_imagenet(spec, device):
    from .imagenet import load_imagenet_data

    return load_imagenet_data(spec, device)


DATASETS: dict[str, DatasetEntry] = {
    entry.name: entry
    for entry in (
        DatasetEntry("digits", (1, 8, 8), 10, "image", "scikit-learn's handwritten digits, embedded (1,797 images)", _load_digits,
                     (("batch_size", 32), ("epochs", 20), ("lr", 0.05))),
        DatasetEntry("cifar10", (3, 32, 32), 10, "image", "CIFAR-10 from --data-dir (python pickle batches)", _load_cifar10),
        DatasetEntry("imagenet", (3, 224, 224), 1000, "image", "ImageNet as an image folder (train/, val/)", _load_imagenet,
                     (("batch_size", 256), ("weight_init", "signed_kaiming_constant"), ("scale", "dynamic"),
                      ("distribution", "epl"))),
        DatasetEntry("ogbn-arxiv", (128,), 40, "graph", "OGB citation graph (shape only: graph training is not built yet)",
                     None, (("optimizer", "adamw"), ("lr", 0.01), ("weight_decay", 0.0), ("epochs", 400),
                            ("distribution", "epl"))),
    )
}


def get_dataset_entry(name: str) -> DatasetEntry:
    """The registry entry of ``name``; UnknownNameError listing the valid names otherwise."""
    return lookup(DATASETS, name, "dataset")


def load_dataset(name: str, spec, device: torch.device) -> ImageData:
    """The named dataset's splits on ``device`` (``spec`` is a DataSpec); DatasetError when it cannot be read."""
    entry = get_dataset_entry(name)
    if entry.load is None:
        raise DatasetError(f"dataset {name!r} is a {entry.input_kind} dataset: {entry.input_kind} training is not "
                           "available yet; `frozen-slt plan` supports it")
    return entry.load(spec, device)


__all__ = ["DATASETS", "DatasetEntry", "DatasetError", "ImageData", "get_dataset_entry", "load_dataset"]
