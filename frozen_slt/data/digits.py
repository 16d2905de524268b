"""scikit-learn's handwritten digits (1,797 8x8 images, 10 classes): the embedded, offline default.

Test set: a fixed 20 % (360 images) chosen once by a constant seed, the same for every run. The other
1,437 images are split 80/20 into train/val (1,150/287) by the split seed. Pixels 0..16 are scaled to
[0, 1] and normalised with the training split's mean and std. No augmentation: 8x8 is too small to crop.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import torch

from ..method.seeding import make_generator
from .base import split_indices
from .tensor_images import TensorImageData

if TYPE_CHECKING:  # the configuration sits above the data; this is for the annotations only
    from ..config.specs import DataSpec

TEST_COUNT = 360
_TEST_SEED = 20250101  # constant: the test set never moves


@functools.lru_cache(maxsize=1)
def _digits_tensors() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 images scaled to [0, 1] and their labels, read once per process (a sweep's worker that
    runs trial after trial imports scikit-learn and parses its file only for the first). Never modified:
    callers index them, which copies."""
    from sklearn.datasets import (
        load_digits,  # shipped inside scikit-learn: no file, no network
    )

    bunch = load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    return images, torch.tensor(bunch.target, dtype=torch.int64)


def load_digits_data(spec: DataSpec, device: torch.device) -> TensorImageData:
    """The three digits splits on ``device``; only ``spec.split_seed``, ``spec.order_seed`` and
    ``spec.input_channels`` (the channel repeated, for models that take three) matter."""
    images, labels = _digits_tensors()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(_TEST_SEED))
    test, rest = order[:TEST_COUNT].sort().values, order[TEST_COUNT:].sort().values
    train, val = split_indices(len(rest), make_generator("split", spec.split_seed))
    train, val = rest[train], rest[val]
    # One channel: the per-channel statistics are the training split's overall mean and std.
    mean, std = images[train].mean().item(), images[train].std().item()
    splits = {name: (images[index], labels[index]) for name, index in (("train", train), ("val", val), ("test", test))}
    return TensorImageData("digits", splits, 10, (mean,), (std,), 1.0, "none", spec.order_seed, device,
                           channels=spec.input_channels)
