"""One seed per source of randomness, each feeding its own ``torch.Generator``.

The generator for a purpose is seeded from a hash of (purpose, seed), so equal seed values for two
purposes (say weight_seed = score_seed = 0) still give unrelated streams.
"""

from __future__ import annotations

import hashlib

import torch

PURPOSES = ("weights", "scores", "freeze", "split", "order", "augment", "fixed")


def derive_seed(purpose: str, seed: int, *salt: int) -> int:
    """A 63-bit seed for ``purpose`` from the user's ``seed`` (and optional salts such as the epoch)."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown seed purpose {purpose!r}; valid: {', '.join(PURPOSES)}")
    text = ":".join(str(part) for part in (purpose, seed, *salt))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & ((1 << 63) - 1)


def make_generator(purpose: str, seed: int, *salt: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A fresh generator on ``device`` for ``purpose``; weights, scores and patterns are drawn on the CPU."""
    generator = torch.Generator(device=device)
    generator.manual_seed(derive_seed(purpose, seed, *salt))
    return generator
