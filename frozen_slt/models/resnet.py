"""ResNets with non-affine BatchNorm (docs/method.md §8), one implementation for both layouts.

CIFAR layout: 3x3 stride-1 stem, no max-pool. ImageNet layout (torchvision v1.5): 7x7/2 stem and a 3x3/2
max-pool; bottlenecks put the stride on their 3x3 conv. A 1x1 conv + BatchNorm shortcut is used wherever
the shape changes.
"""

from __future__ import annotations

from torch import nn
from torch.nn import functional as F

from ..method.layers import LayerKind

WIDTHS = (64, 128, 256, 512)


def _norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, affine=False)


class _Shortcut(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, kind: LayerKind):
        super().__init__()
        self.conv = kind.conv(in_channels, out_channels, 1, stride=stride, padding=0)
        self.bn = _norm(out_channels)

    def forward(self, x):
        return self.bn(self.conv(x))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int, kind: LayerKind):
        super().__init__()
        self.conv1 = kind.conv(in_channels, width, 3, stride=stride, padding=1)
        self.bn1 = _norm(width)
        self.conv2 = kind.conv(width, width, 3, stride=1, padding=1)
        self.bn2 = _norm(width)
        changes = stride != 1 or in_channels != width
        self.shortcut = _Shortcut(in_channels, width, stride, kind) if changes else nn.Identity()

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int, kind: LayerKind):
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = kind.conv(in_channels, width, 1)
        self.bn1 = _norm(width)
        self.conv2 = kind.conv(width, width, 3, stride=stride, padding=1)
        self.bn2 = _norm(width)
        self.conv3 = kind.conv(width, out_channels, 1)
        self.bn3 = _norm(out_channels)
        changes = stride != 1 or in_channels != out_channels
        self.shortcut = _Shortcut(in_channels, out_channels, stride, kind) if changes else nn.Identity()

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        return F.relu(self.bn3(self.conv3(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """``block`` repeated ``depths`` times per stage; ``layout`` is "cifar" or "imagenet"."""

    def __init__(self, block, depths: tuple[int, ...], layout: str, input_shape, num_classes: int, kind: LayerKind):
        super().__init__()
        in_channels = input_shape[0]
        if layout == "cifar":
            self.stem = nn.Sequential(kind.conv(in_channels, 64, 3, stride=1, padding=1), _norm(64), nn.ReLU())
        else:
            self.stem = nn.Sequential(kind.conv(in_channels, 64, 7, stride=2, padding=3), _norm(64), nn.ReLU(),
                                      nn.MaxPool2d(3, stride=2, padding=1))
        stages, channels = [], 64
        for stage, (width, depth) in enumerate(zip(WIDTHS, depths)):
            blocks = []
            for index in range(depth):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(block(channels, width, stride, kind))
                channels = width * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = kind.linear(channels, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.stages(self.stem(x))).flatten(1))
