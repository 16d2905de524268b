"""Helpers shared by test modules (test modules never import one another): masked layers with random state,
the fused-loop switch, exact bit comparisons, and the authors' threshold as the specification of τ."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import struct
import sys
from pathlib import Path

import torch

from frozen_slt.fused.route import set_enabled
from frozen_slt.method.layers import LOCKED, PRUNED, MaskedLinear

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY / "benchmarks"))

from reference import (  # noqa: E402  (the authors' formulation of τ)
    reference_threshold,
    reference_update,
)

__all__ = ["REPOSITORY", "assert_weight_follows_changes", "bits", "fused_loops", "make_layers", "random_layer",
           "reference_threshold", "reference_update", "rewrite_ticket", "ticket_header"]


@contextlib.contextmanager
def fused_loops(enabled: bool):
    """Run the block with the fused CPU loops switched on or off."""
    previous = set_enabled(enabled)
    try:
        yield
    finally:
        set_enabled(previous)


def bits(tensor: torch.Tensor) -> torch.Tensor:
    """A float32 tensor's bit patterns, for comparisons that a rounding difference would fail."""
    return tensor.detach().contiguous().view(torch.int32)


def random_layer(layer, seed, pruned=5, locked=7):
    """``layer`` with random weights and scores, ``pruned`` and ``locked`` random entries and τ = 0.6."""
    generator = torch.Generator().manual_seed(seed)
    layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator))
    layer.score.data.copy_(torch.randn(layer.score.shape, generator=generator))
    state = torch.zeros(layer.weight.numel(), dtype=torch.int8)
    order = torch.randperm(layer.weight.numel(), generator=generator)
    state[order[:pruned]] = PRUNED
    state[order[pruned : pruned + locked]] = LOCKED
    layer.set_freeze_state(state.view(layer.weight.shape))
    layer.threshold.fill_(0.6)
    return layer


def make_layers(sizes, prune_fraction, lock_fraction, seed, quantize=None):
    """Masked linear layers with random scores and an exact random freeze pattern per layer."""
    generator = torch.Generator().manual_seed(seed)
    layers = []
    for out_features, in_features in sizes:
        layer = MaskedLinear(in_features, out_features)
        scores = torch.randn(out_features, in_features, generator=generator)
        if quantize:
            scores = torch.round(scores * quantize) / quantize
        layer.score.data.copy_(scores)
        n = out_features * in_features
        order = torch.randperm(n, generator=generator)
        state = torch.zeros(n, dtype=torch.int8)
        pruned, locked = math.floor(n * prune_fraction), math.floor(n * lock_fraction)
        state[order[:pruned]] = PRUNED
        state[order[pruned : pruned + locked]] = LOCKED
        layer.set_freeze_state(state.view(out_features, in_features))
        layers.append(layer)
    return layers


def assert_weight_follows_changes(layer, eager_weight) -> None:
    """``layer``'s effective weight equals ``eager_weight()`` (the same layer's, computed afresh) after each
    change of its state made outside any optimizer: the scores in place, τ, the freeze state."""
    assert torch.equal(layer.effective_weight().detach(), eager_weight())
    with torch.no_grad():
        layer.score.mul_(-2.0)  # in place, seen by the version counter
    assert torch.equal(layer.effective_weight().detach(), eager_weight())
    layer.threshold.fill_(layer.score.detach().abs().median().item())
    assert torch.equal(layer.effective_weight().detach(), eager_weight())
    state = layer.freeze_state.clone()
    layer.set_freeze_state(torch.zeros_like(state))
    assert torch.equal(layer.effective_weight().detach(), eager_weight())
    layer.set_freeze_state(state)
    assert torch.equal(layer.effective_weight().detach(), eager_weight())


def ticket_header(blob: bytes) -> dict:
    """The JSON header of a ticket file's bytes."""
    (length,) = struct.unpack_from("<I", blob, 10)
    return json.loads(blob[14 : 14 + length])


def rewrite_ticket(blob: bytes, version: int | None = None, header: dict | None = None) -> bytes:
    """A ticket file's ``blob`` with another version or header, re-checksummed (a well-formed file that says
    something else: what a crafted file looks like)."""
    (length,) = struct.unpack_from("<I", blob, 10)
    body = bytearray(blob[:-32])
    if version is not None:
        struct.pack_into("<H", body, 8, version)
    if header is not None:
        raw = json.dumps(header).encode()
        body = body[:10] + struct.pack("<I", len(raw)) + raw + body[14 + length :]
    return bytes(body) + hashlib.sha256(bytes(body)).digest()
