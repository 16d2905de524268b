"""ImageNet as an image folder: ``<data_dir>/train/<class>/*`` and ``<data_dir>/val/<class>/*``.

Split (docs/method.md §9): train split 80/20 into train/val by the split seed; the official val set is the
test set. Transforms: RandomResizedCrop 224 + flip for training; resize 256 + centre crop 224 to evaluate;
ImageNet mean/std. Images are decoded by DataLoader worker processes and moved to the device per batch.

Unreadable images: scanning the folders checks that every image is a non-empty regular file that can be
opened for reading (after following links), without decoding it, which for ImageNet's 1.3 million files
would take hours; an image that still fails to decode later, in a DataLoader worker or not, stops the run
with a :class:`DatasetError` naming the file.

Determinism: the sampler yields (index, epoch) pairs in the order of ``make_generator("order",
order_seed, epoch)``, and the random transform of image i in epoch e is seeded from (order_seed, e, i)
in whichever process decodes it. So the batches of an epoch depend on nothing but (order_seed, epoch):
not on earlier epochs, not on the number of workers, and not on worker seeds (which is what lets the
workers persist across epochs).
"""

from __future__ import annotations

import logging
import math
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, NamedTuple

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

from ..errors import DatasetError
from ..method.seeding import derive_seed, make_generator
from .base import check_batch_size, check_eval_split, split_indices

if TYPE_CHECKING:  # the configuration sits above the data; this is for the annotations only
    from ..config.specs import DataSpec

log = logging.getLogger(__name__)
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CLASSES = 1000
LAYOUT = "{root}/train/<class>/*.JPEG and {root}/val/<class>/*.JPEG"


def _transforms():
    from torchvision import transforms

    normalise = transforms.Normalize(MEAN, STD)
    train = transforms.Compose([transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(),
                                transforms.ToTensor(), normalise])
    evaluation = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224),
                                     transforms.ToTensor(), normalise])
    return train, evaluation


def scan_folder(root: Path, split: str):
    """The ImageFolder of ``root/split`` (no transform; used for its samples and classes) or DatasetError."""
    from torchvision.datasets import ImageFolder

    path = root / split
    if not path.is_dir():
        raise DatasetError(f"ImageNet not found: expected class folders under {path} (layout "
                           f"{LAYOUT.format(root=root)}); pass --data-dir to point at it")
    try:
        folder = ImageFolder(str(path))
    except FileNotFoundError as error:
        raise DatasetError(f"ImageNet {split} folder {path} holds no images in class folders ({error}); "
                           f"expected {LAYOUT.format(root=root)}") from None
    check_readable([sample for sample, _ in folder.samples], path)
    return folder


def _unreadable_reason(path: str) -> str | None:
    """Why the image file at ``path`` cannot be read, or None: one stat and one access check, no decoding."""
    try:
        info = os.stat(path)  # follows links: a dangling one is missing
    except OSError as error:
        return "a link to nothing" if os.path.islink(path) else (error.strerror or str(error))
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if info.st_size == 0:
        return "empty"
    return None if os.access(path, os.R_OK) else "not readable"


def check_readable(paths: list[str], folder: Path) -> None:
    """DatasetError naming the first of ``paths`` that is not a non-empty, readable regular file, and how many are not."""
    bad = [(path, reason) for path in paths if (reason := _unreadable_reason(path)) is not None]
    if bad:
        (path, reason), more = bad[0], f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise DatasetError(f"image {path} in {folder} cannot be read: {reason}{more}; fix or remove it")


class Unreadable(NamedTuple):
    """What a worker hands back for an image that does not decode: a value, not an exception, whose
    traceback a DataLoader worker would otherwise wrap into a many-line message."""

    path: str
    reason: str


def collate(items: list) -> object:
    """``default_collate``, except that a batch with an :class:`Unreadable` item is that item."""
    return next((item for item in items if isinstance(item, Unreadable)), None) or default_collate(items)


class FolderSplit(Dataset):
    """Some (path, label) samples of an image folder with one transform.

    A key is a position (no seeding: the evaluation transform is deterministic) or a (position, epoch)
    pair, whose transform draws are seeded from (order_seed, epoch, position) without touching the
    process's own random state.
    """

    def __init__(self, samples: list[tuple[str, int]], transform, order_seed: int):
        self.samples, self.transform, self.order_seed = samples, transform, order_seed

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        if not isinstance(key, tuple):
            return self._load(key)
        position, epoch = key
        with torch.random.fork_rng(devices=[]):
            # Only the CPU generator: torch.manual_seed would also reseed CUDA, which fork_rng([]) does not restore.
            torch.random.default_generator.manual_seed(derive_seed("augment", self.order_seed, epoch, position))
            return self._load(position)

    def _load(self, position: int) -> tuple[torch.Tensor, int] | Unreadable:
        from PIL import Image
        from torchvision.datasets.folder import default_loader

        path, label = self.samples[position]
        try:
            image = default_loader(path)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:  # what PIL raises for bad files
            return Unreadable(path, " ".join(str(error).split()) or type(error).__name__)
        return self.transform(image), label


class EpochSampler(Sampler):
    """(position, epoch) pairs of one epoch, shuffled by ``make_generator("order", order_seed, epoch)``.

    Set ``epoch`` before iterating; it is read once when the iteration starts.
    """

    def __init__(self, count: int, order_seed: int):
        self.count, self.order_seed, self.epoch = count, order_seed, 0

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        order = torch.randperm(self.count, generator=make_generator("order", self.order_seed, epoch))
        return iter([(position, epoch) for position in order.tolist()])


class FolderImageData:
    """ImageNet splits read through DataLoaders (one per split and batch size, workers kept alive when
    ``num_workers > 0``) and moved to the device batch by batch. Iterate one training epoch at a time:
    with persistent workers, starting an epoch abandons the previous one."""

    name = "imagenet"
    input_shape = (3, 224, 224)
    num_classes = CLASSES

    def __init__(self, spec: DataSpec, device: torch.device | str):
        if spec.download:
            raise DatasetError("ImageNet cannot be downloaded automatically; place it as an image folder "
                               "(train/<class>/*, val/<class>/*) and pass --data-dir")
        root = Path(spec.data_dir or "data/imagenet").expanduser()
        train_folder, test_folder = scan_folder(root, "train"), scan_folder(root, "val")
        if train_folder.classes != test_folder.classes:
            raise DatasetError(f"ImageNet train/ and val/ under {root} must have the same class folders: "
                               f"{len(train_folder.classes)} in train/, {len(test_folder.classes)} in val/")
        if len(train_folder.classes) != CLASSES:
            log.warning("ImageNet folder %s has %d classes, not %d; the model keeps %d outputs",
                        root, len(train_folder.classes), CLASSES, CLASSES)
        train, val = split_indices(len(train_folder.samples), make_generator("split", spec.split_seed))
        train_transform, eval_transform = _transforms()
        self.subsets = {
            "train": FolderSplit([train_folder.samples[i] for i in train.tolist()], train_transform, spec.order_seed),
            "val": FolderSplit([train_folder.samples[i] for i in val.tolist()], eval_transform, spec.order_seed),
            "test": FolderSplit(list(test_folder.samples), eval_transform, spec.order_seed),
        }
        self.split_sizes = {key: len(subset) for key, subset in self.subsets.items()}
        self.device, self.num_workers = torch.device(device), spec.num_workers
        self._loaders: dict[tuple[str, int], DataLoader] = {}

    def _loader(self, split: str, batch_size: int) -> DataLoader:
        key = (split, batch_size)
        if key not in self._loaders:
            dataset = self.subsets[split]
            sampler = EpochSampler(len(dataset), dataset.order_seed) if split == "train" else None
            # A private generator: the loader draws its worker base seed from it each epoch, which would
            # otherwise consume the global RNG. The base seed itself is unused (items are seeded).
            self._loaders[key] = DataLoader(
                dataset, batch_size=batch_size, sampler=sampler, num_workers=self.num_workers,
                pin_memory=self.device.type == "cuda", persistent_workers=self.num_workers > 0,
                generator=torch.Generator().manual_seed(0), collate_fn=collate,
            )
        return self._loaders[key]

    def _to_device(self, loader: DataLoader) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for batch in loader:
            if isinstance(batch, Unreadable):
                raise DatasetError(f"image {batch.path} cannot be decoded ({batch.reason}); fix or remove it")
            images, labels = batch
            yield images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)

    def num_train_batches(self, batch_size: int) -> int:
        check_batch_size(batch_size)
        return math.ceil(self.split_sizes["train"] / batch_size)

    def train_batches(self, batch_size: int, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Shuffled, randomly transformed batches of ``epoch``; a pure function of (order_seed, epoch)."""
        check_batch_size(batch_size)
        loader = self._loader("train", batch_size)
        loader.sampler.epoch = epoch
        yield from self._to_device(loader)

    def eval_batches(self, split: str, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The ``split`` ("val" or "test") in folder order with the evaluation transform."""
        check_eval_split(split)
        check_batch_size(batch_size)
        yield from self._to_device(self._loader(split, batch_size))


def load_imagenet_data(spec: DataSpec, device: torch.device) -> FolderImageData:
    """The image-folder splits described above; DatasetError when the folders are missing or empty."""
    return FolderImageData(spec, device)
