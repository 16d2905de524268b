"""Search points: the few values a sweep varies, and how they become a validated ExperimentConfig.

The vocabulary of sweeps, without Ray: the source families and the point → config arithmetic, which the
sweep driver, its search strategies and the Ray trainable share. A point is a flat dict: ``family`` (dense, pruned, frozen or weight_trained), ``sparsity``,
``freeze_ratio``, ``lock_share`` (a number or "proportional") and ``seed``. The search space only
suggests these values; this module is the one place that turns them into settings.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..errors import ConfigError
from ..method.ratios import resolve_lock_share
from .experiment import ExperimentConfig

#: The three source families of docs/method.md §2, then the weight-trained baseline.
TICKET_FAMILIES = ("dense", "pruned", "frozen")
FAMILIES = (*TICKET_FAMILIES, "weight_trained")
#: What each ticket family's ratios must satisfy (docs/method.md §2), for the error that names a mismatch.
FAMILY_NEEDS = {
    "dense": "a dense source freezes nothing (f = 0)",
    "pruned": "a pruned source needs 0 < f <= k and locks nothing (s = 0)",
    "frozen": "a frozen source locks some weights, r = s·f > 0, which needs f > 0, k < 1 and 0 < s <= (1 - k)/f",
}


def point_overrides(point: Mapping[str, Any]) -> dict[str, Any]:
    """Flat ExperimentConfig overrides for a point (seed drives weights, scores, freeze pattern and order)."""
    family = point.get("family")
    if family not in FAMILIES:
        raise ConfigError(f"unknown family {family!r}; valid: {', '.join(FAMILIES)}")
    out: dict[str, Any] = {}
    if "seed" in point:
        seed = int(point["seed"])
        out.update(weight_seed=seed, score_seed=seed, freeze_seed=seed, order_seed=seed)
    if family == "weight_trained":
        return {**out, "weight_trained": True, "freeze_ratio": 0.0}
    out.update(weight_trained=False, sparsity=float(point["sparsity"]))
    if family == "dense":
        return {**out, "freeze_ratio": 0.0}
    out["freeze_ratio"] = float(point["freeze_ratio"])
    out["lock_share"] = 0.0 if family == "pruned" else point.get("lock_share", "proportional")
    return out


def point_config(base: ExperimentConfig, point: Mapping[str, Any]) -> ExperimentConfig:
    """``base`` with the point applied, validated, and checked to belong to the point's family."""
    config = base.with_overrides(point_overrides(point))
    if config.family != point["family"]:
        ticket = config.ticket
        raise ConfigError(f"it resolves to p = {ticket.prune_ratio:.4g}, r = {ticket.lock_ratio:.4g}, a {config.family} "
                          f"source, not {point['family']}: {FAMILY_NEEDS[point['family']]}")
    return config


def coordinates(point: Mapping[str, Any]) -> dict[str, float]:
    """The ratios a ticket point resolves to: k, f, s, and p, r by :func:`~frozen_slt.method.ratios.resolve_lock_share`
    (p = (1 − s)·f, r = s·f, docs/method.md §2); empty for the weight-trained baseline."""
    if point.get("family") == "weight_trained":
        return {}
    sparsity, freeze_ratio = float(point["sparsity"]), float(point.get("freeze_ratio", 0.0))
    share = point.get("lock_share", 0.0) if freeze_ratio else 0.0
    prune_ratio, lock_ratio = resolve_lock_share(sparsity, freeze_ratio, share)
    lock_share = 1.0 - sparsity if share == "proportional" else float(share)
    return {"k": sparsity, "f": freeze_ratio, "s": lock_share, "p": prune_ratio, "r": lock_ratio}
