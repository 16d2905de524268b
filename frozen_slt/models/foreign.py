"""Building a model by import path and checking that it fits its data (docs/method.md §13).

:func:`build_foreign` resolves the name (:mod:`frozen_slt.models.zoo`), calls the callable with the
user's arguments and the ones the data fills in, checks that it returned an ``nn.Module``, and converts it
(:mod:`frozen_slt.models.convert`). :func:`check_foreign_fits` builds it once more and runs one forward pass
on zeros of the data's shape, so that a model that does not fit is refused in one line before anything is
written.
"""

from __future__ import annotations

import functools
import json
import warnings
from typing import Any, Mapping

import torch
from torch import nn

from .. import imports
from ..errors import ImportPathError, ModelDatasetMismatchError
from ..method.layers import DENSE, LayerKind
from .convert import convert
from .zoo import ARGUMENT_FLAG, ModelSource, fill_arguments, resolve


def _shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def build_foreign(name: str, args: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int,
                  kind: LayerKind, input_kind: str) -> nn.Module:
    """The model ``name`` names, called with ``args`` and what the data fills in, converted to ``kind``."""
    source = resolve(name)
    model = _call(source, args, input_shape, num_classes, input_kind)
    convert(model, kind, f"model {name!r}")
    return model


def build_plain(name: str, args: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int,
                input_kind: str) -> nn.Module:
    """The module the callable builds, not converted: the plain architecture ``export --dense-module`` fills."""
    return _call(resolve(name), args, input_shape, num_classes, input_kind)


def _call(source: ModelSource, args: Mapping[str, Any], input_shape, num_classes, input_kind) -> nn.Module:
    arguments = fill_arguments(source, args, tuple(input_shape), num_classes, input_kind)
    model = imports.call(source.function, arguments, f"model {source.name!r}", ARGUMENT_FLAG)
    if not isinstance(model, nn.Module):
        raise ImportPathError(f"model {source.name!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def source_of(name: str) -> ModelSource:
    """The callable ``name`` names (for the ticket's record of it)."""
    return resolve(name)


def check_foreign_fits(name: str, args: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int,
                       input_kind: str) -> None:
    """Refuse, in one line, a model that does not build, convert, or map a batch of this data's inputs to
    (batch, ``num_classes``) logits. Remembered per process for the same arguments."""
    _checked(name, json.dumps(dict(args), sort_keys=True), tuple(input_shape), num_classes, input_kind)


@functools.lru_cache(maxsize=64)
def _checked(name: str, args: str, input_shape: tuple[int, ...], num_classes: int, input_kind: str) -> None:
    model = build_foreign(name, json.loads(args), input_shape, num_classes, DENSE, input_kind)
    label = f"model {name!r}"
    _check_channels(model, label, input_shape, input_kind)
    inputs = dummy_inputs(input_shape, input_kind)
    try:
        with torch.no_grad():
            output = model.eval()(*inputs)
    except Exception as error:  # noqa: BLE001 - foreign code raises anything for a shape it cannot take
        raise ModelDatasetMismatchError(f"{label} does not run on {input_kind} inputs of shape "
                                        f"{_shape_text(input_shape)} ({type(error).__name__}: "
                                        f"{imports.first_line(error)})") from None
    batch = inputs[0].shape[0]
    if not isinstance(output, torch.Tensor):
        raise ModelDatasetMismatchError(f"{label} returns {type(output).__name__}; frozen-slt needs logits, a tensor of "
                                        f"shape (batch, classes)")
    if tuple(output.shape) != (batch, num_classes):
        raise ModelDatasetMismatchError(f"{label} maps {batch} inputs of shape {_shape_text(input_shape)} to an output "
                                        f"of shape {_shape_text(tuple(output.shape))}, not ({batch}, {num_classes}) logits "
                                        f"for the data's {num_classes} classes")


def _check_channels(model: nn.Module, label: str, input_shape: tuple[int, ...], input_kind: str) -> None:
    """A grayscale dataset meeting a model that expects three channels (every torchvision classifier hard-codes
    them) is refused with the remedy, never fixed silently."""
    if input_kind != "image":
        return
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if first is not None and first.in_channels != input_shape[0]:
        remedy = f"; add --input-channels {first.in_channels} to repeat the data's channel" \
            if input_shape[0] == 1 else ""
        raise ModelDatasetMismatchError(f"{label} takes {first.in_channels} input channels, the data has "
                                        f"{input_shape[0]} (shape {_shape_text(input_shape)}){remedy}")


def dummy_inputs(input_shape: tuple[int, ...], input_kind: str, batch: int = 2) -> tuple[torch.Tensor, ...]:
    """Zeros of the data's shape as the training loop passes them: a batch, or a small graph (a 4-node ring
    as a CSR adjacency, as :class:`~frozen_slt.data.graph.GraphData` holds it)."""
    if input_kind == "graph":
        nodes = 4
        rows = torch.arange(nodes + 1) * 2
        columns = torch.tensor([1, 3, 0, 2, 1, 3, 0, 2])
        with warnings.catch_warnings():  # PyTorch's notes that sparse CSR is "beta" and unchecked: not for users
            warnings.filterwarnings("ignore", message=".*[Ss]parse.*", category=UserWarning)
            adjacency = torch.sparse_csr_tensor(rows, columns, torch.ones(2 * nodes), size=(nodes, nodes))
        return torch.zeros(nodes, *input_shape), adjacency
    dtype = torch.int64 if input_kind == "tokens" else torch.float32
    return (torch.zeros(batch, *input_shape, dtype=dtype),)
