"""Searchers that hand Optuna only what a trial's whole budget produced.

Ray 2.60's ``OptunaSearch.on_trial_complete`` tells the study COMPLETE with the last result's values
whenever the objectives are in it, also for a trial that a scheduler stopped early (Ray marks that
result ``done`` too), which would feed NSGA-II partial-budget accuracies as if they were final. Here a
trial counts as complete only when its last result is the last epoch of its budget (``full_budget``,
see trainables.tune_trainable); a trial stopped before is told PRUNED (no values), a failed one FAIL.
"""

from __future__ import annotations

from typing import Any

from ray.tune.search.optuna import OptunaSearch

from trainables.tune_trainable import trained_full_budget


class FullBudgetOptunaSearch(OptunaSearch):
    """``OptunaSearch`` whose study holds values only from full-budget trials; see module docstring."""

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        if result is not None and not trained_full_budget(result):
            result = None  # OptunaSearch tells a trial without values PRUNED (FAIL when it errored)
        super().on_trial_complete(trial_id, result=result, error=error)
