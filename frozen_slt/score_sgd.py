"""``ScoreSGD``: SGD on a ticket's scores whose step also moves the global threshold (docs/method.md §4).

It is ``torch.optim.SGD`` with its fused kernel (the same parameter groups, state and checkpoints, which
either can load), and after ``step()`` every masked layer's τ is current: a training step calls nothing
after it. Scores, momentum buffers, thresholds and masks are those of ``torch.optim.SGD(fused=True)``
followed by :func:`~frozen_slt.threshold.update_thresholds`, bit for bit.

On the CPU it goes further when the fused loops of :mod:`frozen_slt.kernels` apply: numba present,
float32, scale ``none`` or ``static``, momentum without Nesterov or dampening, and torch's SGD kernel
rounding in a way those loops reproduce on this machine (:func:`torch_sgd_rounding`, checked once per
process). Then the masked layers hold their effective weight W_eff as a leaf tensor
(:meth:`~frozen_slt.layers.MaskedLayerMixin.prepare_for`), the backward stops at ∂L/∂W_eff, and
``step`` runs one loop per layer (:func:`frozen_slt.score_loops.score_step`): the straight-through score
gradient, the SGD update, the count of the new scores below and inside the threshold's search window,
and the next W_eff wherever the window already decides the mask. τ is then selected among the few
entries inside the window, and those entries are settled. A masked step on the CPU thus reads and writes
each layer's tensors once where the eager path made four passes (mask, gradient, optimizer, threshold).
``score.grad`` stays None for the layers it prepares: ∂L/∂S is never materialised. (Gradients of several
backward passes before one step are summed as ∂L/∂W_eff and then taken to S, where torch sums score
gradients: the same gradient rounded in another order. Training here takes one backward per step.)

Whatever cannot take that path takes the ordinary one with the same bits: a gradient that reached a
prepared W_eff while the settings forbid the fused loop is turned into ``score.grad`` first, and when
the window does not hold τ (or not every layer was stepped) ``update_thresholds`` runs and the next
forward recomputes W_eff.
"""

from __future__ import annotations

import functools
import logging

import numpy as np
import torch
from torch import nn

from . import kernels
from . import threshold as thresholds
from .layers import MaskedLayerMixin, masked_layers
from .masking import straight_through_gradient

log = logging.getLogger(__name__)

_PROBE_SIZES = tuple(16 * j + 13 for j in range(48)) + (4096 + 13,)  # tails of 5 (width 8) or 13 (width 16)
_PROBE_STEPS = 3


@functools.cache
def torch_sgd_rounding() -> tuple[int, int] | None:
    """``(width, rounding bits)`` with which :func:`frozen_slt.score_loops.score_step` reproduces torch's fused
    CPU SGD kernel on this machine, or None when it cannot be used.

    torch's kernel is C++ whose compiler contracted some of its products and sums into fused
    multiply-adds, differently in its vectorised part (``width`` entries at a time) and in its scalar
    tail, and possibly differently for other CPUs or builds. So the candidates (vector width 8 or 16;
    decay, momentum and update each fused or not, in either part) are run on probes of mixed magnitudes
    and several sizes for a first step and two more, and the rounding is taken that gives torch's bits
    for every score and momentum entry, in the vectorised part and in the tail. None if numba is
    missing or no candidate matches.
    """
    try:
        loops = kernels.loops()  # whether or not they are switched on now: the answer is the machine's
    except RuntimeError:
        return None
    generator = torch.Generator().manual_seed(0)

    def mixed(size: int) -> torch.Tensor:
        magnitudes = torch.empty(size).uniform_(-4.0, 0.5, generator=generator)
        return torch.randn(size, generator=generator) * torch.pow(10.0, magnitudes)

    starts = [mixed(size) for size in _PROBE_SIZES]
    gradients = [[mixed(size) for size in _PROBE_SIZES] for _ in range(_PROBE_STEPS)]
    lr, decay, momentum = 0.1, 0.05, 0.9
    parameters = [start.clone().requires_grad_() for start in starts]
    reference = torch.optim.SGD(parameters, lr=lr, weight_decay=decay, momentum=momentum, fused=True)
    expected = []
    for step_gradients in gradients:
        for parameter, gradient in zip(parameters, step_gradients):
            parameter.grad = gradient * parameter.detach().sign()  # what score_step makes of it with W = 1
        reference.step()
        expected.append([(p.detach().clone(), reference.state[p]["momentum_buffer"].clone()) for p in parameters])

    rates = (np.float32(-lr), np.float32(decay), np.float32(momentum), np.float32(1.0))
    empty_window = np.empty(1, np.float32), np.empty(1, np.int64)
    for width in (8, 16):
        matches = {"body": [], "tail": []}  # roundings (3 bits) that reproduce each part
        for rounding in range(8):
            body = tail = True
            scores, velocities = [start.clone() for start in starts], [torch.empty_like(start) for start in starts]
            for step in range(_PROBE_STEPS):
                mode = (kernels.FIRST if step == 0 else 0) | kernels.DECAYED | rounding << 3 | rounding << 6
                for score, velocity, gradient, (want_score, want_velocity) in zip(scores, velocities, gradients[step],
                                                                                   expected[step]):
                    size = score.numel()
                    loops.score_step(kernels.flat(gradient), np.ones(size, np.float32), kernels.flat(score),
                                     kernels.flat(velocity), np.zeros(size, np.int8), rates, mode, width,
                                     np.float32(0.0), np.float32(0.0), np.empty(size, np.float32), *empty_window, 0)
                    same = ((score.view(torch.int32) == want_score.view(torch.int32))
                            & (velocity.view(torch.int32) == want_velocity.view(torch.int32)))
                    split = size - size % width
                    body = body and bool(same[:split].all())
                    tail = tail and bool(same[split:].all())
            for part, ok in (("body", body), ("tail", tail)):
                if ok:
                    matches[part].append(rounding)
        if matches["body"] and matches["tail"]:
            return width, matches["body"][0] << 3 | matches["tail"][0] << 6
    log.info("torch's fused SGD rounds in a way the fused score step does not reproduce on this CPU: scores are "
             "updated by torch's SGD after an ordinary backward (the same results, more passes over memory)")
    return None


def _float32(pattern: int) -> np.float32:
    return np.array([pattern], dtype=np.int32).view(np.float32)[0]


class ScoreSGD(torch.optim.SGD):
    """SGD (momentum, weight decay) on the scores of ``model``'s masked layers; ``step`` also updates τ.

    Build one per model: on the CPU it prepares the model's effective weights for as long as it lives,
    so the model's other optimizers would see no score gradients.
    """

    def __init__(self, model: nn.Module, lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
        super().__init__([p for p in model.parameters() if p.requires_grad], lr=lr, momentum=momentum,
                         weight_decay=weight_decay, fused=True)
        self.model = model
        self.layers = masked_layers(model)
        if not self.layers:
            raise ValueError("ScoreSGD trains the scores of masked layers, and the model has none")
        self._window = np.empty(0, np.float32)
        self._positions = np.empty(0, np.int64)
        self.rounding = torch_sgd_rounding() if self._fusable() else None
        if self.rounding is not None:
            for layer in self.layers:
                layer.prepare_for(self)
            if any(layer.prepared_arrays() is None for layer in self.layers):  # dynamic scale, another device
                for layer in self.layers:
                    layer.prepare_for(None)
                self.rounding = None

    def _fusable(self) -> bool:
        """Whether the settings are ones :func:`frozen_slt.score_loops.score_step` computes (as torch does)."""
        if len(self.param_groups) != 1:
            return False
        group = self.param_groups[0]
        scores = {id(layer.score) for layer in self.layers}
        return (group["momentum"] != 0 and group["dampening"] == 0 and not group["nesterov"] and not group["maximize"]
                and isinstance(group["lr"], float) and scores <= {id(p) for p in group["params"]})

    def zero_grad(self, set_to_none: bool = True) -> None:
        super().zero_grad(set_to_none)
        for layer in self.layers:
            layer.clear_prepared_gradient()

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        pending = [(layer, layer.prepared_arrays()) for layer in self.layers if layer.prepared_gradient() is not None]
        if pending and not (self.rounding is not None and self._fusable()
                            and all(arrays is not None for _, arrays in pending)):
            for layer, _ in pending:
                _materialise_score_gradient(layer)
            pending = []
        stepped = self._score_steps(pending) if pending else None
        if any(p.grad is not None for group in self.param_groups for p in group["params"]):
            super().step()  # the scores of layers not stepped above
        if stepped is None or not self._settle(*stepped):
            thresholds.update_thresholds(self.model)
        return loss

    def _score_steps(self, pending: list[tuple[MaskedLayerMixin, tuple[np.ndarray, ...]]]):
        """Run :func:`frozen_slt.score_loops.score_step` on each (layer, its prepared arrays); returns what
        :meth:`_settle` needs."""
        group = self.param_groups[0]
        capacity = thresholds._WINDOW_CAPACITY
        if self._window.size != capacity:
            self._window, self._positions = np.empty(capacity, np.float32), np.empty(capacity, np.int64)
        bounds = thresholds.window_bounds(self.layers)
        low, high = (_float32(bounds[1]), _float32(bounds[2])) if bounds is not None else (np.float32(0), np.float32(0))
        width, rounding = self.rounding
        decayed = kernels.DECAYED if group["weight_decay"] != 0 else 0
        loops, below, count, spans = kernels.loops(), 0, 0, []
        for layer, arrays in pending:
            scores, weights, states, _ = arrays
            state = self.state[layer.score]
            velocity = state.get("momentum_buffer")
            first = kernels.FIRST if velocity is None else 0
            if velocity is None:
                velocity = state["momentum_buffer"] = torch.empty_like(layer.score, requires_grad=False)
            effective = torch.empty_like(layer.weight)
            rates = (np.float32(-group["lr"]), np.float32(group["weight_decay"]), np.float32(group["momentum"]),
                     np.float32(layer.static_factor()))
            mode = first | decayed | (kernels.SCALED if layer.scale_mode == "static" else 0) | rounding
            start = count
            layer_below, count = loops.score_step(
                kernels.flat(layer.prepared_gradient().contiguous()), weights, scores, kernels.flat(velocity), states,
                rates, mode, width, low, high, kernels.flat(effective), self._window, self._positions, count)
            below += layer_below
            torch.autograd.graph.increment_version(layer.score)  # changed in place, as torch's step would
            torch.autograd.graph.increment_version(velocity)
            layer.clear_prepared_gradient()
            spans.append((layer, arrays, effective, start, count))
        return bounds, below, count, spans

    def _settle(self, bounds, below: int, count: int, spans: list) -> bool:
        """Select τ among the window's entries and finish the prepared effective weights; False (nothing
        changed) when some layer was not stepped or the window does not hold τ."""
        if bounds is None or len(spans) != len(self.layers):
            return False
        counts = thresholds.selection_counts(self.layers, thresholds.global_sparsity(self.layers))
        if thresholds.edge_threshold(counts) is not None:
            return False
        found = thresholds.select_in_window(self._window.view(np.int32), count, below, counts.rank)
        if found is None:
            return False
        thresholds.remember_move(self.layers, found, bounds[0])
        tau = thresholds.bits_to_threshold(found)
        loops = kernels.loops()
        tau_value = np.float32(float(tau))
        for layer, arrays, effective, start, end in spans:
            layer.threshold.copy_(tau)
            loops.settle_window(arrays[0], arrays[1], np.float32(layer.static_factor()), layer.scale_mode == "static",
                                tau_value, self._positions[start:end], kernels.flat(effective))
            layer.install_prepared_weight(effective, arrays)
        return True


def _materialise_score_gradient(layer: MaskedLayerMixin) -> None:
    """Turn the gradient on a layer's prepared W_eff into ``score.grad``, so that torch's SGD steps the score."""
    grad = straight_through_gradient(layer.prepared_gradient(), layer.weight, layer.score, layer.static_factor())
    layer.score.grad = grad if layer.score.grad is None else layer.score.grad.add_(grad)
    layer.clear_prepared_gradient()
