"""Model registry: each architecture written once, built with an injected layer kind (masked or dense)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

from torch import nn

from ..errors import ModelDatasetMismatchError, with_article
from ..method.layers import MASKED, LayerKind, weight_layers
from ..registry import lookup
from .conv import WIDTHS, ConvNet, min_side
from .resnet import BasicBlock, Bottleneck, ResNet


@dataclass(frozen=True)
class ModelEntry:
    """``build(input_shape, num_classes, kind)``; ``min_side`` is the smallest image side accepted (0: graph)."""

    name: str
    build: Callable[[tuple[int, ...], int, LayerKind], nn.Module]
    input_kind: str
    min_side: int
    description: str


def _conv(name: str, input_shape, num_classes, kind):
    return ConvNet(WIDTHS[name], input_shape, num_classes, kind)


def _gin(input_shape, num_classes, kind):
    from .gin import (
        GIN,  # PyTorch Geometric is imported only when a graph model is built
    )

    return GIN(input_shape, num_classes, kind)


def _resnet(block, depths, layout, input_shape, num_classes, kind):
    return ResNet(block, depths, layout, input_shape, num_classes, kind)


_ENTRIES = [
    ModelEntry(name, partial(_conv, name), "image", min_side(name), f"Conv-{name[4:]} of Edge-Popup")
    for name in WIDTHS
] + [
    ModelEntry("resnet18", partial(_resnet, BasicBlock, (2, 2, 2, 2), "cifar"), "image", 8, "ResNet-18, CIFAR layout"),
    ModelEntry("resnet34", partial(_resnet, BasicBlock, (3, 4, 6, 3), "cifar"), "image", 8, "ResNet-34, CIFAR layout"),
    ModelEntry("resnet18-imagenet", partial(_resnet, BasicBlock, (2, 2, 2, 2), "imagenet"), "image", 32,
               "ResNet-18, ImageNet layout"),
    ModelEntry("resnet34-imagenet", partial(_resnet, BasicBlock, (3, 4, 6, 3), "imagenet"), "image", 32,
               "ResNet-34, ImageNet layout"),
    ModelEntry("resnet50", partial(_resnet, Bottleneck, (3, 4, 6, 3), "imagenet"), "image", 32,
               "ResNet-50, ImageNet layout (torchvision v1.5)"),
    ModelEntry("gin", _gin, "graph", 0, "GIN of UGTs for OGBN-Arxiv (PyTorch Geometric)"),
]
MODELS: dict[str, ModelEntry] = {entry.name: entry for entry in _ENTRIES}


def get_model_entry(name: str) -> ModelEntry:
    return lookup(MODELS, name, "model")


def _shape_text(input_shape: tuple[int, ...]) -> str:
    return "x".join(str(size) for size in input_shape)


def check_model_fits(name: str, input_shape: tuple[int, ...], input_kind: str) -> None:
    """Raise :class:`ModelDatasetMismatchError` when ``name`` cannot run on inputs of this kind and shape."""
    entry = get_model_entry(name)
    if entry.input_kind != input_kind:
        raise ModelDatasetMismatchError(
            f"model {name!r} needs {with_article(entry.input_kind)} dataset, got {with_article(input_kind)} dataset of "
            f"shape {_shape_text(input_shape)}"
        )
    if input_kind == "image" and min(input_shape[1:]) < entry.min_side:
        raise ModelDatasetMismatchError(
            f"model {name!r} ({entry.description}) needs image inputs of at least {entry.min_side}x{entry.min_side}, "
            f"got {_shape_text(input_shape)}"
        )


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int, kind: LayerKind = MASKED) -> nn.Module:
    entry = get_model_entry(name)
    check_model_fits(name, input_shape, "graph" if len(input_shape) == 1 else "image")
    return entry.build(tuple(input_shape), num_classes, kind)


def count_weights(model: nn.Module) -> int:
    """Number of weights the method counts (every masked or plain Conv2d/Linear weight)."""
    return sum(layer.weight.numel() for _, layer in weight_layers(model))
