"""Models: the built-in registry (each architecture written once, built with an injected layer kind, masked
or dense) and models by import path, converted (docs/method.md §13; :mod:`frozen_slt.models.foreign`)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Mapping

from torch import nn

from .. import imports
from ..errors import (
    ConfigError,
    ModelDatasetMismatchError,
    UnknownNameError,
    with_article,
)
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


def is_builtin(name: str) -> bool:
    return name in MODELS


def check_model_name(name: Any, args: Mapping[str, Any] | None = None) -> None:
    """Refuse, without importing anything, a name that is neither built-in nor an import path (or a zoo alias),
    and arguments given to a built-in model."""
    if isinstance(name, str) and name in MODELS:
        if args:
            raise ConfigError(f"built-in model {name!r} takes no arguments, got model_args {sorted(args)}; arguments "
                              "are for a model given by import path")
        return
    if not imports.is_import_path(name):
        valid = ", ".join(sorted(MODELS))
        raise UnknownNameError(f"unknown model {name!r}; valid: {valid}; or torchvision:NAME, pyg:NAME or an import "
                               "path package.module:callable")
    from .zoo import check_name

    check_name(name)


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


def check_fits(name: str, args: Mapping[str, Any] | None, input_shape: tuple[int, ...], num_classes: int,
               input_kind: str) -> None:
    """Refuse, in one line, a model that cannot run on this data: a built-in one by its registry entry, one by
    import path by building it and running it once (:func:`frozen_slt.models.foreign.check_foreign_fits`)."""
    check_model_name(name, args)
    if name in MODELS:
        check_model_fits(name, tuple(input_shape), input_kind)
        return
    from .foreign import check_foreign_fits

    check_foreign_fits(name, args or {}, tuple(input_shape), num_classes, input_kind)


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int, kind: LayerKind = MASKED,
                args: Mapping[str, Any] | None = None, input_kind: str | None = None) -> nn.Module:
    """The model ``name`` for inputs of ``input_shape`` and ``num_classes`` classes, with layers of ``kind``.

    A built-in name builds its architecture; a zoo alias or an import path is called with ``args`` and what
    the data fills in, then converted (``input_kind`` defaults to graph for a 1-D shape, image otherwise).
    """
    input_kind = input_kind or ("graph" if len(input_shape) == 1 else "image")
    check_model_name(name, args)
    if name not in MODELS:
        from .foreign import build_foreign

        return build_foreign(name, args or {}, tuple(input_shape), num_classes, kind, input_kind)
    entry = get_model_entry(name)
    check_model_fits(name, input_shape, input_kind)
    return entry.build(tuple(input_shape), num_classes, kind)


def count_weights(model: nn.Module) -> int:
    """Number of weights the method counts (every masked or plain Conv2d/Linear weight)."""
    return sum(layer.weight.numel() for _, layer in weight_layers(model))
