"""Search spaces. They only suggest values (family, sparsity, freeze_ratio, lock_share, seed); nothing here
builds a model. Every point they produce is feasible under docs/method.md §2, and :func:`plan_sweep`
proves it before Ray starts: each grid point becomes a validated ExperimentConfig, and so does every
corner of the boxes an Optuna search samples (sweeps.boxes, sweeps.strategies).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from frozen_slt.config.points import point_config
from frozen_slt.errors import FrozenSLTError, InfeasibleSettingError, SweepConfigError
from frozen_slt.method.initialize import freeze_plan
from frozen_slt.method.layers import DENSE
from frozen_slt.method.memory import account_memory
from frozen_slt.method.ratios import (
    RATIO_TOLERANCE,
    lock_share_bounds,
    resolve_lock_share,
)
from frozen_slt.models import build_model
from frozen_slt.training.network import input_facts

from .spec import SweepSpec
from .strategies import family_budgets, plan_cells

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
    """The frozen family needs locked weights, r = s·f > 0, at every (k, f) of the grid, and a numeric lock
    share must be feasible at every pair (docs/method.md §2)."""
    share = spec.grid_lock_share
    if "frozen" not in spec.families:
        return
    if share == 0:
        raise SweepConfigError("[grid] lock_share = 0 locks no frozen weight (r = s·f = 0), which makes every frozen "
                               "point a pruned source; the frozen family needs 0 < lock_share <= 1 (or \"proportional\", "
                               "s = 1 - k), and the pruned family already maps s = 0")
    if 1.0 in spec.grid_sparsity:
        raise SweepConfigError("[grid] sparsity 1.0 leaves the frozen family nothing to lock: at k = 1 every weight is "
                               "pruned, so s <= (1 - k)/f = 0 and the point is a pruned source; list sparsities below 1 "
                               "(or drop \"frozen\" from families)")
    if share == "proportional":
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
    """Validate everything a sweep will run, without Ray: every grid point as an ExperimentConfig, or for
    Optuna the family budgets and every corner of every study's box. Raises SweepConfigError."""
    base = spec.base_config()
    if spec.search == "grid":
        points, skipped = grid_points(spec)
    else:
        points, skipped = _box_corners(spec), []
    for point in points:
        try:
            point_config(base, point)
        except FrozenSLTError as error:
            raise SweepConfigError(f"sweep {spec.name!r}: the {point.get('family')} point "
                                   f"{_describe(point)} is not a valid experiment: {error}") from None
    return SweepPlan(points if spec.search == "grid" else [], skipped)


def _describe(point: dict[str, Any]) -> str:
    """``k=0.5 f=0.3 s=proportional seed=0``: a point's coordinates, without its family."""
    names = {"sparsity": "k", "freeze_ratio": "f", "lock_share": "s", "seed": "seed"}
    return " ".join(f"{short}={point[key]}" for key, short in names.items() if key in point)


def search_budgets(spec: SweepSpec) -> dict[str, int]:
    """An Optuna search's ticket trials per family."""
    return family_budgets(spec.num_samples, spec.shares())


def _box_corners(spec: SweepSpec) -> list[dict[str, Any]]:
    """The points at the corners of every study's box (for the size-aware strategy: at every size)."""
    cells = plan_cells(spec.strategy, search_budgets(spec), spec.sparsity_range, spec.freeze_range)
    points = [{"family": "weight_trained", "seed": spec.trial_seed}] if spec.weight_trained_baseline else []
    return points + [cell.box.point(corner, spec.trial_seed) for cell in cells for corner in cell.box.corners()]


def largest_ticket_bits(spec: SweepSpec) -> int:
    """The largest ticket the sweep can produce, in bits, known before training (as ``frozen-slt plan`` knows a
    ticket's size): the largest of its grid's ticket points, or of its Optuna boxes' corners. A ticket's
    size is its free weights plus its seeds, so it depends on the model and the freeze counts only, and
    falls as f grows: a box's corners at its smallest f hold its largest tickets. A sweep mapping the dense
    family reaches the dense-source ticket, the largest of all."""
    base = spec.base_config()
    points = grid_points(spec)[0] if spec.search == "grid" else _box_corners(spec)
    tickets = {}
    for point in points:
        if point["family"] != "weight_trained":
            ticket = point_config(base, point).ticket
            tickets[(ticket.prune_ratio, ticket.lock_ratio, ticket.distribution)] = ticket
    if not tickets:
        raise SweepConfigError(f"sweep {spec.name!r} plans no ticket point: name at least one of its families")
    facts = input_facts(base)
    with torch.device("meta"):  # shapes only: no weight is drawn
        model = build_model(base.model, facts.input_shape, facts.num_classes, DENSE, base.model_args, facts.input_kind)
    return max(account_memory(freeze_plan(model, ticket)).ticket_bits for ticket in tickets.values())
