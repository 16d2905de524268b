"""Small image datasets held as tensors on the training device, augmented there in whole batches."""

from __future__ import annotations

import math
from typing import Iterator

import torch

from ..method.seeding import make_generator
from .base import check_batch_size, check_eval_split

PAD = 4
AUGMENTS = ("none", "crop_flip")


class TensorImageData:
    """Splits held as tensors on ``device``: images (uint8 or float, (N, C, H, W)) and int64 labels.

    Batches are normalised on the fly as ``(images / scale - mean) / std`` (scale 255 for uint8 pixels),
    per channel. ``augment="crop_flip"`` is the CIFAR recipe: zero-pad 4, random crop back to H x W,
    random horizontal flip, applied to the raw pixels before normalising (as torchvision's RandomCrop
    before Normalize: the padding is black, not the mean colour). The training order of epoch e is a
    permutation from ``make_generator("order", order_seed, e)``; its offsets and flips come from
    ``make_generator("augment", order_seed, e)``. Both are drawn on the CPU, so the batches do not
    depend on the device, and moved to the device once per epoch.

    ``mean`` None: the inputs are served as they are stored (any dtype and shape, such as token sequences;
    no normalisation, no augmentation). ``channels``: a one-channel image's channel is repeated to that many
    channels after normalising (``input_channels``, docs/method.md §13), so ``input_shape`` has them.
    """

    def __init__(self, name: str, splits: dict[str, tuple[torch.Tensor, torch.Tensor]], num_classes: int,
                 mean: tuple[float, ...] | None, std: tuple[float, ...] | None, scale: float, augment: str,
                 order_seed: int, device: torch.device | str, channels: int | None = None):
        if augment not in AUGMENTS:
            raise ValueError(f"unknown augment mode {augment!r}; valid: {', '.join(AUGMENTS)}")
        if set(splits) != {"train", "val", "test"}:
            raise ValueError(f"splits must be train, val and test, got {sorted(splits)}")
        self.name, self.num_classes, self.device = name, num_classes, torch.device(device)
        self.splits = {key: (images.to(self.device), labels.to(self.device, torch.int64))
                       for key, (images, labels) in splits.items()}
        stored = tuple(splits["train"][0].shape[1:])
        self.split_sizes = {key: int(labels.numel()) for key, (_, labels) in splits.items()}
        self.mean = self.std = None
        if mean is not None:
            self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, stored[0], 1, 1)
            self.std = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, stored[0], 1, 1)
        if channels is not None and (mean is None or stored[0] != 1):
            raise ValueError(f"repeating channels needs one-channel images, got shape {stored}")
        self.channels = channels
        self.input_shape = stored if channels is None else (channels, *stored[1:])
        self.scale, self.augment, self.order_seed = scale, augment, order_seed

    def _normalise(self, images: torch.Tensor) -> torch.Tensor:
        if self.mean is None:
            return images
        normalised = (images.float() / self.scale - self.mean) / self.std
        return normalised if self.channels is None else normalised.expand(-1, self.channels, -1, -1).contiguous()

    def num_train_batches(self, batch_size: int) -> int:
        check_batch_size(batch_size)
        return math.ceil(self.split_sizes["train"] / batch_size)

    def train_batches(self, batch_size: int, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Shuffled (and augmented) batches of epoch ``epoch``; a pure function of (order_seed, epoch)."""
        check_batch_size(batch_size)
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
            batch = images[index]
            if offsets is not None:
                batch = crop_flip(batch, offsets[start : start + batch_size], flips[start : start + batch_size])
            yield self._normalise(batch), labels[index]

    def eval_batches(self, split: str, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The ``split`` ("val" or "test") in its stored order, normalised, not augmented."""
        check_eval_split(split)
        check_batch_size(batch_size)
        images, labels = self.splits[split]
        for start in range(0, labels.numel(), batch_size):
            yield self._normalise(images[start : start + batch_size]), labels[start : start + batch_size]


def crop_flip(batch: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Zero-pad by ``PAD``, crop image i at (row, column) = ``offsets[i]``, flip it if ``flips[i]``.

    One gather for the whole batch (no Python loop over images); any dtype, any device. An offset of
    ``PAD`` with no flip returns the image unchanged.
    """
    count, channels, height, width = batch.shape
    padded = batch.new_zeros((count, channels, height + 2 * PAD, width + 2 * PAD))
    padded[:, :, PAD : PAD + height, PAD : PAD + width] = batch
    rows = (offsets[:, 0:1] + torch.arange(height, device=batch.device)).view(count, 1, height, 1)
    columns = torch.arange(width, device=batch.device).expand(count, width)
    # Flipping the crop equals reading the crop window's columns right to left.
    columns = torch.where(flips.view(count, 1), width - 1 - columns, columns) + offsets[:, 1:2]
    columns = columns.view(count, 1, 1, width)
    image_index = torch.arange(count, device=batch.device).view(count, 1, 1, 1)
    channel_index = torch.arange(channels, device=batch.device).view(1, channels, 1, 1)
    return padded[image_index, channel_index, rows, columns]
