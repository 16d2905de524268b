"""Datasets: the built-in registry (what each looks like and how to load it) and datasets by import path or
library class (:mod:`frozen_slt.data.foreign`, docs/method.md §13)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch

from .. import imports
from ..errors import ConfigError, DatasetError, UnknownNameError
from ..registry import lookup
from .base import INPUT_KINDS, DataFacts, ImageData


@dataclass(frozen=True)
class DatasetEntry:
    """A dataset's declared shape: (C, H, W) for images, (features,) for graphs.

    ``load(spec, device)`` returns its :class:`ImageData` (images) or
    :class:`~frozen_slt.data.graph.GraphData` (graphs). ``recipe`` holds the dataset's default settings,
    applied before the user's.
    """

    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    input_kind: str
    description: str
    load: Callable
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


def _load_ogbn_arxiv(spec, device):
    from .ogbn_arxiv import load_ogbn_arxiv_data

    return load_ogbn_arxiv_data(spec, device)


def _load_synthetic_arxiv(spec, device):
    from .synthetic_graph import load_synthetic_graph

    return load_synthetic_graph(spec, device)


# docs/method.md §9: full batch (batch_size is not used), AdamW, wd 1e-4 (the paper's text; --weight-decay 0 is the
# authors' config), cosine, EPL allocation.
_GRAPH_RECIPE = (("optimizer", "adamw"), ("lr", 0.01), ("weight_decay", 0.0001), ("distribution", "epl"))

DATASETS: dict[str, DatasetEntry] = {
    entry.name: entry
    for entry in (
        DatasetEntry("digits", (1, 8, 8), 10, "image", "scikit-learn's handwritten digits, embedded (1,797 images)", _load_digits,
                     (("batch_size", 32), ("epochs", 20), ("lr", 0.05))),
        DatasetEntry("cifar10", (3, 32, 32), 10, "image", "CIFAR-10 from --data-dir (python pickle batches)", _load_cifar10),
        DatasetEntry("imagenet", (3, 224, 224), 1000, "image", "ImageNet as an image folder (train/, val/)", _load_imagenet,
                     (("batch_size", 256), ("weight_init", "signed_kaiming_constant"), ("scale", "dynamic"),
                      ("distribution", "epl"))),
        DatasetEntry("ogbn-arxiv", (128,), 40, "graph", "OGB's arXiv citation graph from --data-dir (ogb's raw CSV layout)",
                     _load_ogbn_arxiv, _GRAPH_RECIPE + (("epochs", 400),)),
        DatasetEntry("synthetic-arxiv", (128,), 40, "graph",
                     "stochastic block model with ogbn-arxiv's shapes, generated offline (3,000 nodes)",
                     _load_synthetic_arxiv, _GRAPH_RECIPE + (("epochs", 40),)),
    )
}


def get_dataset_entry(name: str) -> DatasetEntry:
    """The registry entry of ``name``; UnknownNameError listing the valid names otherwise."""
    return lookup(DATASETS, name, "dataset")


def is_builtin(name: str) -> bool:
    return name in DATASETS


def check_dataset_name(name: Any, args: Mapping[str, Any] | None = None) -> None:
    """Refuse, without importing anything, a name that is neither built-in nor an import path, and arguments
    given to a built-in dataset."""
    if isinstance(name, str) and name in DATASETS:
        if args:
            raise ConfigError(f"built-in dataset {name!r} takes no arguments, got dataset_args {sorted(args)}")
        return
    if not imports.is_import_path(name):
        raise UnknownNameError(f"unknown dataset {name!r}; valid: {', '.join(sorted(DATASETS))}; or "
                               "torchvision.datasets:NAME, pyg:NAME or an import path package.module:callable")
    from .foreign import check_name

    check_name(name)


def dataset_recipe(name: str) -> tuple[tuple[str, object], ...]:
    """A dataset's default settings: the registry's; the graph recipe for a PyG class; none otherwise."""
    if name in DATASETS:
        return DATASETS[name].recipe
    from .foreign import zoo_of

    zoo = zoo_of(name) if imports.is_import_path(name) else None
    return _GRAPH_RECIPE if zoo is not None and zoo[0] == "pyg" else ()


def describe_dataset(name: str, args: Mapping[str, Any] | None, spec) -> DataFacts:
    """Input shape (with ``spec.input_channels`` applied), class count and input kind of the data: from the
    registry for a built-in dataset, read from the data otherwise (once per process)."""
    from .foreign import apply_channels, describe_foreign

    check_dataset_name(name, args)
    channels = getattr(spec, "input_channels", None)
    if name in DATASETS:
        entry = DATASETS[name]
        return DataFacts(apply_channels(name, entry.input_shape, entry.input_kind, channels), entry.num_classes,
                         entry.input_kind)
    return describe_foreign(name, args or {}, spec)


def load_dataset(name: str, spec, device: torch.device, args: Mapping[str, Any] | None = None):
    """The named dataset's splits on ``device`` (``spec`` is a DataSpec): an ImageData or a GraphData;
    DatasetError when it cannot be read."""
    check_dataset_name(name, args)
    if name in DATASETS:
        return get_dataset_entry(name).load(spec, device)
    from .foreign import load_foreign

    return load_foreign(name, args or {}, spec, device)


__all__ = ["DATASETS", "INPUT_KINDS", "DataFacts", "DatasetEntry", "DatasetError", "ImageData", "check_dataset_name",
           "dataset_recipe", "describe_dataset", "get_dataset_entry", "is_builtin", "load_dataset"]
