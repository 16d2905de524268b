"""Conv-k networks of Edge-Popup (docs/method.md §8): 3x3 convs in pairs with 2x2 max-pools, then FC 256-256-classes."""

from __future__ import annotations

from torch import nn

from ..method.layers import LayerKind

WIDTHS = {
    "conv2": (64, 64),
    "conv4": (64, 64, 128, 128),
    "conv6": (64, 64, 128, 128, 256, 256),
    "conv8": (64, 64, 128, 128, 256, 256, 512, 512),
}
HIDDEN = 256


class ConvNet(nn.Module):
    """``len(widths)`` conv layers (ReLU after each, max-pool after every pair), flatten, three linear layers.

    The flatten size follows the input shape and the head follows the class count.
    """

    def __init__(self, widths: tuple[int, ...], input_shape: tuple[int, int, int], num_classes: int, kind: LayerKind):
        super().__init__()
        channels, height, width = input_shape
        layers: list[nn.Module] = []
        for index, out_channels in enumerate(widths):
            layers += [kind.conv(channels, out_channels, 3, stride=1, padding=1), nn.ReLU()]
            channels = out_channels
            if index % 2 == 1:
                layers.append(nn.MaxPool2d(2))
                height, width = height // 2, width // 2
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            kind.linear(channels * height * width, HIDDEN), nn.ReLU(),
            kind.linear(HIDDEN, HIDDEN), nn.ReLU(),
            kind.linear(HIDDEN, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


def min_side(name: str) -> int:
    """Smallest input side that survives the pools: 2 ** (number of pools)."""
    return 2 ** (len(WIDTHS[name]) // 2)
