"""The GIN of the UGTs work for OGBN-Arxiv (docs/method.md §8), on PyTorch Geometric.

Four graph layers h' = W((1+ε)h + mean_{j∈N(i)} h_j) with ε = 0 fixed and a single bias-free linear W,
each followed by non-affine BatchNorm1d, ReLU and dropout 0 (the last layer included). A head linear on
the third layer's output is averaged with the fourth layer's output.
"""

from __future__ import annotations

from torch import nn
from torch.nn import functional as F
from torch_geometric.nn import GINConv

from ..method.layers import LayerKind

HIDDEN = 386


class GIN(nn.Module):
    def __init__(self, input_shape: tuple[int, ...], num_classes: int, kind: LayerKind):
        super().__init__()
        sizes = (input_shape[0], HIDDEN, HIDDEN, HIDDEN, num_classes)
        self.convs = nn.ModuleList(
            GINConv(kind.linear(a, b), eps=0.0, train_eps=False, aggr="mean") for a, b in zip(sizes, sizes[1:])
        )
        self.norms = nn.ModuleList(nn.BatchNorm1d(b, affine=False) for b in sizes[1:])
        self.head = kind.linear(HIDDEN, num_classes)

    def forward(self, x, edge_index):
        outputs = []
        for conv, norm in zip(self.convs, self.norms):
            x = F.relu(norm(conv(x, edge_index)))
            outputs.append(x)
        return (self.head(outputs[2]) + outputs[3]) / 2
