"""CIFAR-10 read from its python-version files (``cifar-10-batches-py``), held on the training device.

Split (method.md §9): the 50k training images split 40k/10k train/val by the split seed; the official
10k test batch as test. Training augmentation: random crop 32 with padding 4 and horizontal flip.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from ..config import DataSpec
from ..seeding import make_generator
from .base import DatasetError, split_indices
from .tensor_images import TensorImageData

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
MEAN, STD = (0.491, 0.482, 0.447), (0.247, 0.243, 0.262)


def find_folder(data_dir: str | None) -> Path:
    """The directory holding the batch files: ``data_dir/cifar-10-batches-py`` or ``data_dir`` itself."""
    root = Path(data_dir or "data").expanduser()
    for candidate in (root / FOLDER, root):
        if all((candidate / name).is_file() for name in TRAIN_FILES + (TEST_FILE,)):
            return candidate
    missing = [name for name in TRAIN_FILES + (TEST_FILE,) if not (root / FOLDER / name).is_file()]
    raise DatasetError(
        f"CIFAR-10 not found: expected {root / FOLDER}/ with data_batch_1..5 and test_batch "
        f"(missing: {', '.join(missing)}); pass --download to fetch it (needs the internet) "
        "or --data-dir to point at an existing copy"
    )


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) from one pickled batch file."""
    try:
        with open(path, "rb") as handle:
            batch = pickle.load(handle, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (OSError, EOFError, pickle.UnpicklingError, KeyError, ValueError, TypeError) as error:
        raise DatasetError(f"CIFAR-10 file {path} is corrupt or not a CIFAR-10 batch ({type(error).__name__}); "
                           "delete it and pass --download, or restore it") from None
    if len(data) != len(labels):
        raise DatasetError(f"CIFAR-10 file {path} has {len(data)} images but {len(labels)} labels")
    return data, labels


def download(data_dir: str | None) -> None:
    from torchvision.datasets import CIFAR10

    root = Path(data_dir or "data").expanduser()
    try:
        CIFAR10(str(root), train=True, download=True)
    except (OSError, RuntimeError) as error:
        raise DatasetError(f"could not download CIFAR-10 into {root}: {error}") from None


def load_cifar10_data(spec: DataSpec, device: torch.device) -> TensorImageData:
    if spec.download:
        download(spec.data_dir)
    folder = find_folder(spec.data_dir)
    parts = [read_batch(folder / name) for name in TRAIN_FILES]
    images = torch.from_numpy(np.concatenate([p[0] for p in parts]))
    labels = torch.from_numpy(np.concatenate([p[1] for p in parts]))
    test_images, test_labels = read_batch(folder / TEST_FILE)
    train, val = split_indices(len(labels), make_generator("split", spec.split_seed))
    splits = {
        "train": (images[train], labels[train]),
        "val": (images[val], labels[val]),
        "test": (torch.from_numpy(test_images), torch.from_numpy(test_labels)),
    }
    augment = "crop_flip" if spec.augment else "none"
    return TensorImageData("cifar10", splits, 10, MEAN, STD, 255.0, augment, spec.order_seed, device)
