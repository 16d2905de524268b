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


def write_fake_cifar10(root: Path, per_batch: int = 20, test: int = 20, seed: int = 0, python2: bool = False) -> Path:
    """``root/cifar-10-batches-py`` with data_batch_1..5 (``per_batch`` images each), test_batch (``test``
    images) and batches.meta; returns the folder. Pickled by this Python and numpy, or, with ``python2``,
    byte for byte as Python 2's cPickle and numpy 1 wrote the real files."""
    folder = Path(root) / CIFAR_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    dump = python2_pickle if python2 else pickle.dumps
    rng = np.random.default_rng(seed)
    for index, name in enumerate(CIFAR_TRAIN_FILES, start=1):
        (folder / name).write_bytes(dump(_cifar_batch(per_batch, rng, f"training batch {index} of 5")))
    (folder / "test_batch").write_bytes(dump(_cifar_batch(test, rng, "testing batch 1 of 1")))
    meta = {b"label_names": [f"class{i}".encode() for i in range(10)], b"num_cases_per_batch": per_batch,
            b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(dump(meta))
    return folder


def python2_pickle(value) -> bytes:
    """``value`` (dict, list, int, bytes as Python 2 str, uint8 ndarray) as a protocol-2 pickle in the
    opcodes of Python 2's cPickle, with arrays reduced as numpy 1 did (``numpy.core.multiarray._reconstruct``)."""
    return b"\x80\x02" + _python2_opcodes(value) + b"."


def _python2_opcodes(value) -> bytes:
    if isinstance(value, dict):
        items = b"".join(_python2_opcodes(key) + _python2_opcodes(item) for key, item in value.items())
        return b"}(" + items + b"u"
    if isinstance(value, list):
        return b"](" + b"".join(_python2_opcodes(item) for item in value) + b"e"
    if isinstance(value, bytes):  # SHORT_BINSTRING / BINSTRING: a Python 2 str
        return (b"U" + bytes([len(value)]) if len(value) < 256 else b"T" + len(value).to_bytes(4, "little")) + value
    if isinstance(value, (int, np.integer)):
        value = int(value)
        if 0 <= value < 256:
            return b"K" + bytes([value])
        if 0 <= value < 65536:
            return b"M" + value.to_bytes(2, "little")
        return b"J" + value.to_bytes(4, "little", signed=True)
    if isinstance(value, np.ndarray) and value.dtype == np.uint8:  # numpy 1's ndarray and dtype __reduce__
        dtype = (b"cnumpy\ndtype\n" + _python2_opcodes((b"u1", 0, 1)) + b"R("
                 + b"".join(map(_python2_opcodes, (3, b"|"))) + b"NNN" + b"".join(map(_python2_opcodes, (-1, -1, 0))) + b"tb")
        reconstruct = (b"cnumpy.core.multiarray\n_reconstruct\n(cnumpy\nndarray\n"
                       + _python2_opcodes((0,)) + _python2_opcodes(b"b") + b"tR")
        state = (b"(" + _python2_opcodes(1) + _python2_opcodes(value.shape) + dtype + b"\x89"
                 + _python2_opcodes(value.tobytes()) + b"t")
        return reconstruct + state + b"b"
    if isinstance(value, tuple):
        return b"(" + b"".join(_python2_opcodes(item) for item in value) + b"t"
    raise TypeError(f"python2_pickle cannot write {type(value).__name__}")


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


def write_fake_fashion_mnist(root: Path, train: int = 40, test: int = 20, seed: int = 0) -> Path:
    """``root/FashionMNIST/raw`` with the four uncompressed IDX files torchvision's FashionMNIST reads (big-endian
    magic 2051 for images, 2049 for labels, then the counts and the uint8 data). Each 28x28 image's top-left
    pixel is 20·label; returns ``root``."""
    rng = np.random.default_rng(seed)
    raw = Path(root) / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, count in (("train", train), ("t10k", test)):
        labels = rng.integers(0, 10, size=count).astype(np.uint8)
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        images[:, 0, 0] = labels * 20
        header = np.array([2051, count, 28, 28], dtype=">i4").tobytes()
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(header + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(np.array([2049, count], dtype=">i4").tobytes() + labels.tobytes())
    return Path(root)


#: A tiny Planetoid graph: TRAIN labelled training nodes, 500 validation nodes after them (Planetoid's public
#: split takes the 500 nodes after the training ones), TEST test nodes at the end.
PLANETOID_TRAIN, PLANETOID_LABELLED, PLANETOID_TEST, PLANETOID_FEATURES, PLANETOID_CLASSES = 12, 520, 20, 6, 3


def write_fake_planetoid(root: Path, name: str = "Cora", graph_payload: bytes | None = None) -> Path:
    """``root/<name>/raw/ind.<name>.{x,tx,allx,y,ty,ally,graph,test.index}`` as Planetoid's files are: pickles of
    SciPy CSR feature matrices, one-hot NumPy label arrays and a defaultdict adjacency list, and a text file of
    test indices. ``graph_payload`` replaces the graph file's bytes (a crafted pickle). Returns ``root``."""
    import collections

    from scipy import sparse

    rng = np.random.default_rng(3)
    total = PLANETOID_LABELLED + PLANETOID_TEST
    labels = rng.integers(0, PLANETOID_CLASSES, total)
    features = (np.eye(PLANETOID_CLASSES, PLANETOID_FEATURES)[labels] + rng.random((total, PLANETOID_FEATURES)) * 0.5)
    one_hot = np.eye(PLANETOID_CLASSES)[labels]
    graph = collections.defaultdict(list)
    for node in range(total):
        graph[node] += [int(other) for other in rng.integers(0, total, 3)]
    test = np.arange(PLANETOID_LABELLED, total)
    files = {"x": sparse.csr_matrix(features[:PLANETOID_TRAIN]), "y": one_hot[:PLANETOID_TRAIN],
             "allx": sparse.csr_matrix(features[:PLANETOID_LABELLED]), "ally": one_hot[:PLANETOID_LABELLED],
             "tx": sparse.csr_matrix(features[test]), "ty": one_hot[test], "graph": graph}
    raw = Path(root) / name / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for key, value in files.items():
        blob = graph_payload if key == "graph" and graph_payload is not None else pickle.dumps(value, protocol=2)
        (raw / f"ind.{name.lower()}.{key}").write_bytes(blob)
    (raw / f"ind.{name.lower()}.test.index").write_text("".join(f"{index}\n" for index in test))
    return Path(root)
