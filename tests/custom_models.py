"""Models and datasets given by import path in the tests (``custom_models:NAME``; tests/ is on the path of every
test process): one of each layer the converter masks, and the mistakes a user can make."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class EveryLayer(nn.Module):
    """A Conv1d, Conv2d, Conv3d, a Linear subclass, PyG's Linear, a MultiheadAttention (whose out_proj is a Linear
    subclass), a LayerNorm, a BatchNorm, an Embedding and a class token: every kind of parameter the converter knows."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 8):
        super().__init__()
        from torch_geometric.nn.dense.linear import Linear as GraphLinear

        self.conv2 = nn.Conv2d(in_channels, width, 3, padding=1)
        self.norm2 = nn.BatchNorm2d(width)
        self.conv1 = nn.Conv1d(width, width, 3, padding=1)
        self.conv3 = nn.Conv3d(1, 2, (1, 3, 3), padding=(0, 1, 1))
        self.attention = nn.MultiheadAttention(width, 2, batch_first=True)
        self.layer_norm = nn.LayerNorm(width)
        self.position = nn.Embedding(64, width)
        self.class_token = nn.Parameter(torch.zeros(1, 1, width))
        self.graph_linear = GraphLinear(width, width)
        self.head = _Head(width, num_classes)

    def forward(self, x):
        x = F.relu(self.norm2(self.conv2(x)))  # (B, W, H, W')
        batch, width, height, side = x.shape
        x = x + self.conv3(x.mean(1, keepdim=True).unsqueeze(1)).mean(1)  # a 3-D convolution over (1, H, W')
        sequence = self.conv1(x.flatten(2))  # (B, W, L)
        tokens = sequence.transpose(1, 2) + self.position(torch.arange(sequence.shape[2], device=x.device))
        tokens = torch.cat([self.class_token.expand(batch, -1, -1), tokens], dim=1)
        attended, _ = self.attention(tokens, tokens, tokens, need_weights=False)
        first = self.layer_norm(attended[:, 0])
        return self.head(F.relu(self.graph_linear(first)))


class _Head(nn.Linear):
    """A Linear subclass with its own forward."""

    def forward(self, x):
        return F.linear(x, self.weight, self.bias) * 1.0


def every_layer(in_channels: int, num_classes: int, width: int = 8) -> nn.Module:
    return EveryLayer(in_channels, num_classes, width)


def with_prelu(in_features: int, num_classes: int) -> nn.Module:
    """A parameter the converter has no rule for: PReLU's slope."""
    return nn.Sequential(nn.Flatten(), nn.LazyLinear(16) if in_features < 0 else nn.Linear(in_features * 64, 16),
                         nn.PReLU(), nn.Linear(16, num_classes))


def tied(num_classes: int) -> nn.Module:
    """Two layers sharing one weight (for 1x8x8 inputs)."""
    first, second = nn.Linear(num_classes, num_classes), nn.Linear(num_classes, num_classes)
    second.weight = first.weight
    return nn.Sequential(nn.Flatten(), nn.Linear(64, num_classes), first, second)


def transposed(in_channels: int, num_classes: int) -> nn.Module:
    """A transposed convolution, whose weight the converter does not mask."""
    return nn.Sequential(nn.ConvTranspose2d(in_channels, 4, 3), nn.Flatten(), nn.LazyLinear(num_classes))


def lazy(num_classes: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))


def not_a_module(num_classes: int):
    return [nn.Linear(4, num_classes)]


def raises(num_classes: int):
    raise ValueError("this model cannot be built\nsecond line")


def mlp(in_features: int, num_classes: int, hidden: int = 16) -> nn.Module:
    """For flat feature vectors (a "sequence" of one dimension)."""
    return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))


def token_classifier(num_classes: int, vocabulary: int = 16, width: int = 8) -> nn.Module:
    """For token sequences: an embedding, a mean over positions, a linear head."""
    return _TokenClassifier(vocabulary, width, num_classes)


class _TokenClassifier(nn.Module):
    def __init__(self, vocabulary: int, width: int, num_classes: int):
        super().__init__()
        self.embedding = nn.Embedding(vocabulary, width)
        self.head = nn.Linear(width, num_classes)

    def forward(self, tokens):
        return self.head(self.embedding(tokens).mean(1))


def small_images(data_dir: str | None = None, count: int = 60, channels: int = 1):
    """A dataset callable: uint8 images whose class is their brightest quadrant, train and test only."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (count,), generator=generator)
    images = torch.randint(0, 60, (count, channels, 8, 8), generator=generator, dtype=torch.uint8)
    for index, label in enumerate(labels.tolist()):
        row, column = divmod(label, 2)
        images[index, :, 4 * row : 4 * row + 4, 4 * column : 4 * column + 4] += 180
    split = count * 3 // 4
    return {"train": (images[:split], labels[:split]), "test": (images[split:], labels[split:])}


def token_sequences(count: int = 40):
    """A dataset callable: token sequences (int64) of length 6 as a torch Dataset per split, with a validation split."""
    generator = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, 16, (count, 6), generator=generator)
    labels = (tokens[:, 0] >= 8).long()
    data = torch.utils.data.TensorDataset(tokens, labels)
    return {"train": torch.utils.data.Subset(data, range(0, 24)), "val": torch.utils.data.Subset(data, range(24, 32)),
            "test": torch.utils.data.Subset(data, range(32, count))}


def small_graph():
    """A dataset callable: a PyG Data with train and test masks (the validation split is carved by the split seed)."""
    from torch_geometric.data import Data

    generator = torch.Generator().manual_seed(2)
    nodes = 40
    y = torch.arange(nodes) % 3
    x = torch.randn(nodes, 5, generator=generator) + y.unsqueeze(1).float()
    edge_index = torch.stack([torch.arange(nodes), (torch.arange(nodes) + 3) % nodes])
    train = torch.zeros(nodes, dtype=torch.bool)
    train[:30] = True
    return Data(x=x, edge_index=edge_index, y=y, train_mask=train, test_mask=~train)


def a_list():
    return [1, 2, 3]
