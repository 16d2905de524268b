"""``ScoreSGD``: SGD on a ticket's scores whose step also moves the global threshold (docs/method.md §4).

It is ``torch.optim.SGD`` with its fused kernel (the same parameter groups, state and checkpoints, which
either can load), and after ``step()`` every masked layer's τ is current: a training step calls nothing
after it. Scores, momentum buffers, thresholds and masks are those of ``torch.optim.SGD(fused=True)``
followed by :func:`~frozen_slt.method.threshold.update_thresholds`, bit for bit.

It claims the model's masked layers; where :func:`frozen_slt.fused.route.route` sends a layer to the
``fused step`` (on the CPU, with settings the fused loop computes: float32, scale ``none`` or
``static``, momentum without Nesterov or dampening, and torch's SGD kernel rounding in a way the loop
reproduces on this machine), the layer holds its W_eff as a leaf tensor, the backward stops at
∂L/∂W_eff, and ``step`` runs one loop per layer (:func:`frozen_slt.fused.loops.score_step`): the
straight-through score gradient, the SGD update, the count of the new scores below and inside the
threshold's search window, and the next W_eff wherever the window already decides the mask. τ is then
selected among the few entries inside the window, and those entries are settled. ``score.grad`` stays
None for those layers: ∂L/∂S is never materialised. (Gradients of several backward passes before one
step are summed as ∂L/∂W_eff and then taken to S, where torch sums score gradients: the same gradient
rounded in another order. Training here takes one backward per step.)

Whatever cannot take that path takes the ordinary one with the same bits: a gradient that reached a
held W_eff while the route forbids the fused step is turned into ``score.grad`` first, and when the
window does not hold τ (or not every layer was stepped) ``update_thresholds`` runs and the next
forward recomputes W_eff.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..fused import weight as fused_weight
from ..fused.rounding import torch_sgd_rounding
from ..fused.route import EAGER, FUSED_STEP, flat, loops, route
from ..fused.window import ThresholdWindow
from ..method import threshold as thresholds
from ..method.layers import masked_layers


def _float32(pattern: int) -> np.float32:
    return np.array([pattern], dtype=np.int32).view(np.float32)[0]


class ScoreSGD(torch.optim.SGD):
    """SGD (momentum, weight decay) on the scores of ``model``'s masked layers; ``step`` also updates τ.

    Build one per model: it claims the model's masked layers for as long as it lives, so the model's other
    optimizers would see no score gradients on the fused step's route.
    """

    def __init__(self, model: nn.Module, lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
        super().__init__([p for p in model.parameters() if p.requires_grad], lr=lr, momentum=momentum,
                         weight_decay=weight_decay, fused=True)
        self.model = model
        self.layers = masked_layers(model)
        if not self.layers:
            raise ValueError("ScoreSGD trains the scores of masked layers, and the model has none")
        self.window = ThresholdWindow()
        on_cpu = any(route(layer).path != EAGER for layer in self.layers)
        self.rounding = torch_sgd_rounding() if on_cpu else None  # the probe runs only where the loop could
        self.blocker = self._blocker()
        for layer in self.layers:
            layer.claim(self)

    def _blocker(self) -> str | None:
        """What keeps this optimizer from the fused score step, in a phrase (None: nothing)."""
        if self.rounding is None:
            return "torch's SGD kernel rounds on this machine in a way the fused score step does not reproduce"
        if len(self.param_groups) != 1:
            return "the optimizer has several parameter groups"
        group = self.param_groups[0]
        if group["momentum"] == 0 or group["dampening"] != 0 or group["nesterov"] or group["maximize"]:
            return "the fused score step computes momentum SGD without dampening, Nesterov or maximize"
        if not isinstance(group["lr"], float):
            return "the fused score step needs a float learning rate"
        if not {id(layer.score) for layer in self.layers} <= {id(p) for p in group["params"]}:
            return "some scores are not in the optimizer's parameter group"
        return None

    def zero_grad(self, set_to_none: bool = True) -> None:
        super().zero_grad(set_to_none)
        for layer in self.layers:
            fused_weight.clear_gradient(layer)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.blocker = self._blocker()
        pending = [layer for layer in self.layers if fused_weight.pending_gradient(layer) is not None]
        routes = [route(layer) for layer in pending]
        if not all(path.path == FUSED_STEP for path in routes):
            for layer in pending:
                fused_weight.materialise(layer)
            pending = []
        stepped = self._score_steps(list(zip(pending, routes))) if pending else None
        if any(p.grad is not None for group in self.param_groups for p in group["params"]):
            super().step()  # the scores of layers not stepped above
        if stepped is None or not self._settle(*stepped):
            thresholds.update_thresholds(self.model, self.window)
        return loss

    def _score_steps(self, pending: list):
        """Run :func:`frozen_slt.fused.loops.score_step` on each (layer, its route); returns what
        :meth:`_settle` needs."""
        compiled, group = loops(), self.param_groups[0]
        bounds = self.window.bounds(int(self.layers[0].threshold.view(torch.int32)))
        low, high = (_float32(bounds[1]), _float32(bounds[2])) if bounds is not None else (np.float32(0), np.float32(0))
        buffers = compiled.WindowBuffers(low, high, self.window.values, self.window.positions)
        below, count, spans = 0, 0, []
        for layer, path in pending:
            state = self.state[layer.score]
            velocity = state.get("momentum_buffer")
            first = velocity is None
            if first:
                velocity = state["momentum_buffer"] = torch.empty_like(layer.score, requires_grad=False)
            effective = torch.empty_like(layer.weight)
            views = path.views
            arrays = compiled.StepArrays(flat(fused_weight.pending_gradient(layer).contiguous()), views.weight,
                                         views.score, flat(velocity), views.state, flat(effective))
            rates = compiled.SGDRates(np.float32(-group["lr"]), np.float32(group["weight_decay"]),
                                      np.float32(group["momentum"]), np.float32(layer.static_factor()))
            flags = compiled.StepFlags(first, group["weight_decay"] != 0, layer.scale_mode == "static")
            start = count
            layer_below, count = compiled.score_step(arrays, rates, flags, self.rounding, buffers, count)
            below += layer_below
            torch.autograd.graph.increment_version(layer.score)  # changed in place, as torch's step would
            torch.autograd.graph.increment_version(velocity)
            fused_weight.clear_gradient(layer)
            spans.append((layer, path, effective, start, count))
        return bounds, below, count, spans

    def _settle(self, bounds, below: int, count: int, spans: list) -> bool:
        """Select τ among the window's entries and finish the held effective weights; False (nothing changed)
        when some layer was not stepped or the window does not hold τ."""
        if bounds is None or len(spans) != len(self.layers):
            return False
        counts = thresholds.selection_counts(self.layers, thresholds.global_sparsity(self.layers))
        if thresholds.edge_threshold(counts) is not None:
            return False
        found = self.window.select(count, below, counts.rank)
        if found is None:
            return False
        self.window.remember(found, bounds[0])
        tau = thresholds.bits_to_threshold(found)
        compiled, tau_value = loops(), np.float32(float(tau))
        for layer, path, effective, start, end in spans:
            layer.threshold.copy_(tau)
            compiled.settle_window(path.views.score, path.views.weight, fused_weight.static_scale(layer), tau_value,
                                   self.window.positions[start:end], flat(effective))
            fused_weight.install(layer, path, effective)
        return True
