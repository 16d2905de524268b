"""CIFAR-10 read from its python-version files (``cifar-10-batches-py``), held on the training device.

Split (docs/method.md §9): the 50k training images split 40k/10k train/val by the split seed; the official
10k test batch as test. Training augmentation: random crop 32 with padding 4 and horizontal flip;
normalisation with the recipe's mean and std.

The files are read here rather than through torchvision's CIFAR10 class, which checks the MD5 sums of
the real files and so cannot read the tiny real-format fixtures of the tests; torchvision is used only
to download. The format is Python pickles (the dataset's own format: Python 2 pickles of a dict of byte
strings, a list of int labels and a numpy uint8 array). A pickle can name any function to call while
loading, so the batches are read by :class:`BatchUnpickler`, which builds only those types: a file that
names anything else is refused before anything in it runs.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from numpy._core.multiarray import _reconstruct
from numpy._core.numeric import _frombuffer

from ..errors import DatasetError
from ..method.seeding import make_generator
from .base import locate_or_download, split_indices
from .tensor_images import TensorImageData

if TYPE_CHECKING:  # the configuration sits above the data; this is for the annotations only
    from ..config.specs import DataSpec

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


#: The only globals a batch may name: numpy's array and dtype reconstruction, under numpy 1's module
#: names (the real files) and numpy 2's (files pickled since). Dicts, lists, ints and byte strings need none.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class BatchUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`_ALLOWED_GLOBALS`, so loading a crafted file runs no code of its
    choosing; any other global is a :class:`DatasetError` naming it."""

    def __init__(self, handle, source: Path):
        super().__init__(handle, encoding="bytes")  # Python 2 str (data, names) -> bytes, as the format expects
        self.source = source

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise DatasetError(f"CIFAR-10 file {self.source} names {module}.{name}, which a CIFAR-10 batch never "
                               "contains; refusing to load it (a crafted pickle could run code)") from None


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 from one pickled batch file; DatasetError if corrupt
    or if it names anything but numpy array reconstruction (nothing in it is run)."""
    try:
        with open(path, "rb") as handle:
            batch = BatchUnpickler(handle, path).load()
        data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch[b"labels"], dtype=np.int64).reshape(-1)
    except DatasetError:
        raise
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



def load_cifar10_data(spec: DataSpec, device: torch.device) -> TensorImageData:
    """CIFAR-10's train/val/test splits as uint8 tensors on ``device``; DatasetError when missing or corrupt."""
    folder = locate_or_download(spec.data_dir, spec.download, find_folder, download)
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
