"""A dataset by import path or by library class (docs/method.md §13).

``--dataset`` takes, besides the built-in names:

* ``torchvision.datasets:NAME`` (or ``torchvision:NAME``): a torchvision dataset class, read from
  ``--data-dir`` (:func:`frozen_slt.data.library.load_torchvision`);
* ``torch_geometric.datasets:NAME`` (or ``pyg:NAME``): a PyG dataset class holding one graph, such as
  ``Planetoid`` with ``--dataset-arg name=Cora`` (:func:`frozen_slt.data.library.load_pyg`);
* ``package.module:callable``: a function that returns the splits, imported only when the command line names
  it. It is called with ``dataset_args`` (and ``data_dir`` or ``root`` from ``--data-dir`` when its signature
  takes one) and returns either a dict with ``"train"``, ``"test"`` and optionally ``"val"``, each an
  ``(inputs, labels)`` pair of tensors or a ``torch.utils.data.Dataset`` of such pairs, or a PyG ``Data``
  with ``x``, ``edge_index``, ``y`` and ``train_mask``, ``test_mask`` (and optionally ``val_mask``).

Shapes and the class count are read from the data. A missing validation split is carved from the training
split by the split seed (20 %, docs/method.md §9). Images of uint8 pixels are scaled to [0, 1] and normalised
with the training split's per-channel mean and standard deviation; float inputs are used as they are; integer
inputs of one dimension per item are token sequences. Nothing is augmented. The raw data is read once per
process and kept (a sweep's worker reads it for its first trial only).
"""

from __future__ import annotations

import functools
import json
from typing import Any, Mapping

import torch

from .. import imports
from ..errors import DatasetError
from ..method.seeding import make_generator
from .base import DataFacts, split_indices
from .tensor_images import TensorImageData

ZOOS = {"torchvision": "torchvision.datasets", "pyg": "torch_geometric.datasets"}
_ZOO_MODULES = {module: prefix for prefix, module in ZOOS.items()}
DATASET_FLAG, ARGUMENT_FLAG = "--dataset", "--dataset-arg"
_ROOT_ARGUMENTS = ("data_dir", "root")


def zoo_of(name: str) -> tuple[str, str] | None:
    prefix, _, attribute = name.partition(":")
    if prefix in ZOOS:
        return prefix, attribute
    return (_ZOO_MODULES[prefix], attribute) if prefix in _ZOO_MODULES else None


def check_name(name: str) -> None:
    """Refuse a dataset name that is not an import path (without importing anything)."""
    zoo = zoo_of(name)
    imports.split(f"{ZOOS[zoo[0]]}:{zoo[1]}" if zoo else name, "dataset")


def is_zoo(name: str) -> bool:
    return zoo_of(name) is not None


def _resolve(name: str):
    zoo = zoo_of(name)
    if zoo is None:
        return imports.load_object(name, "dataset", DATASET_FLAG), None
    prefix, attribute = zoo
    cls = imports.load_object(f"{ZOOS[prefix]}:{attribute}", "dataset", DATASET_FLAG, trusted=True)
    if not isinstance(cls, type) or not issubclass(cls, torch.utils.data.Dataset):
        raise DatasetError(f"dataset {name!r}: {ZOOS[prefix]}.{attribute} is not a dataset class")
    return cls, prefix


@functools.lru_cache(maxsize=4)
def _raw(name: str, args: str, data_dir: str | None, download: bool) -> dict[str, Any]:
    """The data as read, before any seed: ``{"graph": (x, edge_index, y, masks)}`` or ``{"splits": {...}}``,
    with ``num_classes`` and ``kind``."""
    from types import SimpleNamespace

    spec = SimpleNamespace(data_dir=data_dir, download=download)
    arguments, label = json.loads(args), repr(name)
    function, zoo = _resolve(name)
    if zoo == "torchvision":
        from .library import load_torchvision

        return _tensor_raw(load_torchvision(function, arguments, spec, label), label)
    if zoo == "pyg":
        from .library import load_pyg

        graph, classes = load_pyg(function, arguments, spec, label)
        return _graph_raw(graph, label, classes)
    named, _ = imports.parameters(function)
    for argument in _ROOT_ARGUMENTS:
        if argument in named and argument not in arguments and data_dir:
            arguments[argument] = data_dir
            break
    result = imports.call(function, arguments, f"dataset {label}", ARGUMENT_FLAG)
    if hasattr(result, "edge_index"):
        return _graph_raw(result, label, None)
    if not isinstance(result, Mapping) or not {"train", "test"} <= set(result) or set(result) - {"train", "val", "test"}:
        raise DatasetError(f"dataset {label} returned {type(result).__name__}; it must return a dict of 'train', 'test' "
                           "(and 'val') splits, each (inputs, labels) tensors or a torch Dataset, or a PyG Data with "
                           "train/test masks")
    from .library import dataset_tensors

    splits = {key: _pair(value, label, key) if isinstance(value, (tuple, list)) else dataset_tensors(value, label)
              for key, value in result.items()}
    return _tensor_raw({"splits": splits, "num_classes": None}, label)


def _pair(value, label: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    if len(value) != 2:
        raise DatasetError(f"dataset {label}: split {split!r} must be an (inputs, labels) pair")
    inputs, labels = (torch.as_tensor(item) for item in value)
    return inputs, labels.to(torch.int64).view(-1)


def _tensor_raw(read: dict[str, Any], label: str) -> dict[str, Any]:
    splits = read["splits"]
    for key, (inputs, labels) in splits.items():
        if len(inputs) != len(labels) or len(labels) == 0:
            raise DatasetError(f"dataset {label}: split {key!r} has {len(inputs)} inputs and {len(labels)} labels")
    first = splits["train"][0]
    if first.dtype == torch.uint8 and first.dim() == 3:  # (N, H, W) grey pixels: one channel
        splits = {key: (inputs.unsqueeze(1), labels) for key, (inputs, labels) in splits.items()}
        first = splits["train"][0]
    if any(tuple(inputs.shape[1:]) != tuple(first.shape[1:]) for inputs, _ in splits.values()):
        raise DatasetError(f"dataset {label}: its splits hold inputs of different shapes")
    if first.dtype.is_floating_point or first.dtype == torch.uint8:
        kind = "image" if first.dim() == 4 else "sequence"
    elif first.dim() == 2:
        kind = "tokens"
    else:
        raise DatasetError(f"dataset {label}: integer inputs must be token sequences (one dimension per item), got "
                           f"shape {tuple(first.shape[1:])}")
    if first.dtype == torch.uint8 and kind != "image":
        raise DatasetError(f"dataset {label}: uint8 inputs must be images, got shape {tuple(first.shape[1:])}")
    labels = torch.cat([labels for _, labels in splits.values()])
    classes = read["num_classes"] or int(labels.max()) + 1
    if labels.min() < 0 or labels.max() >= classes:
        raise DatasetError(f"dataset {label}: labels outside 0..{classes - 1}")
    return {"splits": splits, "num_classes": classes, "kind": kind}


def _graph_raw(data, label: str, classes: int | None) -> dict[str, Any]:
    try:
        x, edge_index, y = data.x, data.edge_index, data.y.view(-1).to(torch.int64)
        masks = {key: getattr(data, f"{key}_mask", None) for key in ("train", "val", "test")}
    except AttributeError as error:
        raise DatasetError(f"dataset {label}: a graph must be a PyG Data with x, edge_index, y and masks ({error})") from None
    if masks["train"] is None or masks["test"] is None:
        raise DatasetError(f"dataset {label}: the graph needs train_mask and test_mask (and may have val_mask)")
    splits = {key: mask.nonzero().view(-1) for key, mask in masks.items() if mask is not None}
    return {"graph": (x.float(), edge_index, y, splits), "num_classes": classes or int(y.max()) + 1, "kind": "graph"}


def _read(name: str, args: Mapping[str, Any], spec) -> dict[str, Any]:
    if not is_zoo(name):  # data read earlier in this process is kept, but is served only while its path is allowed
        imports.require_allowed(name, "dataset", DATASET_FLAG)
    return _raw(name, json.dumps(dict(args), sort_keys=True), spec.data_dir, bool(spec.download))


def describe_foreign(name: str, args: Mapping[str, Any], spec) -> DataFacts:
    """The input shape, class count and kind of the data, read from it (with ``input_channels`` applied)."""
    raw = _read(name, args, spec)
    if raw["kind"] == "graph":
        shape = (raw["graph"][0].shape[1],)
    else:
        shape = tuple(raw["splits"]["train"][0].shape[1:])
    return DataFacts(apply_channels(name, shape, raw["kind"], spec.input_channels), raw["num_classes"], raw["kind"])


def apply_channels(name: str, shape: tuple[int, ...], kind: str, channels: int | None) -> tuple[int, ...]:
    """The input shape with ``input_channels`` applied; DatasetError when the data is not one-channel images."""
    if channels is None:
        return tuple(shape)
    if kind != "image" or shape[0] != 1:
        raise DatasetError(f"input_channels repeats the channel of one-channel images; dataset {name!r} has {kind} "
                           f"inputs of shape {'x'.join(map(str, shape))}")
    return (channels, *shape[1:])


def load_foreign(name: str, args: Mapping[str, Any], spec, device: torch.device):
    """The splits on ``device``: an ImageData-like :class:`TensorImageData` or a GraphData."""
    raw = _read(name, args, spec)
    if raw["kind"] == "graph":
        from .graph import GraphData

        x, edge_index, y, splits = raw["graph"]
        splits = dict(splits)
        if "val" not in splits:
            train, val = split_indices(len(splits["train"]), make_generator("split", spec.split_seed))
            splits["train"], splits["val"] = splits["train"][train], splits["train"][val]
        return GraphData(name, x, edge_index, y, splits, raw["num_classes"], device, source=f"dataset {name!r}")
    splits = dict(raw["splits"])
    if "val" not in splits:
        inputs, labels = splits["train"]
        train, val = split_indices(len(labels), make_generator("split", spec.split_seed))
        splits["train"], splits["val"] = (inputs[train], labels[train]), (inputs[val], labels[val])
    mean = std = None
    scale = 1.0
    if raw["kind"] == "image":
        images = splits["train"][0]
        channels = images.shape[1]
        scale = 255.0 if images.dtype == torch.uint8 else 1.0
        if images.dtype == torch.uint8:
            pixels = images.float().div_(scale).transpose(0, 1).reshape(channels, -1)
            mean, std = tuple(pixels.mean(1).tolist()), tuple(pixels.std(1).tolist())
        else:
            mean, std = (0.0,) * channels, (1.0,) * channels
    apply_channels(name, tuple(splits["train"][0].shape[1:]), raw["kind"], spec.input_channels)
    return TensorImageData(name, splits, raw["num_classes"], mean, std, scale, "none", spec.order_seed, device,
                           channels=spec.input_channels)
