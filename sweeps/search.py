"""The Ray Tune searcher of Optuna-mode sweeps: a thin adapter around sweeps.strategies.SearchStrategy.

It tells the strategy a trial's outcome: COMPLETE only when the trial's last result is the last epoch of
its budget (``full_budget``, see trainables.tune_trainable), PRUNED for a trial a scheduler stopped
early, FAILED for a failed one; the strategy tells a configuration's study once all its seeds
(``repeats``) are told. (Ray 2.60's own ``OptunaSearch`` tells COMPLETE with the last result's values whenever
the objectives are in it, also for a stopped trial, whose last result Ray marks ``done``: that would
feed a sampler partial-budget accuracies as if they were final.)

Ray stores a searcher twice: pickled with the Tuner when the sweep starts, and through :meth:`save`
with every experiment snapshot. Only plain values are pickled; :meth:`save` writes the strategy's state
as JSON (no code runs when it is read back), and the studies live in their Optuna storage. It limits
concurrency itself (Ray's ConcurrencyLimiter forgets its live trials across a restore and would then
drop their completions).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ray.tune.search import Searcher

from trainables.tune_trainable import trained_full_budget

from .strategies import COMPLETE, FAILED, PRUNED, SearchStrategy


class FamilySearch(Searcher):
    """Ray searcher over the studies of one Optuna-mode sweep. ``settings`` are SearchStrategy's
    arguments except ``storage``, which is built from ``storage_url`` (an SQLAlchemy URL)."""

    def __init__(self, settings: dict[str, Any], storage_url: str | None) -> None:
        super().__init__(metric="best_val_accuracy", mode="max")
        self.settings, self.storage_url = settings, storage_url
        self.max_concurrent = 0  # 0: no limit of its own
        self._saved: dict[str, Any] | None = None
        self._strategy: SearchStrategy | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_strategy": None, "_saved": self.strategy.get_state() if self._strategy else self._saved}

    @property
    def strategy(self) -> SearchStrategy:
        if self._strategy is None:
            import optuna

            storage = optuna.storages.RDBStorage(self.storage_url) if self.storage_url else None
            self._strategy = SearchStrategy(**self.settings, storage=storage)
            if self._saved is not None:
                self._strategy.set_state(self._saved)
        return self._strategy

    @property
    def total(self) -> int:
        """How many trials the search hands out: every configuration (the baseline included) once per seed."""
        return self.strategy.total

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True  # the objectives are fixed: val accuracy and ticket bits

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        self.max_concurrent = max_concurrent
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self.max_concurrent and self.strategy.live() >= self.max_concurrent:
            return None  # Ray asks again when a trial ends
        config = self.strategy.ask(trial_id)
        return Searcher.FINISHED if config is None else config

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        if trial_id not in self.strategy.asked:
            return
        if error:
            self.strategy.tell(trial_id, FAILED)
        elif result and trained_full_budget(result):
            self.strategy.tell(trial_id, COMPLETE, float(result["best_val_accuracy"]), int(result["ticket_bits"]))
        else:
            self.strategy.tell(trial_id, PRUNED)  # stopped by the scheduler before its last epoch

    def save(self, checkpoint_path: str) -> None:
        Path(checkpoint_path).write_text(json.dumps(self.strategy.get_state()))

    def restore(self, checkpoint_path: str) -> None:
        self._saved, self._strategy = json.loads(Path(checkpoint_path).read_text()), None
