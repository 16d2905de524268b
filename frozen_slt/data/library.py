"""Datasets of torchvision and PyTorch Geometric, read by the libraries' own classes (docs/method.md §13).

``torchvision.datasets:FashionMNIST`` (or ``torchvision:FashionMNIST``) and ``pyg:Planetoid`` (with
``--dataset-arg name=Cora``) are read from ``--data-dir`` by the class itself, so the files are in the
library's real layout. Two rules keep reading a folder from elsewhere safe:

* while a library class reads its files, ``pickle.load``/``pickle.loads`` build only plain data (containers,
  numbers, strings, NumPy arrays and dtypes, SciPy sparse matrices): a file naming anything else is refused
  in one line, before anything in it runs (Planetoid's raw files and CIFAR's batches are pickles);
* a PyG dataset is processed in a private folder that mirrors ``--data-dir`` without its ``processed``
  folders, so PyG never loads a processed file it did not just write, and PyG's loader of its own files is
  held to ``torch.load(weights_only=True)`` (it would otherwise fall back to unpickling anything).

Without ``--download`` a missing file is an error naming it; nothing is fetched.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import torch

from ..errors import DatasetError
from ..imports import first_line

#: (module, name) pairs a library's pickled files may name: plain data only.
_PLAIN_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("collections", "defaultdict"), ("collections", "OrderedDict"),
    ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"),
    ("_codecs", "encode"),  # how a protocol-2 pickle written by Python 3 holds bytes
} | {(module, name) for module in ("builtins", "__builtin__")
     for name in ("object", "list", "dict", "set", "frozenset", "tuple", "int", "float", "complex", "bytes", "str",
                  "bytearray", "bool")} \
  | {(f"scipy.sparse.{module}", f"{kind}_matrix") for module in ("csr", "_csr", "csc", "_csc", "coo", "_coo")
     for kind in ("csr", "csc", "coo")} \
  | {(f"scipy.sparse.{module}", f"{kind}_array") for module in ("_csr", "_csc", "_coo") for kind in ("csr", "csc", "coo")}


class PlainUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`_PLAIN_GLOBALS`; any other global is a DatasetError naming it."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _PLAIN_GLOBALS:
            raise DatasetError(f"a dataset file names {module}.{name}, which plain data never contains; refusing to "
                               "load it (a crafted pickle could run code)")
        return super().find_class(module, name)


def _plain_load(file, **options):
    return PlainUnpickler(file, **options).load()


def _plain_loads(data, /, **options):
    import io

    return PlainUnpickler(io.BytesIO(data), **options).load()


def _weights_only_load(path, map_location=None):
    return torch.load(path, map_location, weights_only=True)


@contextlib.contextmanager
def plain_reading() -> Iterator[None]:
    """Within the block, ``pickle.load(s)`` build plain data only and PyG loads its files weights-only."""
    saved = pickle.load, pickle.loads
    fs = _pyg_fs()
    saved_load = fs.torch_load if fs is not None else None
    pickle.load, pickle.loads = _plain_load, _plain_loads
    if fs is not None:
        fs.torch_load = _weights_only_load
    try:
        yield
    finally:
        pickle.load, pickle.loads = saved
        if fs is not None:
            fs.torch_load = saved_load


def _pyg_fs():
    import sys

    return sys.modules.get("torch_geometric.io.fs")


def _root(spec, label: str) -> str:
    if not spec.data_dir:
        raise DatasetError(f"dataset {label} is read from files: give --data-dir (and --download to fetch them)")
    return str(Path(spec.data_dir).expanduser())


def load_torchvision(cls: type, args: Mapping[str, Any], spec, label: str) -> dict[str, Any]:
    """The train and test splits of a torchvision dataset class as tensors, and its class count."""
    parameters = inspect.signature(cls).parameters
    if "train" in parameters:
        which = {"train": {"train": True}, "test": {"train": False}}
    elif "split" in parameters:
        which = {"train": {"split": "train"}, "test": {"split": "test"}}
    else:
        raise DatasetError(f"dataset {label}: frozen-slt reads torchvision classes that take train=True/False or "
                           "split='train'/'test'; give a callable that returns the splits instead")
    root, splits, classes = _root(spec, label), {}, None
    for split, selector in which.items():
        options = {**dict(args), **selector, "root": root}
        if "download" in parameters:
            options["download"] = spec.download
        try:
            with plain_reading():
                dataset = cls(**options)
        except DatasetError:
            raise
        except Exception as error:  # noqa: BLE001 - the library reports a missing or damaged file in many ways
            raise DatasetError(f"dataset {label} could not be read from {root} ({type(error).__name__}: "
                               f"{first_line(error)}); pass --download to fetch it (needs the internet)") from None
        splits[split] = dataset_tensors(dataset, label)
        classes = len(dataset.classes) if getattr(dataset, "classes", None) else classes
    return {"splits": splits, "num_classes": classes}


def dataset_tensors(dataset, label: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, labels) of a map-style dataset: torchvision's ``data``/``targets`` arrays where it has them (no
    per-item decoding), else every item, read once (PIL images become uint8 tensors)."""
    data, targets = getattr(dataset, "data", None), getattr(dataset, "targets", getattr(dataset, "labels", None))
    if isinstance(data, (torch.Tensor, np.ndarray)) and targets is not None and len(data) == len(targets):
        inputs = torch.as_tensor(np.asarray(data)) if isinstance(data, np.ndarray) else data
        if inputs.dim() == 4 and inputs.shape[-1] in (1, 3) and inputs.shape[1] not in (1, 3):
            inputs = inputs.permute(0, 3, 1, 2)  # channels last (CIFAR's arrays) to (N, C, H, W)
        return inputs.contiguous(), torch.as_tensor(np.asarray(targets), dtype=torch.int64).view(-1)
    items = [dataset[index] for index in range(len(dataset))]
    try:
        inputs = torch.stack([_as_tensor(item[0]) for item in items])
        labels = torch.as_tensor([int(item[1]) for item in items], dtype=torch.int64)
    except (TypeError, ValueError, RuntimeError, IndexError) as error:
        raise DatasetError(f"dataset {label}: its items must be (input, label) pairs of equal shapes "
                           f"({type(error).__name__}: {first_line(error)})") from None
    return inputs, labels


def _as_tensor(value) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if hasattr(value, "getbands"):  # a PIL image
        from torchvision.transforms.functional import pil_to_tensor

        return pil_to_tensor(value)
    return torch.as_tensor(np.asarray(value))


def load_pyg(cls: type, args: Mapping[str, Any], spec, label: str):
    """The one graph of a PyG dataset class (node classification), processed in a private folder, and its
    class count."""
    root = _root(spec, label)
    if not Path(root).is_dir():
        raise DatasetError(f"dataset {label}: --data-dir {root} is not a folder")
    allowed = spec.download

    def refuse_download(self):
        missing = [path for path in self.raw_paths if not os.path.exists(path)]
        if not allowed:
            shown = ", ".join(str(Path(path).relative_to(private)) for path in missing[:3])
            raise DatasetError(f"dataset {label} not found in {root} (missing {shown}); pass --download to fetch it "
                               "(needs the internet)")
        return cls.download(self)

    # the reader never downloads unless asked, and does not print PyG's "Processing..." (a quiet ``log``)
    reader = type(cls.__name__, (cls,), {"download": refuse_download, "log": property(lambda self: False,
                                                                                        lambda self, value: None)})
    with tempfile.TemporaryDirectory(prefix="frozen-slt-pyg-") as private:
        _mirror(Path(root), Path(private))
        try:
            with plain_reading():
                dataset = reader(root=private, **dict(args))
        except DatasetError:
            raise
        except Exception as error:  # noqa: BLE001
            raise DatasetError(f"dataset {label} could not be read from {root} ({type(error).__name__}: "
                               f"{first_line(error)})") from None
        if len(dataset) != 1:
            raise DatasetError(f"dataset {label} holds {len(dataset)} graphs; frozen-slt classifies the nodes of one graph")
        return dataset[0], int(dataset.num_classes)


def _mirror(source: Path, target: Path) -> None:
    """``target`` as ``source`` with every file a symbolic link, leaving out folders named ``processed``
    (PyG writes its own there)."""
    for directory, folders, files in os.walk(source):
        folders[:] = [name for name in folders if name != "processed"]
        here = target / Path(directory).relative_to(source)
        here.mkdir(parents=True, exist_ok=True)
        for name in files:
            (here / name).symlink_to(Path(directory, name).resolve())
