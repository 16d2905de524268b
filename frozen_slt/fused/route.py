"""The one decision of the fast path: which implementation serves a masked layer, and why.

:func:`route` answers for a layer as it stands and for the step it is about to take:

* ``eager``: PyTorch's operators (:mod:`frozen_slt.method.masking`, :mod:`frozen_slt.method.threshold`),
  the reference formulation and the one CUDA runs;
* ``fused``: the fused CPU loops compute W_eff (held as a leaf tensor), its score gradient and τ;
* ``fused step``: as ``fused``, and the layer's optimizer (a
  :class:`~frozen_slt.training.score_sgd.ScoreSGD`) turns ∂L/∂W_eff into the SGD update, the threshold's
  window count and the next W_eff in one loop (:func:`frozen_slt.fused.loops.score_step`).

Every caller asks it: the layer's forward, the threshold update and the optimizer's step. All three
implementations give the same bits; the route decides only how fast.
"""

from __future__ import annotations

import functools
import logging
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np
import torch

log = logging.getLogger(__name__)

EAGER, FUSED, FUSED_STEP = "eager", "fused", "fused step"


class LayerViews(NamedTuple):
    """1-D NumPy views (no copy) of a masked layer's score, weight, freeze state and threshold."""

    score: np.ndarray
    weight: np.ndarray
    state: np.ndarray
    threshold: np.ndarray


class Route(NamedTuple):
    """Where a layer's next step runs (``path``: EAGER, FUSED or FUSED_STEP) and why; ``views`` unless eager."""

    path: str
    reason: str
    views: LayerViews | None = None


@functools.cache
def compiled() -> ModuleType | None:
    """The compiled loops (:mod:`frozen_slt.fused.loops`), or None when numba cannot be imported."""
    try:
        from . import loops
    except ImportError as error:  # a declared dependency; without it the eager operators run, only slower
        log.warning("numba could not be imported (%s): masking and the threshold run PyTorch's eager operators on "
                    "the CPU, with the same results but several times the memory traffic", error)
        return None
    return loops


def loops() -> ModuleType:
    """The compiled loops, for callers that hold a fused route (which implies they exist)."""
    module = compiled()
    if module is None:
        raise RuntimeError("the fused CPU loops need numba")
    return module


_enabled = True


def enabled() -> bool:
    return _enabled


def set_enabled(value: bool) -> bool:
    """Switch the fused CPU loops on or off (off: every layer takes the eager route); returns the previous setting."""
    global _enabled
    previous, _enabled = _enabled, bool(value)
    return previous


def flat(tensor: torch.Tensor) -> np.ndarray:
    """A 1-D NumPy view of a contiguous CPU tensor's memory (no copy)."""
    return tensor.detach().view(-1).numpy()


def _tensor_route(layer: Any) -> Route:
    """The route that depends only on the layer's four tensors and the switch: eager, or fused with views."""
    tensors = (layer.score, layer.weight, layer.freeze_state, layer.threshold)
    if not _enabled:
        return Route(EAGER, "the fused CPU loops are switched off")
    device = layer.score.device
    if any(t.device.type != "cpu" for t in tensors):
        return Route(EAGER, f"the layer is on {device}: the eager operators run there")
    if layer.weight.dtype != torch.float32 or layer.score.dtype != torch.float32:
        return Route(EAGER, f"the fused loops compute float32, the layer holds {layer.score.dtype}")
    if not all(t.is_contiguous() for t in tensors):
        return Route(EAGER, "a tensor of the layer is not contiguous")
    if compiled() is None:
        return Route(EAGER, "numba is not importable")
    views = LayerViews(*(flat(t) for t in tensors))
    return Route(FUSED, "no fused score step claims the layer: its score gradient goes to the optimizer", views)


def route(layer: Any) -> Route:
    """Which implementation serves ``layer`` (a masked layer) now, and why.

    The tensor part of the answer is kept on the layer while its tensors stay where they are (the views
    hold them, so their memory cannot be reused by another tensor in the meantime); the step part is
    asked of the optimizer that claimed the layer (``layer.stepper``), whose ``blocker`` says what keeps
    it from the fused step (None: nothing).
    """
    key = (layer.score.data_ptr(), layer.weight.data_ptr(), layer.freeze_state.data_ptr(),
           layer.threshold.data_ptr(), layer.score.device.type, _enabled)
    cached = layer.__dict__.get("_route_cache")
    if cached is None or cached[0] != key:
        base = _tensor_route(layer)
        step = base if base.path == EAGER else Route(FUSED_STEP, _STEP_REASON, base.views)
        cached = layer.__dict__["_route_cache"] = (key, base, step)
    base = cached[1]
    if base.path == EAGER:
        return base
    stepper = layer.stepper()
    if stepper is None:
        return base
    if layer.scale_mode == "dynamic":
        return Route(FUSED, _DYNAMIC_REASON, base.views)
    if stepper.blocker is not None:
        return Route(FUSED, stepper.blocker, base.views)
    return cached[2]


_STEP_REASON = "a ScoreSGD whose settings the fused step computes claims the layer"
_DYNAMIC_REASON = ("the dynamic scale's factor depends on the new mask, which the fused step does not know while it "
                   "updates the scores")


def forget_route(layer: Any) -> None:
    """Drop what :func:`route` keeps on ``layer`` (a copy or a pickle of a layer holds its own tensors)."""
    layer.__dict__.pop("_route_cache", None)
