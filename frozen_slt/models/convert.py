"""Conversion: any PyTorch, torchvision or PyG module as a frozen source (docs/method.md §13).

Every parameter of the built module gets one rule, in registration order:

* ``masked``: the weight of ``Conv1d/2d/3d``, ``Linear`` (subclasses included), PyG's ``Linear``, and
  ``MultiheadAttention``'s input projection (``in_proj_weight``, or its ``q/k/v_proj_weight``; the output
  projection is a ``Linear``). It becomes a :class:`~frozen_slt.method.layers.MaskedParameter` (or, for the
  weight-trained baseline, a :class:`~frozen_slt.method.layers.PlainParameter`) registered under the
  weight's own name, and the module's class is swapped for a subclass whose attribute of that name
  computes W_eff: the module keeps its forward and its names, and everything that finds masked layers
  (freeze plan, threshold, ScoreSGD, the fused route, tickets) serves it unchanged.
* ``identity``: the affine parameters of a normalisation (BatchNorm, LayerNorm, GroupNorm, InstanceNorm,
  RMSNorm, PyG's LayerNorm) are removed, which is their identity (γ = 1, β = 0); BatchNorm keeps its running
  statistics, non-affine as in the paper.
* ``zero``: every other parameter named ``bias`` or ending in ``_bias`` (and ``bias_k``, ``bias_v``) is a
  buffer fixed at 0.
* ``embedding``: an ``Embedding``'s or ``EmbeddingBag``'s weight, drawn N(0, 1) from the weight seed and frozen.
* ``token``: a parameter named like a token (``class_token``, ``cls_token``, ``*_token(s)``) or a positional
  embedding (``pos_embedding``, ``pos_embed``, ``position_embedding(s)``, ``positional_embedding``), drawn
  N(0, 0.02²) from the weight seed and frozen.

Any other parameter is refused in one line naming it and its module. Nothing but the masked weights' scores
(or, in the baseline, the masked weights themselves) is trained.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import ImportPathError
from ..method.layers import LayerKind
from ..method.seeding import make_generator

MASKED, IDENTITY, ZERO, EMBEDDING, TOKEN = "masked", "identity", "zero", "embedding", "token"
RULES = {
    MASKED: "masked weight: random, fixed, under a learned mask (§3)",
    IDENTITY: "normalisation at its identity: removed (γ = 1, β = 0)",
    ZERO: "bias fixed at 0",
    EMBEDDING: "embedding drawn N(0, 1) from the weight seed, frozen",
    TOKEN: "token or positional embedding drawn N(0, 0.02²) from the weight seed, frozen",
}
_DRAWN = {EMBEDDING: 1.0, TOKEN: 0.02}
_MHA_WEIGHTS = ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight")
_TOKEN = re.compile(r"^(?:.*_)?tokens?$|^pos(?:ition|itional)?_embed(?:ding)?s?$")
_CONVERSION = "frozen_slt_conversion"


def _pyg_linear() -> tuple[type, ...]:
    """PyG's own Linear, when PyTorch Geometric is importable (it is a dependency; its import is slow)."""
    try:
        from torch_geometric.nn.dense.linear import Linear
    except ImportError:  # pragma: no cover - a declared dependency
        return ()
    return (Linear,)


def _norms() -> tuple[type, ...]:
    kinds: tuple[type, ...] = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm,
                               nn.modules.instancenorm._InstanceNorm, nn.RMSNorm)
    try:
        from torch_geometric.nn.norm import LayerNorm as GraphLayerNorm
    except ImportError:  # pragma: no cover
        return kinds
    return kinds + (GraphLayerNorm,)


def rule_of(module: nn.Module, name: str) -> str | None:
    """The rule of ``module``'s own parameter ``name``, or None when the converter does not know it."""
    if name == "weight" and isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear) + _pyg_linear()):
        return MASKED
    if isinstance(module, nn.MultiheadAttention) and name in _MHA_WEIGHTS:
        return MASKED
    if isinstance(module, _norms()) and name in ("weight", "bias"):
        return IDENTITY
    if isinstance(module, (nn.Embedding, nn.EmbeddingBag)) and name == "weight":
        return EMBEDDING
    if name == "bias" or name.endswith("_bias") or (isinstance(module, nn.MultiheadAttention) and name in ("bias_k", "bias_v")):
        return ZERO
    if _TOKEN.match(name):
        return TOKEN
    return None


@dataclass(frozen=True)
class ParameterRule:
    """One parameter of the built module: its name in the model, shape, the rule it got, its module's class."""

    name: str
    shape: tuple[int, ...]
    rule: str
    module_type: str


@dataclass
class Conversion:
    """What :func:`convert` did to a model, kept on it (:func:`conversion_of`)."""

    label: str  # the model, for messages
    rules: list[ParameterRule] = field(default_factory=list)

    def structure(self) -> bytes:
        """Every parameter's name, shape and rule: a model whose code changed changes this."""
        return "\n".join(f"{r.name}:{'x'.join(map(str, r.shape))}:{r.rule}" for r in self.rules).encode()

    def fixed(self, model: nn.Module) -> list[tuple[str, torch.Tensor]]:
        """(name, buffer) of every tensor fixed by the conversion (zeros and drawn ones), in registration order."""
        return [(r.name, model.get_buffer(r.name)) for r in self.rules if r.rule in (ZERO, EMBEDDING, TOKEN)]


def holder(model: nn.Module, name: str) -> nn.Module:
    """The Masked/PlainParameter registered under a converted weight's name (``get_submodule`` would read the
    attribute, which is the computed weight)."""
    prefix, _, attribute = name.rpartition(".")
    return (model.get_submodule(prefix) if prefix else model)._modules[attribute]


def conversion_of(model: nn.Module) -> Conversion | None:
    """The record of a converted model, None for a built-in one."""
    return model.__dict__.get(_CONVERSION)


_HOST_CLASSES: dict[tuple[type, tuple[str, ...]], type] = {}


def _host_class(cls: type, names: tuple[str, ...]) -> type:
    """``cls`` with the attributes ``names`` computed from the parameter modules registered under them.

    State-dict hooks are nn.Module's own (a library's custom ones, such as PyG Linear's, would write the
    computed weight), and a library's ``__deepcopy__`` is not used (it rebuilds the module from its arguments)."""
    key = (cls, names)
    if key not in _HOST_CLASSES:
        namespace = {name: property(lambda self, name=name: self._modules[name].forward()) for name in names}
        namespace.update(_save_to_state_dict=nn.Module._save_to_state_dict,
                         _load_from_state_dict=nn.Module._load_from_state_dict, __deepcopy__=None,
                         __doc__=f"{cls.__name__} whose {', '.join(names)} frozen-slt computes (docs/method.md §13).")
        _HOST_CLASSES[key] = type(cls.__name__, (cls,), namespace)
    return _HOST_CLASSES[key]


def _refuse(label: str, name: str, module: nn.Module, parameter: torch.Tensor, why: str) -> None:
    shape = "x".join(map(str, parameter.shape)) if not isinstance(parameter, nn.parameter.UninitializedParameter) else "?"
    raise ImportPathError(f"{label}: parameter {name} of {type(module).__name__} (shape {shape}) {why}")


_UNKNOWN = ("has no conversion rule: frozen-slt masks Conv1d/2d/3d, Linear and MultiheadAttention weights and fixes "
            "biases, normalisations, embeddings and tokens (docs/method.md §13); other parameters would be trained "
            "or ignored")


def convert(model: nn.Module, kind: LayerKind, label: str) -> Conversion:
    """Apply the rules of the module docstring to ``model`` in place (every parameter, registration order) and
    return the record, which is also kept on the model. ImportPathError (one line) for a parameter without a
    rule, an uninitialised (lazy) one, or one shared by two names."""
    if conversion_of(model) is not None:
        raise ValueError("the model is converted already")
    record, seen = Conversion(label), {}
    for prefix, module in list(model.named_modules()):
        masked = []
        for name, parameter in list(module._parameters.items()):
            if parameter is None:
                continue
            full = f"{prefix}.{name}" if prefix else name
            if id(parameter) in seen:
                _refuse(label, full, module, parameter, f"is the same tensor as {seen[id(parameter)]} (tied weights), "
                        "which a ticket cannot hold once")
            seen[id(parameter)] = full
            if isinstance(parameter, nn.parameter.UninitializedParameter):
                _refuse(label, full, module, parameter, "is not initialised (a lazy module): give its input size")
            rule = rule_of(module, name)
            if rule is None:
                _refuse(label, full, module, parameter, _UNKNOWN)
            record.rules.append(ParameterRule(full, tuple(parameter.shape), rule, _class_name(type(module))))
            _apply(module, name, parameter, rule, kind, masked)
        if masked:
            children = list(module._modules.items())
            module._modules.clear()
            module._modules.update({name: holder for name, holder in masked})
            module._modules.update((name, child) for name, child in children if name not in dict(masked))
            module.__class__ = _host_class(type(module), tuple(name for name, _ in masked))
    model.__dict__[_CONVERSION] = record
    return record


def _class_name(cls: type) -> str:
    """``Linear`` for torch's classes, ``torch_geometric Linear`` for another library's (names repeat across them)."""
    package = cls.__module__.split(".")[0]
    return cls.__name__ if package == "torch" else f"{package} {cls.__name__}"


def _apply(module: nn.Module, name: str, parameter: torch.Tensor, rule: str, kind: LayerKind, masked: list) -> None:
    del module._parameters[name]
    if rule == MASKED:
        masked.append((name, kind.parameter(tuple(parameter.shape))))
    elif rule == IDENTITY:
        module.register_parameter(name, None)
        for flag in ("affine", "elementwise_affine"):
            if isinstance(getattr(module, flag, None), bool):
                setattr(module, flag, False)
    else:  # zero, or drawn by draw_fixed: a buffer outside the state dict, regenerated from the seed on every build
        module.register_buffer(name, torch.zeros(parameter.shape, dtype=parameter.dtype), persistent=False)


@torch.no_grad()
def draw_fixed(model: nn.Module, seed: int) -> None:
    """Draw the embeddings and tokens of a converted model from ``seed`` (the weight seed's ``fixed`` stream),
    in registration order, on the CPU; a built-in model has none."""
    record = conversion_of(model)
    if record is None:
        return
    generator = make_generator("fixed", seed)
    for rule in record.rules:
        if rule.rule in _DRAWN:
            buffer = model.get_buffer(rule.name)
            drawn = torch.empty(rule.shape).normal_(0.0, _DRAWN[rule.rule], generator=generator)
            buffer.copy_(drawn.to(buffer.dtype))


def fingerprint_extra(model: nn.Module) -> list[bytes]:
    """What a converted model adds to its weights fingerprint: its parameters' names, shapes and rules, and the
    fixed tensors' bytes (empty for a built-in model, whose fingerprint stays as it was)."""
    record = conversion_of(model)
    if record is None:
        return []
    parts = [record.structure()]
    for name, tensor in record.fixed(model):
        parts += [name.encode(), tensor.detach().cpu().contiguous().numpy().tobytes()]
    return parts


@torch.no_grad()
def plain_values(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every original parameter of a converted ``model`` as the plain module holds it: W_eff for a masked
    weight (the trained weight in the baseline), 0 for a bias, 1 or 0 for a normalisation's γ or β, the drawn
    value for an embedding or token. With the model's state-dict buffers (BatchNorm statistics) this is the
    state dict of the module the callable builds."""
    record = conversion_of(model)
    out: dict[str, torch.Tensor] = {}
    for rule in record.rules:
        if rule.rule == MASKED:
            value = holder(model, rule.name)()
        elif rule.rule == IDENTITY:
            value = (torch.ones if rule.name.rsplit(".", 1)[-1] == "weight" else torch.zeros)(rule.shape)
        else:
            value = model.get_buffer(rule.name)
        out[rule.name] = value.detach().to("cpu", copy=True)
    return out
