"""Small image datasets held as tensors on the training device, augmented there in whole batches."""

from __future__ import annotations

import math
from typing import Iterator

import torch
from torch.nn import functional as F

from ..seeding import make_generator

PAD = 4


class TensorImageData:
    """Splits as tensors on ``device``: uint8 (divided by ``scale``) or float images, int64 labels.

    ``augment="crop_flip"`` is the CIFAR recipe: zero-pad 4, random crop back to size, random horizontal
    flip. The offsets and flips of an epoch are drawn on the CPU from the augment generator, so they do
    not depend on the device; the crop itself is one gather per batch on the device.
    """

    def __init__(self, name: str, splits: dict[str, tuple[torch.Tensor, torch.Tensor]], num_classes: int,
                 mean: tuple[float, ...], std: tuple[float, ...], scale: float, augment: str, order_seed: int,
                 device: torch.device):
        self.name, self.num_classes, self.device = name, num_classes, device
        self.splits = {key: (images.to(device), labels.to(device)) for key, (images, labels) in splits.items()}
        self.input_shape = tuple(splits["train"][0].shape[1:])
        self.split_sizes = {key: int(labels.numel()) for key, (_, labels) in splits.items()}
        channels = self.input_shape[0]
        self.mean = torch.tensor(mean, device=device).view(1, channels, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, channels, 1, 1)
        self.scale, self.augment, self.order_seed = scale, augment, order_seed

    def _normalise(self, images: torch.Tensor) -> torch.Tensor:
        return (images.float() / self.scale - self.mean) / self.std

    def num_train_batches(self, batch_size: int) -> int:
        return math.ceil(self.split_sizes["train"] / batch_size)

    def train_batches(self, batch_size: int, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        images, labels = self.splits["train"]
        count = labels.numel()
        order = torch.randperm(count, generator=make_generator("order", self.order_seed, epoch)).to(self.device)
        offsets = flips = None
        if self.augment == "crop_flip":
            generator = make_generator("augment", self.order_seed, epoch)
            offsets = torch.randint(0, 2 * PAD + 1, (count, 2), generator=generator).to(self.device)
            flips = (torch.rand(count, generator=generator) < 0.5).to(self.device)
        for start in range(0, count, batch_size):
            index = order[start : start + batch_size]
            batch = self._normalise(images[index])
            if offsets is not None:
                batch = crop_flip(batch, offsets[start : start + batch_size], flips[start : start + batch_size])
            yield batch, labels[index]

    def eval_batches(self, split: str, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        images, labels = self.splits[split]
        for start in range(0, labels.numel(), batch_size):
            yield self._normalise(images[start : start + batch_size]), labels[start : start + batch_size]


def crop_flip(batch: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Zero-pad by 4, crop each image at its (row, column) offset, flip the marked ones horizontally."""
    count, channels, height, width = batch.shape
    padded = F.pad(batch, (PAD, PAD, PAD, PAD))
    rows = (offsets[:, 0:1] + torch.arange(height, device=batch.device)).view(count, 1, height, 1)
    columns = torch.arange(width, device=batch.device).expand(count, width)
    columns = torch.where(flips.view(count, 1), width - 1 - columns, columns) + offsets[:, 1:2]
    columns = columns.view(count, 1, 1, width)
    image_index = torch.arange(count, device=batch.device).view(count, 1, 1, 1)
    channel_index = torch.arange(channels, device=batch.device).view(1, channels, 1, 1)
    return padded[image_index, channel_index, rows, columns]
