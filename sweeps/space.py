"""Search spaces. They only suggest values (family, sparsity, freeze_ratio, lock_share, seed); nothing here
builds a model. Every point they produce is feasible under docs/method.md §2, and :func:`plan_sweep`
proves it before Ray starts: each grid point becomes a validated ExperimentConfig, and the Optuna
space's corners do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from frozen_slt.errors import FrozenSLTError, InfeasibleSettingError, SweepConfigError
from frozen_slt.ratios import RATIO_TOLERANCE, lock_share_bounds, resolve_lock_share

from trainables.points import point_config

from .spec import SweepSpec

#: Smallest lock share the optuna space gives the frozen family (s = 0 is the pruned family).
MIN_FROZEN_LOCK_SHARE = 0.01
#: Infeasible (k, f) pairs named in full in an error; the rest are counted.
NAMED_PAIRS = 5


@dataclass(frozen=True)
class SweepPlan:
    """What a sweep will run: the grid's points (empty for Optuna) and the pruned points left out."""

    points: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def grid_points(spec: SweepSpec) -> tuple[list[dict[str, Any]], list[str]]:
    """The grid of families × sparsity × freeze ratio × seeds, and a note for every pruned point left out.

    dense: every sparsity (f = 0). pruned: lock share 0, so p = f, which needs f ≤ k: the pairs with
    f > k are left out (the only points ever left out). frozen: the configured lock share at every
    (k, f); "proportional" (s = 1 − k) is always feasible, a number must be feasible at every pair,
    else :class:`SweepConfigError` names the pairs and their allowed ranges.
    """
    if {"pruned", "frozen"} & set(spec.families) and 0.0 in spec.grid_freeze_ratio:
        raise SweepConfigError("[grid] freeze_ratio 0 gives no pruned or frozen source (f = 0 is the dense family, "
                               "which runs at every sparsity); list only freeze ratios > 0")
    _check_frozen_lock_share(spec)
    points, skipped = [], []
    for seed in spec.seeds:
        if spec.weight_trained_baseline:
            points.append({"family": "weight_trained", "seed": seed})
        for sparsity in spec.grid_sparsity:
            if "dense" in spec.families:
                points.append({"family": "dense", "sparsity": sparsity, "seed": seed})
            for freeze_ratio in spec.grid_freeze_ratio:
                if "pruned" in spec.families:
                    if freeze_ratio > sparsity + RATIO_TOLERANCE:
                        skipped.append(f"pruned k={sparsity} f={freeze_ratio} seed={seed}")
                    else:
                        points.append({"family": "pruned", "sparsity": sparsity, "freeze_ratio": freeze_ratio,
                                       "lock_share": 0.0, "seed": seed})
                if "frozen" in spec.families:
                    points.append({"family": "frozen", "sparsity": sparsity, "freeze_ratio": freeze_ratio,
                                   "lock_share": spec.grid_lock_share, "seed": seed})
    if "pruned" in spec.families and not any(point["family"] == "pruned" for point in points):
        raise SweepConfigError(f"the grid has no pruned point: a pruned source needs freeze_ratio <= sparsity, "
                               f"but [grid] freeze_ratio {list(spec.grid_freeze_ratio)} all exceed sparsity "
                               f"{list(spec.grid_sparsity)}; add smaller freeze ratios or drop \"pruned\" from families")
    return points, skipped


def _check_frozen_lock_share(spec: SweepSpec) -> None:
    """A numeric lock share must be feasible at every (k, f) of the grid (docs/method.md §2)."""
    share = spec.grid_lock_share
    if "frozen" not in spec.families or share == "proportional":
        return
    bad = []
    for sparsity in spec.grid_sparsity:
        for freeze_ratio in spec.grid_freeze_ratio:
            try:
                resolve_lock_share(sparsity, freeze_ratio, share)
            except InfeasibleSettingError:
                low, high = lock_share_bounds(sparsity, freeze_ratio)
                bad.append(f"(k={sparsity:g}, f={freeze_ratio:g}) allows [{low:.4g}, {high:.4g}]")
    if bad:
        more = f" and {len(bad) - NAMED_PAIRS} more" if len(bad) > NAMED_PAIRS else ""
        raise SweepConfigError(
            f"[grid] lock_share = {share:g} is infeasible for the frozen family at {len(bad)} (sparsity, freeze_ratio) "
            f"pairs: {'; '.join(bad[:NAMED_PAIRS])}{more} (docs/method.md §2: max(0, 1 - k/f) <= s <= min(1, (1 - k)/f)); "
            "use \"proportional\" (s = 1 - k, always feasible) or a share feasible at every pair")


def plan_sweep(spec: SweepSpec) -> SweepPlan:
    """Validate everything a sweep will run, without Ray: every grid point as an ExperimentConfig, or
    for Optuna the base config at the corners of its ranges for each family. Raises SweepConfigError."""
    base = spec.base_config()
    if spec.search == "grid":
        points, skipped = grid_points(spec)
    else:
        points, skipped = _optuna_corners(spec), []
    for point in points:
        try:
            point_config(base, point)
        except FrozenSLTError as error:
            raise SweepConfigError(f"sweep {spec.name!r}: the point {point} is not a valid experiment: {error}") from None
    return SweepPlan(points if spec.search == "grid" else [], skipped)


def _optuna_corners(spec: SweepSpec) -> list[dict[str, Any]]:
    """Points at the ends of the Optuna ranges, each as :class:`OptunaSpace` would suggest it."""
    seed, points = spec.seeds[0], []
    for sparsity in spec.sparsity_range:
        for freeze_ratio in spec.freeze_range:
            candidates = {
                "dense": {"sparsity": sparsity},
                "pruned": {"sparsity": sparsity, "freeze_ratio": min(freeze_ratio, sparsity), "lock_share": 0.0},
                "frozen": {"sparsity": sparsity, "freeze_ratio": freeze_ratio, "lock_share": "proportional"},
            }
            points += [{"family": family, **candidates[family], "seed": seed} for family in spec.families]
    return points


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
