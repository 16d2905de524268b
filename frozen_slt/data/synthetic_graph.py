"""``synthetic-arxiv``: an offline node-classification graph with OGBN-Arxiv's shapes, generated with PyG.

A stochastic block model (``torch_geometric.utils.stochastic_blockmodel_graph``) with one block of
``NODES / CLASSES`` nodes per class: a node expects ``DEGREE`` neighbours, a fraction ``HOMOPHILY`` of
them in its own class. Features are 128-d: the class's mean, drawn once from N(0, SIGNAL²), plus
N(0, 1) noise per node, so a node's own features identify its class only weakly and its
neighbourhood has to help. Labels are the 40 blocks. Like OGBN-Arxiv, the graph is undirected,
coalesced and without self-loops.

Seeds: the graph, its features and labels, and the test nodes (a fixed ``TEST_FRACTION``) come from
the constant ``GRAPH_SEED``, so every run sees the same graph; the remaining nodes are split 80/20
into train/val by ``split_seed``. ``order_seed`` plays no part (full batch, nothing is shuffled).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import torch

from ..method.seeding import make_generator
from .base import split_indices
from .graph import GraphData

if TYPE_CHECKING:  # the configuration sits above the data; this is for the annotations only
    from ..config.specs import DataSpec

log = logging.getLogger(__name__)

NAME = "synthetic-arxiv"
NODES, FEATURES, CLASSES = 3000, 128, 40
DEGREE = 14.0  # OGBN-Arxiv: 2,315,598 directed edges after symmetrising over 169,343 nodes ≈ 13.7
HOMOPHILY = 0.35
SIGNAL = 0.05
TEST_FRACTION = 0.2
GRAPH_SEED = 20250102  # constant: the graph and the test nodes never move


def block_probabilities(nodes: int = NODES, classes: int = CLASSES, degree: float = DEGREE,
                        homophily: float = HOMOPHILY) -> torch.Tensor:
    """The SBM's (classes x classes) edge probabilities: expected degree ``degree``, ``homophily`` of it inside the block."""
    block = nodes // classes
    inside = homophily * degree / (block - 1)
    outside = (1 - homophily) * degree / (nodes - block)
    probabilities = torch.full((classes, classes), outside)
    probabilities.fill_diagonal_(inside)
    return probabilities


def generate_graph(seed: int = GRAPH_SEED) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(features (NODES, FEATURES) float32, undirected edge_index, labels (NODES,) int64), a pure function of ``seed``."""
    from torch_geometric.utils import stochastic_blockmodel_graph

    block = NODES // CLASSES
    labels = torch.arange(CLASSES).repeat_interleave(block)
    with torch.random.fork_rng(devices=[]):  # PyG draws from the global generator: seed it, then restore it
        torch.manual_seed(seed)
        edge_index = stochastic_blockmodel_graph([block] * CLASSES, block_probabilities())
    generator = torch.Generator().manual_seed(seed)
    means = SIGNAL * torch.randn(CLASSES, FEATURES, generator=generator)
    features = means[labels] + torch.randn(len(labels), FEATURES, generator=generator)
    return features, edge_index, labels


def load_synthetic_graph(spec: DataSpec, device: torch.device) -> GraphData:
    """The synthetic graph on ``device``; only ``spec.split_seed`` matters (see the module docstring)."""
    features, edge_index, labels = generate_graph()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(GRAPH_SEED))
    test_count = round(TEST_FRACTION * len(labels))
    test, rest = order[:test_count].sort().values, order[test_count:].sort().values
    train, val = split_indices(len(rest), make_generator("split", spec.split_seed))
    splits = {"train": rest[train], "val": rest[val], "test": test}
    data = GraphData(NAME, features, edge_index, labels, splits, CLASSES, device)
    log.info("%s: %d nodes, %d directed edges, splits %s", NAME, data.num_nodes, data.num_edges, data.split_sizes)
    return data
