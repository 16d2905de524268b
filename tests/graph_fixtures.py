"""A tiny ogbn-arxiv written in OGB's on-disk layout, for ogb's real reading code (no download).

The files are what ogb's archive holds (``raw/*.csv.gz``, ``split/time/*.csv.gz``, ``RELEASE_v1.txt``):
headerless gzip CSV, one row per edge, node or split member. The graph is learnable: labels follow
four loose communities (with 40 classes declared, as in the real data), edges mostly stay inside a
community, and features carry a weak class signal.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

NODES, FEATURES, CLASSES = 240, 128, 40
USED_CLASSES = 4
EDGES = 1200
SPLIT = (140, 40, 60)


def tiny_arxiv_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """The arrays of the tiny graph: directed edges (E, 2), features, labels (N, 1), years and the split."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, USED_CLASSES, NODES)
    source = rng.integers(0, NODES, EDGES)
    same = rng.random(EDGES) < 0.8  # 80 % of the citations stay inside the citing paper's class
    candidates = [np.flatnonzero(labels == c) for c in range(USED_CLASSES)]
    target = np.where(same, [rng.choice(candidates[labels[s]]) for s in source], rng.integers(0, NODES, EDGES))
    means = rng.normal(0, 0.6, (CLASSES, FEATURES))
    features = (means[labels] + rng.normal(0, 1, (NODES, FEATURES))).astype(np.float32)
    order = rng.permutation(NODES)
    train, val = np.sort(order[: SPLIT[0]]), np.sort(order[SPLIT[0] : SPLIT[0] + SPLIT[1]])
    return {"edges": np.stack([source, target], axis=1), "features": features, "labels": labels.reshape(-1, 1),
            "years": rng.integers(2000, 2021, (NODES, 1)), "train": train, "valid": val, "test": np.sort(order[SPLIT[0] + SPLIT[1] :])}


def _write_csv(path: Path, array: np.ndarray, **options) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(array).to_csv(path, header=False, index=False, compression="gzip", **options)


def write_tiny_arxiv(folder: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """Write the tiny graph into ``folder`` (the ``ogbn_arxiv`` folder itself) and return its arrays."""
    arrays = tiny_arxiv_arrays(seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "RELEASE_v1.txt").write_text("ogbn-arxiv v1 (tiny test copy)\n")
    raw = folder / "raw"
    _write_csv(raw / "edge.csv.gz", arrays["edges"])
    _write_csv(raw / "num-node-list.csv.gz", np.array([[NODES]]))
    _write_csv(raw / "num-edge-list.csv.gz", np.array([[len(arrays["edges"])]]))
    _write_csv(raw / "node-feat.csv.gz", arrays["features"], float_format="%.6f")
    _write_csv(raw / "node-label.csv.gz", arrays["labels"])
    _write_csv(raw / "node_year.csv.gz", arrays["years"])
    for split in ("train", "valid", "test"):
        _write_csv(folder / "split" / "time" / f"{split}.csv.gz", arrays[split].reshape(-1, 1))
    return arrays


def write_tiny_arxiv_zip(path: Path, seed: int = 0) -> None:
    """ogb's archive layout: ``arxiv.zip`` holding the folder ``arxiv/``."""
    staging = path.parent / "staging"
    write_tiny_arxiv(staging / "arxiv", seed)
    with zipfile.ZipFile(path, "w") as archive:
        for file in sorted((staging / "arxiv").rglob("*")):
            archive.write(file, file.relative_to(staging))
