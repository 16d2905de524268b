"""Ratio arithmetic of docs/method.md §2: feasibility of (k, p, r), lock-share bounds, exact counts.

Every count in the project (``⌊N·k⌋`` zeros of the ticket, ``⌊n_l·p_l⌋`` pruned and ``⌊n_l·r_l⌋``
locked weights of a layer) goes through :func:`floor_count`, so that the same fraction always gives
the same count everywhere.
"""

from __future__ import annotations

import math

from ..errors import InfeasibleSettingError

#: Slack for comparing ratios that went through binary floating point (0.7 is not exactly 0.7).
RATIO_TOLERANCE = 1e-9

#: Absolute slack when flooring ``n·x``: ``0.7 * 10`` must give 7 even though ``0.7`` is stored as
#: 0.69999999999999996. Fractions that really sit within 1e-6 of an integer count do not occur.
_COUNT_TOLERANCE = 1e-6



def floor_count(n: int, fraction: float) -> int:
    """Return ``⌊n·fraction⌋`` for a count ``n`` and a fraction in [0, 1].

    Computed in float64 with an absolute tolerance of 1e-6, so binary rounding of decimal
    fractions never loses a whole weight. The authors compute ``⌊N·k⌋`` in float32, which can be off by
    a few counts above 2**24 weights; this project uses the exact value everywhere.
    """
    if n < 0:
        raise ValueError(f"count must be non-negative, got {n}")
    return min(n, max(0, math.floor(n * fraction + _COUNT_TOLERANCE)))


def check_unit_interval(name: str, value: float) -> None:
    """Raise unless ``value`` is a finite number in [0, 1]."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise InfeasibleSettingError(f"{name} must be a number in [0, 1], got {value!r}")
    if not 0.0 <= value <= 1.0:
        raise InfeasibleSettingError(f"{name} must lie in [0, 1], got {value}")


def lock_share_bounds(sparsity: float, freeze_ratio: float) -> tuple[float, float]:
    """Feasible lock shares s = r/f for given k and f > 0: max(0, 1 − k/f) ≤ s ≤ min(1, (1 − k)/f).

    Derived from p ≤ k ≤ 1 − r with p = f·(1 − s) and r = f·s. (docs/method.md §2 prints these bounds with k
    and 1 − k swapped, which are the bounds of the prune share p/f; with them the proportional split
    s = 1 − k, which §2 calls always feasible, would be refused for k < f/2.)
    """
    if freeze_ratio <= 0:
        raise InfeasibleSettingError("lock_share is undefined when freeze_ratio is 0")
    return max(0.0, 1.0 - sparsity / freeze_ratio), min(1.0, (1.0 - sparsity) / freeze_ratio)


def resolve_lock_share(sparsity: float, freeze_ratio: float, lock_share: float | str) -> tuple[float, float]:
    """Turn (k, f, s) into (prune_ratio, lock_ratio), checking s against its feasible range.

    ``lock_share="proportional"`` means s = 1 − k, which is always feasible and makes the free part
    itself reach sparsity k (p = f·k, r = f·(1 − k)). With f = 0 the lock share is ignored.
    """
    check_unit_interval("sparsity", sparsity)
    check_unit_interval("freeze_ratio", freeze_ratio)
    if isinstance(lock_share, str) and lock_share != "proportional":  # refused even where f = 0 ignores it
        raise InfeasibleSettingError(
            f"lock_share must be a number in [0, 1] or 'proportional', got {lock_share!r}"
        )
    if freeze_ratio == 0:
        return 0.0, 0.0
    if lock_share == "proportional":
        return freeze_ratio * sparsity, freeze_ratio * (1.0 - sparsity)
    check_unit_interval("lock_share", lock_share)
    low, high = lock_share_bounds(sparsity, freeze_ratio)
    if lock_share < low - RATIO_TOLERANCE:
        raise InfeasibleSettingError(
            f"lock_share={lock_share} is below its feasible minimum {low:.6g} = 1 - sparsity/freeze_ratio "
            f"for sparsity={sparsity}, freeze_ratio={freeze_ratio} (too many prunes: prune_ratio would exceed "
            f"sparsity); allowed: [{low:.6g}, {high:.6g}]"
        )
    if lock_share > high + RATIO_TOLERANCE:
        raise InfeasibleSettingError(
            f"lock_share={lock_share} is above its feasible maximum {high:.6g} = (1 - sparsity)/freeze_ratio "
            f"for sparsity={sparsity}, freeze_ratio={freeze_ratio} (too many locks: lock_ratio would exceed "
            f"1 - sparsity); allowed: [{low:.6g}, {high:.6g}]"
        )
    return freeze_ratio * (1.0 - lock_share), freeze_ratio * lock_share


def check_feasible(sparsity: float, prune_ratio: float, lock_ratio: float) -> None:
    """Raise :class:`InfeasibleSettingError` unless p ≤ k ≤ 1 − r and p + r ≤ 1 (docs/method.md §2)."""
    check_unit_interval("sparsity", sparsity)
    check_unit_interval("prune_ratio", prune_ratio)
    check_unit_interval("lock_ratio", lock_ratio)
    if prune_ratio + lock_ratio > 1.0 + RATIO_TOLERANCE:
        raise InfeasibleSettingError(
            f"prune_ratio + lock_ratio must be <= 1, got {prune_ratio} + {lock_ratio} = {prune_ratio + lock_ratio:.6g}"
        )
    if sparsity < prune_ratio - RATIO_TOLERANCE:
        raise InfeasibleSettingError(
            f"sparsity must be >= prune_ratio (pruned weights are zeros of the ticket), "
            f"got sparsity={sparsity} < prune_ratio={prune_ratio}"
        )
    if sparsity > 1.0 - lock_ratio + RATIO_TOLERANCE:
        raise InfeasibleSettingError(
            f"sparsity must be <= 1 - lock_ratio (locked weights are ones of the ticket), "
            f"got sparsity={sparsity} > 1 - lock_ratio={1.0 - lock_ratio:.6g}"
        )
