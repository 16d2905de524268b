"""One line per finished, failed or retried trial and a status line every half minute, on the driver.

A finished trial's line ends with each mapped family's hypervolume after it (``HV dense 0.812 pruned -
frozen 0.901``, ``-`` for a family none of whose trials finished its budget yet), as the parent run's
history records it (sweeps.live).

Ray's own tables (``--ray-tables``) are wide and truncate the search point; these lines name it.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, TextIO

from ray import tune

from trainables.tune_trainable import trial_point

STATUS_EVERY_S = 30.0


def describe_point(config: dict[str, Any]) -> str:
    """``frozen k=0.50 f=0.60 s=proportional`` for a trial's config (grid: under "point"; Optuna: flat),
    followed by ``seed=1`` when its configuration trains several seeds (the config's ``"seeds"``)."""
    point = trial_point(config)
    family = point.get("family", "?")
    seed = f" seed={point.get('seed')}" if len(config.get("seeds") or ()) > 1 else ""
    if family == "weight_trained":
        return "weight-trained dense baseline" + seed
    parts = [f"{family:<6}", f"k={point['sparsity']:.3g}"] if "sparsity" in point else [family]
    if family in ("pruned", "frozen") and "freeze_ratio" in point:
        parts.append(f"f={point['freeze_ratio']:.3g}")
    if family == "frozen" and "lock_share" in point:
        share = point["lock_share"]
        parts.append(f"s={1 - point['sparsity']:.3g} (1-k)" if share == "proportional" else f"s={float(share):.3g}")
    return " ".join(parts) + seed


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


class ProgressCallback(tune.Callback):
    """Progress of the sweep in plain lines, for terminals and log files alike.

    ``reported_before(trial_id)``, when given, names trials whose line an earlier driver of the sweep
    printed (the MLflow callback knows: their child run is FINISHED); a resumed Ray that runs such a
    trial to its end again prints no second line for it. ``hypervolumes()``, when given, returns each
    mapped family's hypervolume now (the MLflow callback's live fronts, which count a trial before this
    callback prints its line).
    """

    reported_before: Callable[[str], bool] | None = None  # also for a callback pickled before it existed
    hypervolumes: Callable[[], dict[str, float | None]] | None = None  # likewise

    def __init__(self, stream: TextIO | None = None, reported_before: Callable[[str], bool] | None = None,
                 hypervolumes: Callable[[], dict[str, float | None]] | None = None) -> None:
        self.stream, self.reported_before, self.hypervolumes = stream, reported_before, hypervolumes
        self.total = 0
        self.started = self.last_status = time.monotonic()

    def setup(self, stop=None, num_samples=None, total_num_samples=None, **info):
        self.total = total_num_samples or num_samples or 0
        self.started = self.last_status = time.monotonic()  # also after a restore in a new process

    def _print(self, text: str) -> None:
        print(text, file=self.stream or sys.stdout, flush=True)

    def _finished(self, trials, just_finished=None) -> int:
        # Ray marks a trial TERMINATED only after its completion callbacks have run
        done = {trial.trial_id for trial in trials if trial.status == "TERMINATED"}
        return len(done | ({just_finished.trial_id} if just_finished is not None else set()))

    def on_trial_complete(self, iteration, trials, trial, **info):
        if self.reported_before is not None and self.reported_before(trial.trial_id):
            return
        result = trial.last_result or {}
        self._print(
            f"[{self._finished(trials, trial):>{len(str(self.total))}}/{self.total}] {describe_point(trial.config):<32} "
            f"val {100 * result.get('best_val_accuracy', float('nan')):6.2f}%  "
            f"test {100 * result.get('best_test_accuracy', float('nan')):6.2f}%  "
            f"{result.get('ticket_bits', 0):>13,} bits  {_duration(result.get('time_total_s', 0.0))}{self._hypervolumes()}"
        )

    def _hypervolumes(self) -> str:
        values = self.hypervolumes() if self.hypervolumes is not None else {}
        if not values:
            return ""
        return "  HV " + " ".join(f"{family} {'-' if value is None else f'{value:.3f}'}" for family, value in values.items())

    def on_trial_recover(self, iteration, trials, trial, **info):
        self._print(f"retrying {trial.trial_id} ({describe_point(trial.config)}) from its last checkpoint")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._print(f"gave up on {trial.trial_id} ({describe_point(trial.config)}) after its retries")

    def on_step(self, iteration, trials, **info):
        now = time.monotonic()
        if now - self.last_status < STATUS_EVERY_S:
            return
        self.last_status = now
        running = sum(trial.status == "RUNNING" for trial in trials)
        errored = sum(trial.status == "ERROR" for trial in trials)
        self._print(f"... {self._finished(trials)}/{self.total} finished, {running} running, {errored} failed, "
                    f"{_duration(now - self.started)} elapsed")
