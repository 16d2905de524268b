"""Tiny datasets written in their real on-disk formats, for running the real loading code offline.

Each fake encodes its label in its pixels, so a test can check after loading (and shuffling, and
augmenting) that every image still carries its own label.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))


def cifar_label_from_image(image_chw: np.ndarray) -> int:
    """The label encoded by :func:`write_fake_cifar10`: the red channel's top-left pixel is 20·label."""
    return int(image_chw[0, 0, 0]) // 20


def _cifar_batch(count: int, rng: np.random.Generator, name: str) -> dict:
    labels = rng.integers(0, 10, size=count)
    data = rng.integers(0, 256, size=(count, 3, 32, 32), dtype=np.uint8)
    data[:, 0, 0, 0] = labels * 20
    # The real files hold exactly these keys: data is N x 3072 uint8 (R, G, B planes), labels a list.
    return {b"batch_label": name.encode(), b"labels": labels.tolist(), b"data": data.reshape(count, 3072),
            b"filenames": [f"img_{i}.png".encode() for i in range(count)]}


def write_fake_cifar10(root: Path, per_batch: int = 20, test: int = 20, seed: int = 0) -> Path:
    """``root/cifar-10-batches-py`` with data_batch_1..5 (``per_batch`` images each), test_batch (``test``
    images) and batches.meta, pickled as in the real python version; returns the folder."""
    folder = Path(root) / CIFAR_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for index, name in enumerate(CIFAR_TRAIN_FILES, start=1):
        (folder / name).write_bytes(pickle.dumps(_cifar_batch(per_batch, rng, f"training batch {index} of 5")))
    (folder / "test_batch").write_bytes(pickle.dumps(_cifar_batch(test, rng, "testing batch 1 of 1")))
    meta = {b"label_names": [f"class{i}".encode() for i in range(10)], b"num_cases_per_batch": per_batch,
            b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    return folder


def imagenet_label_from_image(image_chw) -> int:
    """The label encoded by :func:`write_fake_imagenet` (classes <= 3): its brightest colour channel.

    Survives resizing, cropping, flipping and normalisation, so it also works on training batches.
    """
    return int(image_chw.reshape(image_chw.shape[0], -1).mean(1).argmax())


def write_fake_imagenet(root: Path, classes: int = 3, per_class_train: int = 5, per_class_val: int = 2,
                        size: int = 40) -> Path:
    """``root/train/<class>/*.png`` and ``root/val/<class>/*.png`` (class folders n00000000, n00000001, ...).

    Each image is dark noise with channel ``label % 3`` raised by 200, so :func:`imagenet_label_from_image`
    recovers labels below 3. Returns ``root``.
    """
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", per_class_train), ("val", per_class_val)):
        for label in range(classes):
            folder = Path(root) / split / f"n{label:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                pixels = rng.integers(0, 40, size=(size, size, 3), dtype=np.uint8)
                pixels[..., label % 3] += 200
                Image.fromarray(pixels).save(folder / f"img_{index}.png")
    return Path(root)
