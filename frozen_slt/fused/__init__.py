"""The fast path on the CPU: fused loops compiled by numba, and the one function that decides where they run.

A masked training step computes three quantities: the effective weight W_eff, the score gradient ∂L/∂S
and the global threshold τ. Each has a reference implementation in PyTorch's operators, in
:mod:`frozen_slt.method.masking` (W_eff and ∂L/∂S) and :mod:`frozen_slt.method.threshold` (τ, a radix select with
shapes fixed in advance); that is what CUDA runs, what the CPU runs when these loops cannot, and what
a reader should meet first. This package holds the fused CPU implementation of the same three, bit for
bit (``+0`` for a dropped weight where the operators may give ``-0``, which nothing downstream sees):

* W_eff: :func:`loops.masked_weight`, held as a leaf tensor by :mod:`.weight`;
* ∂L/∂S: :func:`loops.masked_weight_grad`, run by a hook on that leaf (:mod:`.weight`);
* τ: :mod:`.window`, a search in a window around the previous τ, then a two-pass radix select.

One more fusion has a measured reason (benchmarks/README.md: on Conv6 digits steps it took the masked
step from 1.17–1.18x to 1.07–1.11x of the fixed-weight floor, back to back): :func:`loops.score_step`,
used by :class:`frozen_slt.training.score_sgd.ScoreSGD`, computes ∂L/∂S, the SGD update, the window's counts
and the next W_eff in one pass per layer, and :func:`loops.settle_window` finishes W_eff once τ is
picked among the window's entries. The update rounds like torch's compiled SGD kernel, which
:mod:`.rounding` probes once per process.

:func:`.route.route` decides, for a layer and its next step, which of them runs (``eager``, ``fused``
or ``fused step``) and says why; the layer's forward, the threshold update and the optimizer all ask
it. Nothing here imports the rest of frozen_slt: the layers are read through their attributes.
"""
