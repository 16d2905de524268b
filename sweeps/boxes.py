"""Each family's feasible region as a unit box, so that every sampler works on [0, 1]^d and every
suggestion is a feasible ticket (docs/method.md §2).

Box coordinates are ``u_sparsity``, ``u_freeze_ratio`` and ``u_lock_share``; each becomes a ratio by
linear interpolation between bounds that may depend on the ratios before it:

- dense: k = k_lo + u_k (k_hi − k_lo)  (f = 0)
- pruned: k as for dense; f = min(f_lo, k) + u_f (min(f_hi, k) − min(f_lo, k)), so p = f ≤ k  (s = 0)
- frozen: k and f from their ranges; s = s_lo + u_s (s_hi − s_lo) with s_lo = max(0.01, 1 − k/f) (at
  most s_hi) and s_hi = min(1, (1 − k)/f): then p = (1 − s) f ≤ k and r = s f ≤ 1 − k.

A box may hold the freezing ratio fixed (the size-aware strategy places f, which fixes the ticket's
size, itself): then a pruned source takes k in [max(k_lo, f), k_hi]. A ticket's size is about
(1 − f)·N bits for pruned and frozen sources and N for dense ones, whatever k and s are, so
:func:`size_freeze_ratios` can spread trials along the size axis before anything is trained.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from frozen_slt.errors import SweepConfigError
from frozen_slt.method.ratios import lock_share_bounds

#: Smallest lock share a frozen source gets (s = 0 is the pruned family).
MIN_FROZEN_LOCK_SHARE = 0.01
U_SPARSITY, U_FREEZE, U_LOCK = "u_sparsity", "u_freeze_ratio", "u_lock_share"


def _between(low: float, high: float, u: float) -> float:
    return min(max(low + u * (high - low), low), high)  # exact at the ends, whatever the rounding


@dataclass(frozen=True)
class FamilyBox:
    """The unit box of one family over the sweep's ranges of k and f (``freeze_ratio``: f held fixed)."""

    family: str
    sparsity_range: tuple[float, float]
    freeze_range: tuple[float, float]
    freeze_ratio: float | None = None

    def __post_init__(self) -> None:
        if self.family not in ("dense", "pruned", "frozen"):
            raise SweepConfigError(f"no search box for family {self.family!r}")
        if self.family == "pruned" and self.reachable_freeze()[0] > self.reachable_freeze()[1]:
            raise SweepConfigError(
                f"[optuna] freeze_ratio {list(self.freeze_range)} lies above sparsity {list(self.sparsity_range)}: "
                "a pruned source needs freeze_ratio <= sparsity; lower the freezing ratios or drop \"pruned\"")

    @property
    def dimensions(self) -> tuple[str, ...]:
        if self.family == "dense":
            return (U_SPARSITY,)
        searched = (U_SPARSITY,) if self.freeze_ratio is not None else (U_SPARSITY, U_FREEZE)
        return searched if self.family == "pruned" else (*searched, U_LOCK)

    def reachable_freeze(self) -> tuple[float, float]:
        """The freezing ratios this family can take (pruned: f ≤ k ≤ k_hi); (0, 0) for dense."""
        if self.family == "dense":
            return 0.0, 0.0
        low, high = self.freeze_range
        return (low, min(high, self.sparsity_range[1])) if self.family == "pruned" else (low, high)

    def point(self, box: Mapping[str, float], seed: int) -> dict[str, Any]:
        """The search point (see frozen_slt.config.points) at box coordinates ``box`` (exactly ``dimensions``)."""
        if set(box) != set(self.dimensions) or not all(0.0 <= float(u) <= 1.0 for u in box.values()):
            raise ValueError(f"box coordinates of the {self.family} box are {self.dimensions} in [0, 1], got {dict(box)}")
        k_low, k_high = self.sparsity_range
        if self.family == "pruned" and self.freeze_ratio is not None:
            k_low = max(k_low, self.freeze_ratio)
        sparsity = _between(k_low, k_high, box[U_SPARSITY])
        if self.family == "dense":
            return {"family": "dense", "sparsity": sparsity, "seed": seed}
        freeze_ratio = self.freeze_ratio
        if freeze_ratio is None:
            low, high = self.freeze_range
            if self.family == "pruned":
                low, high = min(low, sparsity), min(high, sparsity)
            freeze_ratio = _between(low, high, box[U_FREEZE])
        if self.family == "pruned":
            return {"family": "pruned", "sparsity": sparsity, "freeze_ratio": freeze_ratio, "lock_share": 0.0, "seed": seed}
        low_s, high_s = lock_share_bounds(sparsity, freeze_ratio)
        lock_share = _between(max(low_s, min(MIN_FROZEN_LOCK_SHARE, high_s)), high_s, box[U_LOCK])
        return {"family": "frozen", "sparsity": sparsity, "freeze_ratio": freeze_ratio, "lock_share": lock_share, "seed": seed}

    def is_single_point(self) -> bool:
        """Whether every box coordinate gives the same ticket (a pruned source with f fixed at k_hi)."""
        return self.point(self.corners()[0], 0) == self.point(self.corners()[-1], 0)

    def corners(self) -> list[dict[str, float]]:
        """Every corner of the box (each coordinate 0 or 1), to validate a sweep before it starts."""
        corners: list[dict[str, float]] = [{}]
        for name in self.dimensions:
            corners = [{**corner, name: end} for corner in corners for end in (0.0, 1.0)]
        return corners


def size_freeze_ratios(box: FamilyBox, count: int) -> list[float]:
    """``count`` freezing ratios whose ticket sizes, about (1 − f)·N, are log-spaced over the family's
    reachable range, smallest ticket first (a single one: the geometric middle). Dense sources have one
    size whatever k is: [0.0]."""
    low, high = box.reachable_freeze()
    if box.family == "dense" or low == high:
        return [high]
    if count == 1:
        return [1.0 - math.sqrt((1.0 - low) * (1.0 - high))]
    smallest, largest = 1.0 - high, 1.0 - low
    return [1.0 - smallest * (largest / smallest) ** (j / (count - 1)) for j in range(count)]
