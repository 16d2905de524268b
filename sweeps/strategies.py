"""Search strategies for Optuna-mode sweeps: per-family budgets, Optuna studies on fixed boxes, and the
size-aware strategy. Plain Python and Optuna (no Ray), so a benchmark can drive the same code in-process.

Every family gets its own share of the ticket configurations (``family_budgets``) and its own studies,
so no family's front is mapped at another's expense; the weight-trained baseline is one configuration on
top. The order of the trials is fixed in advance: the baseline first, then the families interleaved in
proportion to their budgets. Strategies:

- ``nsga2``, ``tpe``, ``gp``, ``random``: one study per family over (val accuracy ↑, ticket bits ↓) on
  the family's whole box (sweeps.boxes). NSGA-II's population is a third of the family's budget (at
  least 2), so it evolves for about three generations whatever the budget (Optuna's default, 50, is
  larger than most budgets: every trial would be a random draw); TPE and GP start modelling after the
  same third (their default is 10 random trials).
- ``size-aware``: a ticket's size is fixed by f alone, so each family's sizes are placed before
  training: ``round(√budget)`` of them (at least 2 where the budget allows; dense: one), log-spaced over
  the reachable range (sweeps.boxes.size_freeze_ratios), the family's trials split evenly over them
  (the smaller sizes take any remainder; a size whose box is a single point, such as a pruned source
  with f = k_hi, gets one). At each size one single-objective study maximises val accuracy over the
  remaining coordinates (k, and s for frozen sources). Its first three trials are fixed: the box's
  centre, then near the low and the high end of k's range (at the middle of s's); the rest come from
  TPE. The front comes out sampled evenly along the size axis.

Each study names its objectives (``val_accuracy``, and ``ticket_bits`` for two), which optuna-dashboard
shows. ``repeats`` R trains every configuration (the baseline included) with R seeds, trial_seed to
trial_seed + R − 1, handed out as R consecutive trials, so a search runs R × (its budget + baseline)
trials. A configuration's study trial is told COMPLETE only with the values of its seeds' whole
budgets, the mean val accuracy over the R seeds (and the size), once all R are told; if one was stopped
by a scheduler it is told PRUNED, and FAIL if one failed. The state (which key asked which study trial,
which were told and with what, the configuration whose seeds are being handed out) is plain JSON, so a
kill between the seeds of a configuration neither loses nor counts twice those already handed out or
told. A resumed search reopens the studies from their storage and marks any study trial asked but never
handed out (the driver was killed in between) as failed, so nothing is counted twice. Samplers are
seeded from ``seed``, the study's place and its number of trials when it is opened, so a resumed search
draws new points rather than repeating the ones drawn before the interruption.
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from frozen_slt.config.points import coordinates
from frozen_slt.errors import SweepConfigError

from .boxes import FamilyBox, size_freeze_ratios
from .spec import STRATEGIES

COMPLETE, PRUNED, FAILED = "complete", "pruned", "failed"
#: The objectives' names in the studies (Optuna's metric names): a size-aware study has the first alone.
METRIC_NAMES = ("val_accuracy", "ticket_bits")
BASELINE = -1  # the weight-trained baseline's place in the trial order: it belongs to no study


def family_budgets(total: int, shares: dict[str, float]) -> dict[str, int]:
    """Split ``total`` trials by ``shares`` (largest remainder; ties to the family listed first)."""
    if total < len(shares):
        raise SweepConfigError(f"[optuna] num_samples = {total} cannot give each of the {len(shares)} families "
                               f"({', '.join(shares)}) a trial; use at least {len(shares)}")
    weight = sum(shares.values())
    exact = {family: total * share / weight for family, share in shares.items()}
    budgets = {family: max(1, math.floor(value)) for family, value in exact.items()}
    by_remainder = sorted(shares, key=lambda family: -(exact[family] - math.floor(exact[family])))
    for family in by_remainder[:max(0, total - sum(budgets.values()))]:
        budgets[family] += 1
    while sum(budgets.values()) > total:  # a family raised to 1 took a trial from the largest
        budgets[max(budgets, key=budgets.get)] -= 1
    return budgets


@dataclass(frozen=True)
class Cell:
    """One study: a family's box (f fixed for a size of the size-aware strategy) and its budget."""

    name: str
    box: FamilyBox
    budget: int
    objectives: int  # 2: (val accuracy, ticket bits); 1: val accuracy at one size


def plan_cells(strategy: str, budgets: dict[str, int], sparsity_range, freeze_range) -> list[Cell]:
    """The studies of a search, in the order their trials are interleaved."""
    if strategy not in STRATEGIES:
        raise SweepConfigError(f"unknown [optuna] strategy {strategy!r}; valid: {', '.join(STRATEGIES)}")
    cells = []
    for family, budget in budgets.items():
        box = FamilyBox(family, tuple(sparsity_range), tuple(freeze_range))
        if strategy != "size-aware":
            cells.append(Cell(family, box, budget, 2))
            continue
        if family != "dense" and box.reachable_freeze()[1] >= 1.0:
            raise SweepConfigError("the size-aware strategy needs [optuna] freeze_ratio below 1 (f = 1 trains nothing)")
        count = 1 if family == "dense" else min(budget, max(min(2, budget), round(math.sqrt(budget))))
        sizes = [FamilyBox(family, box.sparsity_range, box.freeze_range, None if family == "dense" else round(f, 12))
                 for f in size_freeze_ratios(box, count)]
        for j, (sized, share) in enumerate(zip(sizes, split_budget(budget, [not s.is_single_point() for s in sizes]))):
            cells.append(Cell(f"{family}-size{j}", sized, share, 1))
    return cells


def split_budget(budget: int, searchable: list[bool]) -> list[int]:
    """A family's trials over its sizes: one each, then the rest round-robin over the sizes with anything
    left to search (a box that is a single point, e.g. a pruned source with f = k_hi, gets one trial)."""
    shares = [1] * len(searchable)
    open_sizes = [j for j, open_ in enumerate(searchable) if open_] or list(range(len(searchable)))
    for extra in range(budget - len(shares)):
        shares[open_sizes[extra % len(open_sizes)]] += 1
    return shares


def interleave(cells: list[Cell]) -> list[int]:
    """Cell indices in trial order: each next trial goes to the family furthest behind its budget, and
    within a family to its cell furthest behind (smallest size first on ties)."""
    families = list(dict.fromkeys(cell.box.family for cell in cells))
    budget = {f: sum(c.budget for c in cells if c.box.family == f) for f in families}
    given = {i: 0 for i in range(len(cells))}
    order = []
    for _ in range(sum(budget.values())):
        done = {f: sum(given[i] for i, c in enumerate(cells) if c.box.family == f) for f in families}
        family = min((f for f in families if done[f] < budget[f]), key=lambda f: (done[f] + 0.5) / budget[f])
        members = [i for i, c in enumerate(cells) if c.box.family == family and given[i] < c.budget]
        index = min(members, key=lambda i: (given[i] + 0.5) / cells[i].budget)
        given[index] += 1
        order.append(index)
    return order


#: The fixed first trials at each size of the size-aware strategy, in box coordinates (u_sparsity first,
#: then u_lock_share; a pruned or dense study takes the first only): the box's centre, then near the low
#: and the high end of k's range, where a grid looks too; TPE takes over after as many trials.
START_DESIGN = ((0.5, 0.5), (0.1, 0.5), (0.9, 0.5))


def make_sampler(strategy: str, cell: Cell, seed: int) -> optuna.samplers.BaseSampler:
    """The sampler of one study, sized to its budget (see module docstring)."""
    startup = max(1, math.ceil(cell.budget / 3))
    if strategy == "size-aware":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=len(START_DESIGN))
    if strategy == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(2, startup))
    if strategy == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=startup)
    if strategy == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup, warn_independent_sampling=False)
    return optuna.samplers.RandomSampler(seed=seed)


class SearchStrategy:
    """Asks and tells the studies of one search; see module docstring. ``storage`` is an Optuna storage
    (an RDB URL's storage for a sweep) or None (in memory); studies are named ``<prefix>.<cell>``.
    ``repeats``: the seeds each configuration trains, as that many consecutive keys (trials)."""

    def __init__(self, strategy: str, budgets: dict[str, int], sparsity_range, freeze_range, seed: int,
                 trial_seed: int, baseline: bool, storage=None, prefix: str = "search", repeats: int = 1) -> None:
        self.strategy, self.seed, self.trial_seed, self.storage, self.prefix = strategy, seed, trial_seed, storage, prefix
        self.repeats = repeats
        self.cells = plan_cells(strategy, budgets, sparsity_range, freeze_range)
        self.order = ([BASELINE] if baseline else []) + interleave(self.cells)
        # key -> {"cell": index or BASELINE, "number": study trial, "group": place in order, "told": bool,
        #         "outcome": COMPLETE/PRUNED/FAILED once told, "accuracy", "bits"}
        self.asked: dict[str, dict[str, Any]] = {}
        self.current: dict[str, Any] | None = None  # the config of the configuration whose seeds are being handed out
        self._studies: dict[int, optuna.Study] = {}

    @property
    def seeds(self) -> list[int]:
        """The seeds of every configuration: trial_seed, trial_seed + 1, ... (``repeats`` of them)."""
        return list(range(self.trial_seed, self.trial_seed + self.repeats))

    @property
    def total(self) -> int:
        """Trials handed out in all: every configuration (the baseline included) ``repeats`` times."""
        return len(self.order) * self.repeats

    def live(self) -> int:
        """Trials handed out and not told yet."""
        return sum(not entry["told"] for entry in self.asked.values())

    def _members(self, group: int) -> list[dict[str, Any]]:
        return [entry for entry in self.asked.values() if entry["group"] == group]

    def ask(self, key: str) -> dict[str, Any] | None:
        """The next trial's config for ``key`` (``{"point": ..., "seeds": [...]}``, for a ticket also its ``"box"``
        coordinates and ``"study"``, the cell's name), or None when all are handed out. A configuration's
        seeds are handed out one key after another before the next configuration is asked of its study."""
        if key in self.asked:
            raise ValueError(f"trial {key!r} was already asked for")
        started = 1 + max((entry["group"] for entry in self.asked.values()), default=-1)
        members = self._members(started - 1) if started else []
        if members and len(members) < self.repeats:  # the next seed of the configuration being handed out
            first = members[0]
            self.asked[key] = {"cell": first["cell"], "number": first["number"], "group": started - 1, "told": False}
            config = copy.deepcopy(self.current)
            config["point"]["seed"] = self.trial_seed + len(members)
            return config
        if started >= len(self.order):
            return None
        index = self.order[started]
        if index == BASELINE:
            self.asked[key] = {"cell": BASELINE, "number": None, "group": started, "told": False}
            self.current = {"point": {"family": "weight_trained", "seed": self.trial_seed}, "seeds": self.seeds}
            return copy.deepcopy(self.current)
        cell, study = self.cells[index], self._study(index)
        fixed = self._fixed_point(index) if self.strategy == "size-aware" else None
        if fixed is not None:
            study.enqueue_trial(fixed)
        trial = study.ask()
        box = {name: trial.suggest_float(name, 0.0, 1.0) for name in cell.box.dimensions}
        point = cell.box.point(box, self.trial_seed)
        for name, value in {"family": cell.box.family, **coordinates(point)}.items():
            trial.set_user_attr(name, value)
        self.asked[key] = {"cell": index, "number": trial.number, "group": started, "told": False}
        self.current = {"point": point, "box": box, "study": cell.name, "seeds": self.seeds}
        return copy.deepcopy(self.current)

    def tell(self, key: str, outcome: str, accuracy: float | None = None, bits: int | None = None) -> None:
        """Note ``key``'s outcome: COMPLETE (with the full budget's val accuracy and ticket bits), PRUNED
        (stopped early) or FAILED. Once every seed of its configuration is told, its study is told: COMPLETE
        with the mean val accuracy over the seeds (and the size) when all completed, else FAILED if one
        failed, else PRUNED. Telling a key twice, or a study trial already finished, changes nothing."""
        entry = self.asked[key]
        if entry["told"]:
            return
        entry.update(told=True, outcome=outcome, accuracy=accuracy, bits=bits)
        members = self._members(entry["group"])
        if entry["cell"] == BASELINE or len(members) < self.repeats or not all(m["told"] for m in members):
            return
        study = self._study(entry["cell"])
        outcomes = {m["outcome"] for m in members}
        if outcomes == {COMPLETE}:
            mean = math.fsum(m["accuracy"] for m in members) / len(members)
            bits = max(m["bits"] for m in members)  # the same for every seed (the size depends on k and f alone)
            values = [mean, bits] if self.cells[entry["cell"]].objectives == 2 else [mean]
            study.tell(entry["number"], values, skip_if_finished=True)
        else:
            state = TrialState.FAIL if FAILED in outcomes else TrialState.PRUNED
            study.tell(entry["number"], state=state, skip_if_finished=True)

    def get_state(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "cells": [cell.name for cell in self.cells], "repeats": self.repeats,
                "asked": self.asked, "current": self.current}

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`get_state`'s output (a resumed sweep; also one saved before repeats existed)."""
        if state["strategy"] != self.strategy or state["cells"] != [cell.name for cell in self.cells]:
            raise SweepConfigError(f"the saved search state is of another search ({state['strategy']}, {state['cells']})")
        if state.get("repeats", 1) != self.repeats:
            raise SweepConfigError(f"the saved search state trains {state.get('repeats', 1)} seeds per configuration, "
                                   f"not [optuna] repeats = {self.repeats}")
        asked = state["asked"]
        for group, entry in enumerate(asked.values()):  # a state saved before repeats: one key per configuration
            entry.setdefault("group", group)
        self.asked, self.current, self._studies = asked, state.get("current"), {}

    def _study(self, index: int) -> optuna.Study:
        if index not in self._studies:
            cell = self.cells[index]
            directions = ["maximize", "minimize"] if cell.objectives == 2 else ["maximize"]
            study = optuna.create_study(storage=self.storage, study_name=f"{self.prefix}.{cell.name}",
                                        directions=directions, load_if_exists=True)
            with warnings.catch_warnings():  # "experimental" since Optuna 3.2, which would say so on every sweep's output
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(list(METRIC_NAMES[:cell.objectives]))  # shown by optuna-dashboard; resumed ones too
            existing = study.get_trials(deepcopy=False)
            study.sampler = make_sampler(self.strategy, cell, (self.seed * 1_000_003 + index * 7_919 + len(existing)) % 2**32)
            handed_out = {entry["number"] for entry in self.asked.values() if entry["cell"] == index}
            for trial in existing:
                if trial.state == TrialState.RUNNING and trial.number not in handed_out:
                    study.tell(trial.number, state=TrialState.FAIL)  # asked just before a kill, never handed out
            self._studies[index] = study
        return self._studies[index]

    def _fixed_point(self, index: int) -> dict[str, float] | None:
        """The next point of START_DESIGN a size-aware study has not been asked yet, or None once its
        sampler takes over (a design point asked before a kill and failed is not asked again)."""
        dimensions, asked = self.cells[index].box.dimensions, len(self._study(index).get_trials(deepcopy=False))
        return dict(zip(dimensions, START_DESIGN[asked][:len(dimensions)])) if asked < len(START_DESIGN) else None
