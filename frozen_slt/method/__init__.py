"""The method of docs/method.md, in its reference form: what the paper defines, in plain PyTorch.

- ratios: the arithmetic of (k, f, p, r, s), feasibility and exact counts (§2);
- distributions, freezing: how many weights of each layer are pruned and locked, and which (§7);
- inits, seeding, initialize: the random weights, scores and freeze pattern, each from its own seed (§5);
- layers, masking: masked layers and the effective weight with its straight-through gradient (§3, §6);
- threshold: the global threshold τ (§4);
- memory: what a ticket costs in bits (§10).

Where the fast path (:mod:`frozen_slt.fused`) computes the same thing on the CPU, the functions here are
the reference it must match bit for bit, and what CUDA runs; :func:`frozen_slt.fused.route.route` picks one.
"""
