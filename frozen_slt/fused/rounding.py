"""How torch's fused CPU SGD kernel rounds on this machine, so that the fused score step can round alike.

torch's kernel is C++ whose compiler contracted some of its products and sums into fused multiply-adds,
differently in its vectorised part (``width`` entries at a time) and in its scalar tail, and possibly
differently for other CPUs or builds. :func:`torch_sgd_rounding` finds out once per process.
"""

from __future__ import annotations

import functools
import logging

import numpy as np
import torch

from .route import compiled, flat

log = logging.getLogger(__name__)

_PROBE_SIZES = tuple(16 * j + 13 for j in range(48)) + (4096 + 13,)  # tails of 5 (width 8) or 13 (width 16)
_PROBE_STEPS = 3
_LR, _DECAY, _MOMENTUM = 0.1, 0.05, 0.9


def _probe_tensors() -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
    """Starting scores and three steps' gradients of mixed magnitudes, one of each probe size."""
    generator = torch.Generator().manual_seed(0)

    def mixed(size: int) -> torch.Tensor:
        magnitudes = torch.empty(size).uniform_(-4.0, 0.5, generator=generator)
        return torch.randn(size, generator=generator) * torch.pow(10.0, magnitudes)

    starts = [mixed(size) for size in _PROBE_SIZES]
    return starts, [[mixed(size) for size in _PROBE_SIZES] for _ in range(_PROBE_STEPS)]


def _torch_steps(starts, gradients) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    """(score, momentum) of every probe after each of torch's fused SGD steps."""
    parameters = [start.clone().requires_grad_() for start in starts]
    reference = torch.optim.SGD(parameters, lr=_LR, weight_decay=_DECAY, momentum=_MOMENTUM, fused=True)
    expected = []
    for step_gradients in gradients:
        for parameter, gradient in zip(parameters, step_gradients):
            parameter.grad = gradient * parameter.detach().sign()  # what score_step makes of it with W = 1
        reference.step()
        expected.append([(p.detach().clone(), reference.state[p]["momentum_buffer"].clone()) for p in parameters])
    return expected


def _reproduces(loops, width: int, contraction, starts, gradients, expected) -> tuple[bool, bool]:
    """Whether ``contraction`` in both parts gives torch's bits in the vectorised part and in the tail."""
    body = tail = True
    rates = loops.SGDRates(np.float32(-_LR), np.float32(_DECAY), np.float32(_MOMENTUM), np.float32(1.0))
    rounding = loops.Rounding(width, contraction, contraction)
    empty = loops.WindowBuffers(np.float32(0.0), np.float32(0.0), np.empty(1, np.float32), np.empty(1, np.int64))
    scores, velocities = [start.clone() for start in starts], [torch.empty_like(start) for start in starts]
    for step in range(_PROBE_STEPS):
        flags = loops.StepFlags(first=step == 0, decayed=True, scaled=False)
        for score, velocity, gradient, (want_score, want_velocity) in zip(scores, velocities, gradients[step],
                                                                           expected[step]):
            size = score.numel()
            arrays = loops.StepArrays(flat(gradient), np.ones(size, np.float32), flat(score), flat(velocity),
                                      np.zeros(size, np.int8), np.empty(size, np.float32))
            loops.score_step(arrays, rates, flags, rounding, empty, 0)
            same = ((score.view(torch.int32) == want_score.view(torch.int32))
                    & (velocity.view(torch.int32) == want_velocity.view(torch.int32)))
            split = size - size % width
            body = body and bool(same[:split].all())
            tail = tail and bool(same[split:].all())
    return body, tail


@functools.cache
def torch_sgd_rounding():
    """The ``loops.Rounding`` with which :func:`frozen_slt.fused.loops.score_step` reproduces torch's fused CPU
    SGD kernel on this machine, or None when it cannot be used.

    The candidates (vector width 8 or 16; decay, momentum and update each fused or not, in either part)
    are run on probes of mixed magnitudes and several sizes for a first step and two more, and the
    rounding is taken that gives torch's bits for every score and momentum entry, in the vectorised part
    and in the tail. None if numba is missing or no candidate matches. The answer is the machine's,
    whether or not the fused loops are switched on now.
    """
    loops = compiled()
    if loops is None:
        return None
    starts, gradients = _probe_tensors()
    expected = _torch_steps(starts, gradients)
    for width in (8, 16):
        body, tail = [], []  # contractions that reproduce each part
        for code in range(8):  # the order of earlier releases, which took the first match
            contraction = loops.Contraction(bool(code & 1), bool(code & 2), bool(code & 4))
            in_body, in_tail = _reproduces(loops, width, contraction, starts, gradients, expected)
            body += [contraction] if in_body else []
            tail += [contraction] if in_tail else []
        if body and tail:
            return loops.Rounding(width, body[0], tail[0])
    log.info("torch's fused SGD rounds in a way the fused score step does not reproduce on this CPU: scores are "
             "updated by torch's SGD after an ordinary backward (the same results, more passes over memory)")
    return None
