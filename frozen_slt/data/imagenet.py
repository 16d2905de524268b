"""ImageNet as an image folder: ``<data_dir>/train/<class>/*`` and ``<data_dir>/val/<class>/*``.

Split (method.md §9): train split 80/20 into train/val by the split seed; the official val set is the
test set. Transforms: RandomResizedCrop 224 + flip for training; resize 256 + centre crop 224 to evaluate.
Decoding runs in worker processes; the shuffle and the workers' random transforms of epoch e are seeded
from (order_seed, e).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Iterator

import torch
from torch.utils.data import DataLoader, Subset

from ..config import DataSpec
from ..seeding import derive_seed, make_generator
from .base import DatasetError, split_indices

log = logging.getLogger(__name__)
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CLASSES = 1000


def _transforms():
    from torchvision import transforms

    normalise = transforms.Normalize(MEAN, STD)
    train = transforms.Compose([transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(),
                                transforms.ToTensor(), normalise])
    evaluation = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(), normalise])
    return train, evaluation


def _folder(root: Path, split: str, transform):
    from torchvision.datasets import ImageFolder

    path = root / split
    if not path.is_dir():
        raise DatasetError(f"ImageNet not found: expected class folders under {path} (ImageFolder layout "
                           f"{root}/train/<class>/*.JPEG and {root}/val/<class>/*.JPEG); pass --data-dir")
    try:
        return ImageFolder(str(path), transform=transform)
    except (FileNotFoundError, RuntimeError) as error:
        raise DatasetError(f"ImageNet {split} folder {path} holds no images in class folders: {error}") from None


class FolderImageData:
    """ImageNet splits read through DataLoaders and moved to the device batch by batch."""

    name = "imagenet"
    input_shape = (3, 224, 224)
    num_classes = CLASSES

    def __init__(self, spec: DataSpec, device: torch.device):
        if spec.download:
            raise DatasetError("ImageNet cannot be downloaded automatically; place it as an image folder "
                               "(train/<class>/, val/<class>/) and pass --data-dir")
        root = Path(spec.data_dir or "data/imagenet").expanduser()
        train_transform, eval_transform = _transforms()
        train_folder, val_folder = _folder(root, "train", train_transform), _folder(root, "val", eval_transform)
        if train_folder.classes != val_folder.classes:
            raise DatasetError(f"ImageNet train/ and val/ under {root} have different class folders")
        if len(train_folder.classes) != CLASSES:
            log.warning("ImageNet folder %s has %d classes, not %d", root, len(train_folder.classes), CLASSES)
        train, val = split_indices(len(train_folder), make_generator("split", spec.split_seed))
        self.subsets = {
            "train": Subset(train_folder, train.tolist()),
            "val": Subset(_folder(root, "train", eval_transform), val.tolist()),
            "test": val_folder,
        }
        self.split_sizes = {name: len(subset) for name, subset in self.subsets.items()}
        self.device, self.spec = device, spec

    def _loader(self, split: str, batch_size: int, generator: torch.Generator | None) -> DataLoader:
        workers = self.spec.num_workers
        return DataLoader(self.subsets[split], batch_size=batch_size, shuffle=generator is not None, generator=generator,
                          num_workers=workers, pin_memory=self.device.type == "cuda", persistent_workers=False)

    def _to_device(self, loader: DataLoader) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for images, labels in loader:
            yield images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)

    def num_train_batches(self, batch_size: int) -> int:
        return math.ceil(self.split_sizes["train"] / batch_size)

    def train_batches(self, batch_size: int, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        generator = make_generator("order", self.spec.order_seed, epoch)
        loader = self._loader("train", batch_size, generator)
        if self.spec.num_workers > 0:
            yield from self._to_device(loader)  # worker seeds derive from the generator
            return
        with torch.random.fork_rng(devices=[]):  # transforms in this process: seed them for the epoch
            torch.manual_seed(derive_seed("augment", self.spec.order_seed, epoch))
            yield from self._to_device(loader)

    def eval_batches(self, split: str, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        yield from self._to_device(self._loader(split, batch_size, None))


def load_imagenet_data(spec: DataSpec, device: torch.device) -> FolderImageData:
    return FolderImageData(spec, device)
