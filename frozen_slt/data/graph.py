"""Node-classification graphs trained full-batch and transductively (docs/method.md §8–9).

A :class:`GraphData` holds the whole graph on the training device for the whole run, moved there
once at load: the node features, the undirected coalesced adjacency, the labels and each split's
node indices (with that split's labels gathered once). Every epoch is one optimizer step over the
whole graph with the loss on the training nodes only; an evaluation is one forward pass whose logits
serve every split. Accuracy comes from OGB's ``Evaluator("ogbn-arxiv")`` so that numbers compare with
the OGB leaderboard; it reads the predicted classes of the evaluated nodes on the host, one copy of
a split's predictions per evaluation (labels are copied to the host once, at load).

The adjacency is a ``torch.sparse_csr`` tensor: PyTorch Geometric's GINConv then aggregates with one
sparse-dense product instead of materialising a message per edge and feature (3.6 GB per layer at
OGBN-Arxiv's size). The graph is symmetric, so the matrix equals its transpose, the ``adj_t`` that
PyG's layers expect.
"""

from __future__ import annotations

import sys
import warnings
from typing import Iterator

import torch
from torch.nn import functional as F

from ..errors import DatasetError
from .base import EVAL_SPLITS
from .loop import Forward, Step

SPLITS = ("train",) + EVAL_SPLITS
EVALUATOR_NAME = "ogbn-arxiv"  # the Evaluator's accuracy is plain top-1 over the nodes given, for any class count


def import_ogb_nodeproppred():
    """``ogb.nodeproppred``, imported without its PyPI version check.

    Importing ``ogb`` starts a background thread that asks PyPI whether ogb is outdated, through
    ``requests.get`` without a timeout, whenever the ``outdated`` package can be imported: offline that
    can keep the process from exiting for minutes, and training must never touch the network. The
    check is skipped by making ``outdated`` unimportable while ogb itself is imported (ogb then skips it,
    by its own ``ImportError`` fallback); a module imported earlier under that name is put back after.
    """
    if "ogb" in sys.modules:
        import ogb.nodeproppred

        return ogb.nodeproppred
    saved = sys.modules.get("outdated")
    sys.modules["outdated"] = None  # type: ignore[assignment]  # None in sys.modules makes `import` raise ImportError
    try:
        import ogb.nodeproppred
    finally:
        if saved is None:
            del sys.modules["outdated"]
        else:
            sys.modules["outdated"] = saved
    return ogb.nodeproppred


def symmetric_adjacency(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """The undirected, coalesced graph of ``edge_index`` as a CSR matrix (no self-loops added)."""
    from torch_geometric.utils import to_torch_csr_tensor, to_undirected

    undirected = to_undirected(edge_index, num_nodes=num_nodes)
    with warnings.catch_warnings():  # PyTorch's notes that sparse CSR is "beta" and unchecked: not for users
        warnings.filterwarnings("ignore", message=".*[Ss]parse.*", category=UserWarning)
        return to_torch_csr_tensor(undirected, size=(num_nodes, num_nodes))


def check_graph(source: str, features: torch.Tensor, edge_index: torch.Tensor, labels: torch.Tensor,
                num_classes: int, splits: dict[str, torch.Tensor]) -> None:
    """Raise :class:`DatasetError` naming ``source`` when the arrays do not form a node-classification graph."""
    problems = _graph_problems(features, edge_index, labels, num_classes) + _split_problems(splits, len(features))
    if problems:
        raise DatasetError(f"{source} is not a valid node-classification graph: {'; '.join(problems)}")


def _graph_problems(features, edge_index, labels, num_classes) -> list[str]:
    nodes, problems = len(features), []
    if features.dim() != 2 or not features.is_floating_point():
        problems.append(f"node features must be a float matrix, got shape {tuple(features.shape)} of {features.dtype}")
    if labels.shape != (nodes,):
        problems.append(f"{labels.numel()} labels for {nodes} nodes")
    elif nodes and (labels.min() < 0 or labels.max() >= num_classes):
        problems.append(f"labels outside 0..{num_classes - 1}")
    if edge_index.dim() != 2 or edge_index.shape[0] != 2:
        problems.append(f"the edge list must have 2 rows, got shape {tuple(edge_index.shape)}")
    elif edge_index.numel() and (edge_index.min() < 0 or edge_index.max() >= nodes):
        problems.append(f"edges name nodes outside 0..{nodes - 1}")
    return problems


def _split_problems(splits: dict[str, torch.Tensor], nodes: int) -> list[str]:
    if set(splits) != set(SPLITS):
        return [f"splits must be {', '.join(SPLITS)}, got {', '.join(sorted(splits))}"]
    bad = [name for name in SPLITS if splits[name].numel() == 0 or splits[name].min() < 0 or splits[name].max() >= nodes]
    if bad:
        return [f"the {', '.join(bad)} split(s) are empty or name nodes outside 0..{nodes - 1}"]
    every = torch.cat([splits[name] for name in SPLITS])
    return ["the train, val and test splits overlap"] if every.unique().numel() < every.numel() else []


class GraphData:
    """One node-classification graph on ``device``, as the training loop uses it (a ``LoopData``).

    ``splits`` maps train, val and test to node indices; ``source`` names the graph in errors (default:
    ``name``). ``train_steps`` yields one step per epoch:
    inputs (features, adjacency), the training labels and the training rows; it does not depend on
    the batch size or the epoch (full batch, nothing shuffled). ``evaluate`` runs ``forward`` once and
    scores every requested split from the same logits.
    """

    def __init__(self, name: str, features: torch.Tensor, edge_index: torch.Tensor, labels: torch.Tensor,
                 splits: dict[str, torch.Tensor], num_classes: int, device: torch.device | str, source: str | None = None):
        labels, splits = labels.to(torch.int64).view(-1), {key: value.to(torch.int64).view(-1) for key, value in splits.items()}
        check_graph(source or name, features, edge_index, labels, num_classes, splits)
        self.name, self.num_classes, self.device = name, num_classes, torch.device(device)
        self.num_nodes = len(features)
        self.input_shape = (features.shape[1],)
        adjacency = symmetric_adjacency(edge_index.to(torch.int64), self.num_nodes)
        self.num_edges = int(adjacency.values().numel())  # directed edges after symmetrising
        self.features = features.to(self.device, torch.float32)
        self.adjacency = adjacency.to(self.device)
        self.rows = {key: index.to(self.device) for key, index in splits.items()}
        self.labels = {key: labels[index].to(self.device) for key, index in splits.items()}
        self._host_labels = {key: labels[index].cpu().numpy().reshape(-1, 1) for key, index in splits.items()}
        self.split_sizes = {key: int(index.numel()) for key, index in splits.items()}
        self._evaluator = import_ogb_nodeproppred().Evaluator(EVALUATOR_NAME)

    @property
    def inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.features, self.adjacency

    def num_train_steps(self, batch_size: int) -> int:
        return 1

    def train_steps(self, batch_size: int, epoch: int) -> Iterator[Step]:
        yield Step(self.inputs, self.labels["train"], self.rows["train"])

    def evaluate(self, forward: Forward, splits: tuple[str, ...], batch_size: int) -> dict[str, float]:
        unknown = [split for split in splits if split not in SPLITS]
        if unknown:
            raise ValueError(f"unknown split {unknown[0]!r}; valid: {', '.join(SPLITS)}")
        logits = forward(*self.inputs)
        predicted = logits.argmax(1)
        metrics: dict[str, float] = {}
        for split in splits:
            rows = self.rows[split]
            metrics[f"{split}_loss"] = F.cross_entropy(logits[rows].float(), self.labels[split]).item()
            metrics[f"{split}_accuracy"] = self.accuracy(split, predicted[rows])
        return metrics

    def accuracy(self, split: str, predicted: torch.Tensor) -> float:
        """OGB's accuracy of the predicted classes of ``split``'s nodes (in the split's order)."""
        result = self._evaluator.eval({"y_true": self._host_labels[split], "y_pred": predicted.view(-1, 1).cpu().numpy()})
        return float(result["acc"])
