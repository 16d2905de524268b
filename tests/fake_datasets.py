"""Tiny datasets written in their real on-disk formats, for running the real loading code offline."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np


def cifar_label_from_image(image_chw: np.ndarray) -> int:
    """The label encoded by :func:`write_fake_cifar10`: the red channel's top-left pixel is 20·label."""
    return int(image_chw[0, 0, 0]) // 20


def _batch(count: int, rng: np.random.Generator) -> dict:
    labels = rng.integers(0, 10, size=count)
    data = rng.integers(0, 256, size=(count, 3, 32, 32), dtype=np.uint8)
    data[:, 0, 0, 0] = labels * 20
    return {b"batch_label": b"fake", b"labels": labels.tolist(), b"data": data.reshape(count, 3072),
            b"filenames": [b"x.png"] * count}


def write_fake_cifar10(root: Path, per_batch: int = 20, test: int = 20, seed: int = 0) -> Path:
    """``root/cifar-10-batches-py`` with 5 training batches, a test batch and the meta file (python pickles)."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for index in range(1, 6):
        (folder / f"data_batch_{index}").write_bytes(pickle.dumps(_batch(per_batch, rng)))
    (folder / "test_batch").write_bytes(pickle.dumps(_batch(test, rng)))
    meta = {b"label_names": [f"class{i}".encode() for i in range(10)], b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    return folder


def write_fake_imagenet(root: Path, classes: int = 3, per_class_train: int = 5, per_class_val: int = 2, size: int = 40) -> Path:
    """``root/train/<class>/*.png`` and ``root/val/<class>/*.png``, each class a distinct solid colour plus noise."""
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
