"""A ticket as an ordinary PyTorch module: effective weights baked into plain Conv2d/Linear (and BatchNorm).

Two files, chosen by the suffix:

* ``.pt2``: a ``torch.export`` program with a dynamic batch dimension. Loading needs only PyTorch:
  ``torch.export.load(path).module()(images)``; nothing of frozen_slt is imported.
* ``.pt``: the plain module's state dict (a dict of tensors; load it with ``torch.load(path,
  weights_only=True)``) for the same architecture built from ``nn.Conv2d``/``nn.Linear`` without bias and
  non-affine BatchNorm, under the same parameter names (for example frozen_slt's own
  ``build_model(name, input_shape, num_classes, DENSE)``).
"""

from __future__ import annotations

import io
from pathlib import Path

import torch
from torch import nn

from ..config.experiment import ExperimentConfig
from ..data import get_dataset_entry
from ..errors import TicketFileError
from ..files import write_atomically
from ..method.layers import DENSE, MaskedLayerMixin
from ..models import build_model
from ..training.network import Network

DENSE_SUFFIXES = (".pt2", ".pt")


@torch.no_grad()
def dense_module(config: ExperimentConfig, network: Network) -> nn.Module:
    """The plain architecture of ``config`` on the CPU, in eval mode, holding ``network``'s effective weights
    (``m ⊙ W ⊙ scale`` for a ticket, the trained weights for a weight-trained run) and its BatchNorm statistics."""
    entry = get_dataset_entry(config.dataset)
    plain = build_model(config.model, entry.input_shape, entry.num_classes, DENSE)
    state = {}
    for name, module in network.model.named_modules():
        own = {f"{name}.{key}".lstrip("."): value for key, value in module.state_dict().items() if "." not in key}
        if isinstance(module, MaskedLayerMixin):
            own = {f"{name}.weight".lstrip("."): module.effective_weight()}
        state.update(own)
    expected = plain.state_dict()
    if set(state) != set(expected):
        differing = sorted(set(state) ^ set(expected))
        raise TicketFileError(f"the plain {config.model} does not match the network's state: {differing}")
    plain.load_state_dict({key: value.detach().to("cpu", copy=True) for key, value in state.items()})
    return plain.eval()


def check_dense_path(path: str | Path, config: ExperimentConfig) -> None:
    """Refuse, before anything is computed, a dense-module file name whose kind ``config`` cannot be written as."""
    suffix = Path(path).suffix
    if suffix not in DENSE_SUFFIXES:
        raise TicketFileError("the dense module file must end in .pt2 (a torch.export program) or .pt (a state dict), "
                              f"got {Path(path).name}")
    if suffix == ".pt2" and get_dataset_entry(config.dataset).input_kind != "image":
        raise TicketFileError(f"a .pt2 program needs an image model; {config.model} takes graphs: "
                              "write a .pt state dict instead")


def dense_module_bytes(module: nn.Module, path: str | Path, config: ExperimentConfig) -> bytes:
    """The file of ``module`` for ``path``'s suffix: a ``.pt2`` torch.export program (image models) or a ``.pt``
    state dict."""
    check_dense_path(path, config)
    entry = get_dataset_entry(config.dataset)
    buffer = io.BytesIO()
    if Path(path).suffix == ".pt2":
        example = torch.zeros(2, *entry.input_shape)
        batch = torch.export.Dim("batch", min=1)
        program = torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
        torch.export.save(program, buffer)
    else:
        torch.save({key: value.detach().clone() for key, value in module.state_dict().items()}, buffer)
    return buffer.getvalue()


def save_dense_module(module: nn.Module, path: str | Path, config: ExperimentConfig) -> None:
    """Write ``module`` as a ``.pt2`` torch.export program (image models) or a ``.pt`` state dict, atomically."""
    write_atomically(Path(path), dense_module_bytes(module, path, config))
