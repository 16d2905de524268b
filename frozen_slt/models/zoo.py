"""A model by import path (docs/method.md §13): the names ``--model`` accepts, the zoos, and the arguments the
platform fills in.

``--model`` takes one of three forms:

* a built-in name (``conv6``, ``resnet50``, ... ; :data:`frozen_slt.models.MODELS`);
* a zoo alias: ``torchvision:NAME`` (a classification model of ``torchvision.models``: a builder such as
  ``resnet18`` or a model class such as ``VisionTransformer``) or ``pyg:NAME`` (a model class of
  ``torch_geometric.nn.models``, such as ``GraphSAGE``); ``torchvision.models:NAME`` and
  ``torch_geometric.nn.models:NAME`` name the same objects;
* an import path ``package.module:callable``, imported only when the command line names it
  (:mod:`frozen_slt.imports`).

The callable is called with the user's keyword arguments (``model_args``) and, where its signature names
them and the user did not give them, what the data says (:func:`fill_arguments`).
"""

from __future__ import annotations

import functools
import importlib.metadata
import sys
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from torch import nn

from .. import imports
from ..errors import ImportPathError

#: Alias prefix → the module of its zoo, and the long spellings of the same modules.
ZOOS = {"torchvision": "torchvision.models", "pyg": "torch_geometric.nn.models"}
_ZOO_MODULES = {"torchvision.models": "torchvision", "torch_geometric.nn.models": "pyg"}
#: The groups of argument names the platform fills in, in the order it looks for them (docs/method.md §13).
CLASS_ARGUMENTS = ("num_classes", "out_channels", "out_features", "n_classes")
INPUT_ARGUMENTS = ("in_channels", "in_features", "input_channels", "num_features", "in_chans")
SIZE_ARGUMENTS = ("image_size", "img_size")
#: Arguments that would load trained weights, which the conversion discards (and torchvision downloads).
_PRETRAINED = ("weights", "pretrained", "weights_backbone")
MODEL_FLAG, ARGUMENT_FLAG = "--model", "--model-arg"


@dataclass(frozen=True)
class ModelSource:
    """Where a model's code comes from: the callable's own ``module:qualname`` and whether it is a zoo's."""

    name: str  # as the user wrote it
    function: Callable
    zoo: str | None  # "torchvision", "pyg" or None

    @property
    def qualified(self) -> str:
        return f"{self.function.__module__}:{getattr(self.function, '__qualname__', self.function.__name__)}"

    def packages(self) -> dict[str, str | None]:
        """The versions of the packages that define the model: its top-level package and torch."""
        top = self.function.__module__.split(".")[0]
        return {name: package_version(name) for name in sorted({top, "torch"})}


def package_version(package: str) -> str | None:
    """The installed version of a top-level package (its distribution's), None when it has none."""
    distributions = importlib.metadata.packages_distributions().get(package, [package])
    for distribution in distributions:
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return getattr(sys.modules.get(package), "__version__", None)


def zoo_of(name: str) -> tuple[str, str] | None:
    """(zoo, attribute) when ``name`` names a zoo's model, else None (syntax is checked by :func:`check_name`)."""
    prefix, _, attribute = name.partition(":")
    if prefix in ZOOS:
        return prefix, attribute
    if prefix in _ZOO_MODULES:
        return _ZOO_MODULES[prefix], attribute
    return None


def check_name(name: str) -> None:
    """Refuse a model name that is no import path (built-in names are checked by the registry)."""
    zoo = zoo_of(name)
    imports.split(f"{ZOOS[zoo[0]]}:{zoo[1]}" if zoo else name, "model")


def resolve(name: str) -> ModelSource:
    """The callable ``name`` (a zoo alias or an import path) names; ImportPathError in one line otherwise."""
    zoo = zoo_of(name)
    if zoo is None:
        return ModelSource(name, imports.load_object(name, "model", MODEL_FLAG), None)
    prefix, attribute = zoo
    function = imports.load_object(f"{ZOOS[prefix]}:{attribute}", "model", MODEL_FLAG, trusted=True) \
        if attribute in zoo_names(prefix) else None
    if function is None:
        what = "classification model" if prefix == "torchvision" else "model class"
        raise ImportPathError(f"model {name!r}: {ZOOS[prefix]} has no {what} {attribute!r}; valid: "
                              f"{', '.join(sorted(zoo_names(prefix)))}")
    return ModelSource(name, function, prefix)


@functools.cache
def zoo_names(prefix: str) -> frozenset[str]:
    """The names a zoo alias may take: torchvision's registered classification builders and its model classes,
    PyG's model classes."""
    if prefix == "torchvision":
        import torchvision.models as module
    else:
        import torch_geometric.nn.models as module
    classes = {name for name, value in vars(module).items()
               if isinstance(value, type) and issubclass(value, nn.Module) and not name.startswith("_")}
    if prefix == "torchvision":
        return frozenset(classes | set(module.list_models(module=module)))
    return frozenset(classes)


def fill_arguments(source: ModelSource, given: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int,
                   input_kind: str) -> dict[str, Any]:
    """The keyword arguments ``source`` is called with: ``given``, plus what the data says where the callable's
    signature names it and ``given`` does not (docs/method.md §13).

    Each group (class count: ``num_classes``, ``out_channels``, ...; input channels or features, not for
    token sequences: ``in_channels``, ...; square image side: ``image_size``, ...) is filled through the first of its names
    the signature takes explicitly, unless the user gave any name of the group. torchvision's builders take
    their model's arguments as ``**kwargs``: they get ``num_classes``, and the ViT builders ``image_size``.
    """
    pretrained = sorted(set(given) & set(_PRETRAINED))
    if pretrained and source.zoo is not None:
        raise ImportPathError(f"model {source.name!r}: {', '.join(pretrained)} would load trained weights, which "
                              "frozen-slt replaces by weights drawn from its seeds (docs/method.md §13); drop it")
    named, _ = imports.parameters(source.function)
    if source.zoo == "torchvision" and not isinstance(source.function, type):
        named = {"num_classes": None, **({"image_size": None} if source.function.__name__.startswith("vit_") else {})}
    known: dict[str, int] = {"class": num_classes}
    if input_kind != "tokens":  # a token sequence's only dimension is its length, not channels
        known["input"] = input_shape[0]
    if input_kind == "image" and input_shape[1] == input_shape[2]:
        known["size"] = input_shape[1]
    out = dict(given)
    for group, names in (("class", CLASS_ARGUMENTS), ("input", INPUT_ARGUMENTS), ("size", SIZE_ARGUMENTS)):
        if group not in known or set(names) & set(given):
            continue
        for argument in names:
            if argument in named:
                out[argument] = known[group]
                break
    return out
