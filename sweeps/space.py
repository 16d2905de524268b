"""Search spaces. They only suggest values (family, sparsity, freeze_ratio, lock_share, seed); nothing here
builds a model. Every point they produce is feasible under docs/method.md §2.
"""

from __future__ import annotations

from typing import Any

from frozen_slt.errors import InfeasibleSettingError
from frozen_slt.ratios import lock_share_bounds, resolve_lock_share

from .spec import SweepSpec

#: Smallest lock share the optuna space gives the frozen family (s = 0 is the pruned family).
MIN_FROZEN_LOCK_SHARE = 0.01


def grid_points(spec: SweepSpec) -> tuple[list[dict[str, Any]], list[str]]:
    """The grid of families × sparsity × freeze ratio × seeds, and a note for every infeasible point left out.

    dense: every sparsity (f = 0). pruned: lock share 0, so p = f, which needs f ≤ k. frozen: the
    configured lock share (proportional by default, always feasible) at every (k, f) with f > 0.
    """
    points, skipped = [], []
    for seed in spec.seeds:
        if spec.weight_trained_baseline:
            points.append({"family": "weight_trained", "seed": seed})
        for sparsity in spec.grid_sparsity:
            if "dense" in spec.families:
                points.append({"family": "dense", "sparsity": sparsity, "seed": seed})
            for freeze_ratio in (f for f in spec.grid_freeze_ratio if f > 0):
                for family in ("pruned", "frozen"):
                    if family not in spec.families:
                        continue
                    share = 0.0 if family == "pruned" else spec.grid_lock_share
                    try:
                        resolve_lock_share(sparsity, freeze_ratio, share)
                    except InfeasibleSettingError:
                        skipped.append(f"{family} k={sparsity} f={freeze_ratio}" + ("" if family == "pruned" else f" s={share}"))
                        continue
                    points.append({"family": family, "sparsity": sparsity, "freeze_ratio": freeze_ratio,
                                   "lock_share": share, "seed": seed})
    return points, skipped


class OptunaSpace:
    """Define-by-run space for Optuna: the ranges of later values depend on earlier ones, so that every
    suggestion is feasible: for pruned sources f ≤ k; for frozen sources
    max(0.01, 1 − k/f) ≤ s ≤ min(1, (1−k)/f) (p = (1−s)·f ≤ k and r = s·f ≤ 1 − k).
    Calling it on a trial returns the constants of the point.

    A class rather than a closure: Ray pickles the searcher, and this space with it, in every
    experiment snapshot, and a resumed sweep unpickles it.
    """

    def __init__(self, spec: SweepSpec) -> None:
        self.sparsity_range = spec.sparsity_range
        self.freeze_range = spec.freeze_range
        self.families = list(spec.families)
        self.seed = spec.seeds[0]

    def __call__(self, trial) -> dict[str, Any]:
        low_f, high_f = self.freeze_range
        family = trial.suggest_categorical("family", self.families)
        sparsity = trial.suggest_float("sparsity", *self.sparsity_range)
        if family == "dense":
            return {"seed": self.seed}
        if family == "pruned":
            trial.suggest_float("freeze_ratio", min(low_f, sparsity), min(high_f, sparsity))
            return {"seed": self.seed, "lock_share": 0.0}
        freeze_ratio = trial.suggest_float("freeze_ratio", low_f, high_f)
        low_s, high_s = lock_share_bounds(sparsity, freeze_ratio)
        trial.suggest_float("lock_share", max(low_s, min(MIN_FROZEN_LOCK_SHARE, high_s)), high_s)
        return {"seed": self.seed}
