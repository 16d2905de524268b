"""CIFAR-10 read from its python-version files (``cifar-10-batches-py``), held on the training device.

Split (docs/method.md §9): the 50k training images split 40k/10k train/val by the split seed; the official
10k test batch as test. Training augmentation: random crop 32 with padding 4 and horizontal flip;
normalisation with the recipe's mean and std.

The files are read here rather than through torchvision's CIFAR10 class, which checks the MD5 sums of
the real files and so cannot read the tiny real-format fixtures of the tests; torchvision is used only
to download. The format is Python pickles (the dataset's own format), so only read files you trust.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np
import torch

from ..specs import DataSpec
from ..seeding import make_generator
from ..errors import DatasetError
from .base import split_indices
from .tensor_images import TensorImageData

log = logging.getLogger(__name__)
FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
CLASSES = 10
MEAN, STD = (0.491, 0.482, 0.447), (0.247, 0.243, 0.262)
HOW_TO_GET = "pass --download to fetch it (needs the internet) or --data-dir to point at an existing copy"


def _root(data_dir: str | None) -> Path:
    return Path(data_dir or "data").expanduser()


def find_folder(data_dir: str | None) -> Path:
    """The directory holding the batch files: ``data_dir/cifar-10-batches-py`` or ``data_dir`` itself."""
    root = _root(data_dir)
    needed = TRAIN_FILES + (TEST_FILE,)
    for candidate in (root / FOLDER, root):
        if all((candidate / name).is_file() for name in needed):
            return candidate
    # Report against the folder the user most likely meant: the inner one unless data_dir already is it.
    expected = root if root.name == FOLDER else root / FOLDER
    missing = [name for name in needed if not (expected / name).is_file()]
    raise DatasetError(
        f"CIFAR-10 not found: expected {expected}/ with data_batch_1..5 and test_batch "
        f"(missing: {', '.join(missing)}); {HOW_TO_GET}"
    )


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 from one pickled batch file; DatasetError if corrupt."""
    try:
        with open(path, "rb") as handle:
            batch = pickle.load(handle, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch[b"labels"], dtype=np.int64).reshape(-1)
    except Exception as error:  # noqa: BLE001 - unpickling damaged bytes can raise almost any exception type
        raise DatasetError(f"CIFAR-10 file {path} is corrupt or not a CIFAR-10 batch "
                           f"({type(error).__name__}: {error}); restore it or delete it and pass --download") from None
    if len(data) != len(labels):
        raise DatasetError(f"CIFAR-10 file {path} is corrupt: {len(data)} images but {len(labels)} labels")
    if len(labels) and (labels.min() < 0 or labels.max() >= CLASSES):
        raise DatasetError(f"CIFAR-10 file {path} is corrupt: labels outside 0..{CLASSES - 1}")
    return data, labels


def download(data_dir: str | None) -> None:
    """Fetch and extract the archive into ``data_dir`` with torchvision (needs the internet)."""
    from torchvision.datasets import CIFAR10

    root = _root(data_dir)
    log.info("downloading CIFAR-10 into %s", root)
    try:
        CIFAR10(str(root), train=True, download=True)
    except (OSError, RuntimeError) as error:
        raise DatasetError(f"could not download CIFAR-10 into {root} ({error}); "
                           "pass --data-dir to point at an existing copy") from None


def _locate(spec: DataSpec) -> Path:
    """The batch folder, downloading only when it is missing and ``spec.download`` asks for it."""
    try:
        return find_folder(spec.data_dir)
    except DatasetError:
        if not spec.download:
            raise
    download(spec.data_dir)
    return find_folder(spec.data_dir)


def load_cifar10_data(spec: DataSpec, device: torch.device) -> TensorImageData:
    """CIFAR-10's train/val/test splits as uint8 tensors on ``device``; DatasetError when missing or corrupt."""
    folder = _locate(spec)
    parts = [read_batch(folder / name) for name in TRAIN_FILES]
    images = torch.from_numpy(np.concatenate([part[0] for part in parts]))
    labels = torch.from_numpy(np.concatenate([part[1] for part in parts]))
    test_images, test_labels = read_batch(folder / TEST_FILE)
    train, val = split_indices(len(labels), make_generator("split", spec.split_seed))
    splits = {
        "train": (images[train], labels[train]),
        "val": (images[val], labels[val]),
        "test": (torch.from_numpy(test_images), torch.from_numpy(test_labels)),
    }
    log.info("CIFAR-10 from %s: %s", folder, {key: len(value[1]) for key, value in splits.items()})
    augment = "crop_flip" if spec.augment else "none"
    return TensorImageData("cifar10", splits, CLASSES, MEAN, STD, 255.0, augment, spec.order_seed, device)
