"""A ticket as an ordinary PyTorch module: effective weights baked into plain Conv2d/Linear (and BatchNorm).

A model given by import path is written as the very module its callable builds (a torchvision ResNet, a PyG
GraphSAGE), every parameter holding the value the converted network computes with: W_eff for a masked
weight, 0 for a bias, 1 and 0 for a normalisation's γ and β, the drawn embeddings and tokens (docs/method.md
§13), so its ``.pt`` state dict loads into the callable's own module.

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
from ..data import DataFacts
from ..errors import TicketFileError
from ..files import write_atomically
from ..method.layers import DENSE, MaskedLayerMixin
from ..models import build_model, is_builtin
from ..models.convert import plain_values
from ..models.foreign import build_plain, dummy_inputs
from ..training.network import Network

DENSE_SUFFIXES = (".pt2", ".pt")


@torch.no_grad()
def dense_module(config: ExperimentConfig, network: Network) -> nn.Module:
    """The plain architecture of ``config`` on the CPU, in eval mode, holding ``network``'s effective weights
    (``m ⊙ W ⊙ scale`` for a ticket, the trained weights for a weight-trained run) and its BatchNorm statistics."""
    facts = network.facts
    if not is_builtin(config.model):
        return _plain_callable_module(config, network)
    plain = build_model(config.model, facts.input_shape, facts.num_classes, DENSE)
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


@torch.no_grad()
def _plain_callable_module(config: ExperimentConfig, network: Network) -> nn.Module:
    facts = network.facts
    plain = build_plain(config.model, config.model_args, facts.input_shape, facts.num_classes, facts.input_kind)
    values = plain_values(network.model)
    converted = network.model.state_dict()
    expected = plain.state_dict()
    missing = sorted(key for key in expected if key not in values and key not in converted)
    if missing:
        raise TicketFileError(f"the plain {config.model} has state the converted network does not: {missing[:5]}")
    plain.load_state_dict({key: (values[key] if key in values else converted[key]).detach().to("cpu", copy=True)
                           for key in expected})
    return plain.eval()


def check_dense_path(path: str | Path, facts: DataFacts) -> None:
    """Refuse, before anything is computed, a dense-module file name whose kind a model for ``facts``' inputs
    cannot be written as."""
    suffix = Path(path).suffix
    if suffix not in DENSE_SUFFIXES:
        raise TicketFileError("the dense module file must end in .pt2 (a torch.export program) or .pt (a state dict), "
                              f"got {Path(path).name}")
    if suffix == ".pt2" and facts.input_kind == "graph":
        raise TicketFileError("a .pt2 program needs a model of tensor inputs; this one takes graphs: "
                              "write a .pt state dict instead")


def dense_module_bytes(module: nn.Module, path: str | Path, facts: DataFacts) -> bytes:
    """The file of ``module`` for ``path``'s suffix: a ``.pt2`` torch.export program (models of tensor inputs)
    or a ``.pt`` state dict."""
    check_dense_path(path, facts)
    buffer = io.BytesIO()
    if Path(path).suffix == ".pt2":
        (example,) = dummy_inputs(facts.input_shape, facts.input_kind)
        batch = torch.export.Dim("batch", min=1)
        program = torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
        torch.export.save(program, buffer)
    else:
        torch.save({key: value.detach().clone() for key, value in module.state_dict().items()}, buffer)
    return buffer.getvalue()


def save_dense_module(module: nn.Module, path: str | Path, facts: DataFacts) -> None:
    """Write ``module`` as a ``.pt2`` torch.export program (models of tensor inputs) or a ``.pt`` state dict,
    atomically; ``facts`` (a network's ``facts``) say what its inputs are."""
    write_atomically(Path(path), dense_module_bytes(module, path, facts))
