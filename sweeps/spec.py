"""A sweep's configuration: what to train, which families, how to search, with what resources.

Loaded from a TOML file in ``sweeps/configs/`` (see ``digits.toml`` for every key). Each field of
:class:`SweepSpec` declares, in its metadata, the file section and key it is read from, its help text
and the kind of value it takes; the loader and the validation are derived from that, so a typo, a
number where a list belongs or a misspelt name fails with one line before Ray starts.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable

from frozen_slt.config import checks
from frozen_slt.config.experiment import ExperimentConfig
from frozen_slt.config.points import TICKET_FAMILIES
from frozen_slt.config.settings import flatten_settings, merge_settings, parse_toml
from frozen_slt.errors import FrozenSLTError, SweepConfigError
from frozen_slt.nesting import check_text_depth, parse_limited
from frozen_slt.training.network import check_buildable

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "digits.toml"
SEARCHES = ("grid", "optuna")
STRATEGIES = ("size-aware", "nsga2", "tpe", "gp", "random")
SCHEDULERS = ("fifo", "mo-asha")
#: What a finished trial's final checkpoint keeps (trainables.tune_trainable.KEEP_MODES).
KEEP_MODES = ("lean", "all")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
#: A sweep file is a table of [section] tables, whose values may be lists or ([experiment.train]) tables, and an
#: [experiment.model_args] argument may itself be a list.
SWEEP_DEPTH = 4
_SWEEP_NEEDS = "settings, [section] tables and their lists or [experiment.<section>] tables, whose arguments may be lists"


def _fail(where: str, what: str, value: Any) -> None:
    checks.fail(where, what, value, SweepConfigError)


def _name(where: str, value: Any) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        _fail(where, "a name of letters, digits, '.', '_' or '-'", value)
    return value


def _boolean(where: str, value: Any) -> bool:
    return checks.boolean(where, value, SweepConfigError)


def _choice(*choices: str) -> Callable[[str, Any], str]:
    return lambda where, value: checks.choice(where, value, choices, SweepConfigError)


def _families(where: str, value: Any) -> tuple[str, ...]:
    return checks.distinct_list(where, value, lambda family: family in TICKET_FAMILIES,
                                f"families from {', '.join(TICKET_FAMILIES)}", SweepConfigError)


def _fractions(where: str, value: Any) -> tuple[float, ...]:
    return tuple(float(v) for v in checks.distinct_list(where, value, checks.fraction, "numbers in [0, 1]",
                                                        SweepConfigError))


def _lock_share(where: str, value: Any) -> float | str:
    if value == "proportional":
        return value
    if not checks.fraction(value):
        _fail(where, "a number in [0, 1] or \"proportional\"", value)
    return float(value)


def _shares(where: str, value: Any) -> dict[str, float] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not value or any(key not in TICKET_FAMILIES for key in value) \
            or not all(checks.is_number(v) and v > 0 for v in value.values()):
        _fail(where, f"a table of numbers > 0 keyed by family ({', '.join(TICKET_FAMILIES)})", value)
    return {key: float(v) for key, v in value.items()}


def _seeds(where: str, value: Any) -> tuple[int, ...]:
    return checks.distinct_list(where, value, lambda seed: checks.is_integer(seed) and seed >= 0, "integers >= 0",
                                SweepConfigError)


def _range(where: str, value: Any) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(checks.is_number(v) for v in value) \
            or not 0 < value[0] <= value[1] <= 1:
        _fail(where, "[low, high] with 0 < low <= high <= 1", value)
    return float(value[0]), float(value[1])


def _integer(minimum: int, optional: bool = False) -> Callable[[str, Any], int | None]:
    def check(where: str, value: Any) -> int | None:
        if optional and value is None:
            return None
        return checks.integer(where, value, minimum, error=SweepConfigError)
    return check


def _number(minimum: float, strict: bool) -> Callable[[str, Any], float]:
    return lambda where, value: checks.number(where, value, minimum, strict=strict, error=SweepConfigError)


def _optional_text(where: str, value: Any) -> str | None:
    return checks.text(where, value, error=SweepConfigError)


def _setting(default: Any, section: str | None, key: str, check: Callable[[str, Any], Any], help_text: str):
    """A SweepSpec field read from ``[section] key`` (``section`` None: the top level of the file)."""
    metadata = {"section": section, "key": key, "check": check, "help": help_text}
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class SweepSpec:
    """One sweep: the base experiment, the families and how their points are searched, the resources."""

    name: str = _setting("sweep", None, "name", _name, "names the Ray experiment and the MLflow parent run")
    experiment: dict[str, Any] = field(default_factory=dict, metadata={
        "section": "experiment", "key": None, "check": None, "help": "any `frozen-slt train` setting"})
    families: tuple[str, ...] = _setting(TICKET_FAMILIES, None, "families", _families, "source families to map")
    weight_trained_baseline: bool = _setting(True, None, "weight_trained_baseline", _boolean,
                                             "also train the weight-trained dense network once")
    search: str = _setting("grid", None, "search", _choice(*SEARCHES), "grid or optuna")
    grid_sparsity: tuple[float, ...] = _setting((0.3, 0.5, 0.7), "grid", "sparsity", _fractions, "sparsities k")
    grid_freeze_ratio: tuple[float, ...] = _setting((0.3, 0.5, 0.7), "grid", "freeze_ratio", _fractions,
                                                    "freezing ratios f")
    grid_lock_share: float | str = _setting("proportional", "grid", "lock_share", _lock_share,
                                            "lock share s of the frozen family (a number or proportional)")
    seeds: tuple[int, ...] = _setting((0,), "grid", "seeds", _seeds, "seeds of weights, scores, pattern and order")
    num_samples: int = _setting(24, "optuna", "num_samples", _integer(1),
                                "ticket configurations (each trained repeats times), split over the families by "
                                "family_shares (the baseline comes on top)")
    strategy: str = _setting("size-aware", "optuna", "strategy", _choice(*STRATEGIES), "how each family is searched")
    family_shares: dict[str, float] | None = _setting(None, "optuna", "family_shares", _shares,
                                                      "each family's share of num_samples (default: even)")
    repeats: int = _setting(1, "optuna", "repeats", _integer(1),
                            "seeds trained per sampled configuration (trial_seed, trial_seed + 1, ...); its study "
                            "is told their mean")
    sampler_seed: int = _setting(0, "optuna", "seed", _integer(0), "seed of the Optuna samplers")
    trial_seed: int = _setting(0, "optuna", "trial_seed", _integer(0),
                               "seed of weights, scores, pattern and order of every Optuna trial and the baseline")
    sparsity_range: tuple[float, float] = _setting((0.05, 0.95), "optuna", "sparsity", _range, "range of k")
    freeze_range: tuple[float, float] = _setting((0.1, 0.9), "optuna", "freeze_ratio", _range, "range of f")
    optuna_storage: str | None = _setting(None, "optuna", "storage", _optional_text, "SQLAlchemy URL of the study")
    scheduler: str = _setting("fifo", "scheduler", "kind", _choice(*SCHEDULERS),
                              "fifo (every trial trains its whole budget) or mo-asha (dominated trials stop early)")
    grace_epochs: int = _setting(1, "scheduler", "grace_epochs", _integer(1), "epoch of MO-ASHA's first rung")
    reduction_factor: float = _setting(3.0, "scheduler", "reduction_factor", _number(1, strict=True),
                                       "MO-ASHA's η: rungs at grace_epochs·η^i, the best 1/η of a family go on")
    cpus_per_trial: float = _setting(1.0, "resources", "cpus_per_trial", _number(0, strict=True), "CPUs per trial")
    gpus_per_trial: float = _setting(0.0, "resources", "gpus_per_trial", _number(0, strict=False), "GPUs per trial")
    max_concurrent: int | None = _setting(None, "resources", "max_concurrent", _integer(1, optional=True),
                                          "trials running at once")
    max_failures: int = _setting(2, "resources", "max_failures", _integer(0), "retries of a failing trial")
    refresh_s: float = _setting(60.0, "tracking", "refresh_s", _number(0, strict=False),
                                "seconds between two refreshes of the parent run's front tables and plot while the "
                                "sweep runs (0: after every finished trial); once more at the end")
    storage_keep: str = _setting("lean", "storage", "keep", _choice(*KEEP_MODES),
                                 "what a finished trial's checkpoint keeps: lean (its ticket file and final result) "
                                 "or all (also its training state, to continue training it)")
    smoke: bool = field(default=False, metadata={"section": None, "key": None, "check": None, "help": "smoke mode"})

    def __post_init__(self) -> None:
        for spec_field in fields(self):
            check = spec_field.metadata["check"]
            if check is not None:
                value = check(_where(spec_field), getattr(self, spec_field.name))
                object.__setattr__(self, spec_field.name, value)
        if not isinstance(self.experiment, dict):
            _fail("[experiment]", "a table of `frozen-slt train` settings", self.experiment)
        base = self.base_config()  # validates the experiment settings
        try:
            check_buildable(base)  # a model or data given by import path: built (read) once, here, before Ray starts
        except FrozenSLTError as error:
            raise SweepConfigError(f"[experiment] in sweep {self.name!r}: {error}") from None
        if self.family_shares is not None and set(self.family_shares) != set(self.families):
            raise SweepConfigError(f"[optuna] family_shares names {sorted(self.family_shares)}, but the sweep maps "
                                   f"families {list(self.families)}: give one share to each of them")
        if self.scheduler == "mo-asha" and not self.rungs():
            epochs = self.base_config().train.epochs
            raise SweepConfigError(f"[scheduler] grace_epochs = {self.grace_epochs} leaves no MO-ASHA rung below the "
                                   f"{epochs} training epochs, so it would stop nothing; use grace_epochs < {epochs} "
                                   "or kind = \"fifo\"")

    def shares(self) -> dict[str, float]:
        """Each mapped family's share of an Optuna search's trials (``family_shares``, else equal)."""
        return {family: (self.family_shares or {}).get(family, 1.0) for family in self.families}

    def expected_seeds(self) -> tuple[int, ...]:
        """The seeds every configuration trains (the baseline's too): the grid's ``seeds``, or for Optuna
        ``trial_seed``, ``trial_seed + 1``, ... (``repeats`` of them)."""
        if self.search == "grid":
            return tuple(self.seeds)
        return tuple(range(self.trial_seed, self.trial_seed + self.repeats))

    def rungs(self) -> tuple[int, ...]:
        """Epochs of the MO-ASHA rungs: grace_epochs · η^i below the epoch budget (sweeps.scheduler)."""
        return rung_epochs(self.grace_epochs, self.reduction_factor, self.base_config().train.epochs)

    def base_config(self) -> ExperimentConfig:
        """The ExperimentConfig every trial starts from (before its point is applied)."""
        try:
            return ExperimentConfig.from_settings(self.experiment)
        except FrozenSLTError as error:
            raise SweepConfigError(f"[experiment] in sweep {self.name!r}: {error}") from None

    def sweep_hash(self) -> str:
        """8 hex digits identifying what this sweep computes (resources, concurrency, how it is tracked and stored,
        and unused sections excluded)."""
        # settings a sweep does not use change nothing it computes: the other search's, and MO-ASHA's under FIFO;
        # resources, tracking and what storage keeps change how and where, not what
        unused = {"grid" if self.search == "optuna" else "optuna", "resources", "tracking", "storage",
                  *(("scheduler",) if self.scheduler == "fifo" else ())}
        excluded = {f.name for f in fields(self) if f.metadata["section"] in unused}
        identity = {key: value for key, value in asdict(self).items() if key not in excluded}
        if identity.get("repeats") == 1:
            del identity["repeats"]  # the default: a sweep begun before repeats existed keeps its name (and resumes)
        identity["experiment"] = self.base_config().identity_dict()
        return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:8]

    @property
    def run_name(self) -> str:
        """Name of the Ray experiment and the MLflow parent run: ``<name>-<sweep hash>``."""
        return f"{self.name}-{self.sweep_hash()}"


def rung_epochs(grace_epochs: int, reduction_factor: float, epochs: int) -> tuple[int, ...]:
    """The rungs: the first epoch at or past ``grace · η^i``, for i = 0, 1, ..., strictly below ``epochs``
    (a rung at the last epoch would stop nothing); equal neighbours (η close to 1) are counted once."""
    rungs: list[int] = []
    power = 0
    while (rung := math.ceil(grace_epochs * reduction_factor ** power - 1e-9)) < epochs:
        if not rungs or rung > rungs[-1]:
            rungs.append(rung)
        power += 1
    return tuple(rungs)


def _where(spec_field) -> str:
    section, key = spec_field.metadata["section"], spec_field.metadata["key"]
    return f"[{section}] {key}" if section else key


def _file_layout() -> dict[str | None, dict[str, str]]:
    """``{section: {key in the file: SweepSpec field}}``, from the fields' metadata (None: top level)."""
    layout: dict[str | None, dict[str, str]] = {}
    for spec_field in fields(SweepSpec):
        if spec_field.metadata["key"] is not None:
            layout.setdefault(spec_field.metadata["section"], {})[spec_field.metadata["key"]] = spec_field.name
    return layout


def sweep_spec_from_dict(data: dict[str, Any], source: str) -> SweepSpec:
    """A SweepSpec from the table of a sweep file; every key must be one the file layout knows."""
    layout = _file_layout()
    data = dict(data)
    experiment = data.pop("experiment", {})
    if not isinstance(experiment, dict):
        _fail(f"[experiment] in {source}", "a table of `frozen-slt train` settings", experiment)
    kwargs: dict[str, Any] = {"experiment": _absolute_data_dir(flatten_settings(experiment, f"[experiment] of {source}"))}
    sections = [name for name in layout if name is not None]
    for section in sections:
        values = data.pop(section, {})
        if not isinstance(values, dict):
            _fail(f"[{section}] in {source}", "a table", values)
        unknown = sorted(set(values) - set(layout[section]))
        if unknown:
            raise SweepConfigError(f"unknown keys {unknown} in [{section}] of {source}; valid: {', '.join(layout[section])}")
        kwargs.update({layout[section][key]: value for key, value in values.items()})
    unknown = sorted(set(data) - set(layout[None]))
    if unknown:
        valid = ", ".join([*layout[None], *(f"[{name}]" for name in ["experiment", *sections])])
        raise SweepConfigError(f"unknown keys {unknown} in {source}; valid: {valid}")
    kwargs.update({layout[None][key]: value for key, value in data.items()})
    return SweepSpec(**kwargs)


def load_sweep_spec(path: str | Path, experiment: dict[str, Any] | None = None) -> SweepSpec:
    """Read and validate a sweep TOML file (its name defaults to the file's stem); ``experiment`` settings
    (the driver's ``--model``, ``--dataset``) replace the file's."""
    path = Path(path)
    if not path.is_file():
        known = ", ".join(sorted(p.name for p in CONFIG_DIR.glob("*.toml")))
        raise SweepConfigError(f"sweep config {str(path)!r} does not exist; shipped configs in {CONFIG_DIR}: {known}")
    what = f"sweep config {path}"
    try:
        text = path.read_text()
        check_text_depth(text, "toml", SWEEP_DEPTH, what, _SWEEP_NEEDS, SweepConfigError)
        data = parse_limited(lambda: parse_toml(text), SWEEP_DEPTH, what, _SWEEP_NEEDS, SweepConfigError)
    except SweepConfigError:
        raise
    except (ValueError, UnicodeDecodeError) as error:
        raise SweepConfigError(f"cannot parse {path}: {error}") from None
    data.setdefault("name", path.stem)
    if experiment:
        if not isinstance(data.get("experiment", {}), dict):
            _fail(f"[experiment] in {path}", "a table of `frozen-slt train` settings", data["experiment"])
        data["experiment"] = {**data.get("experiment", {}), **experiment}
    return sweep_spec_from_dict(data, str(path))


def _absolute_data_dir(experiment: dict[str, Any]) -> dict[str, Any]:
    """Trials run in their own working directories, so a relative data_dir is resolved here, against
    the directory the sweep is started from."""
    out = dict(experiment)
    for key in ("data_dir", "data.data_dir"):
        if isinstance(out.get(key), str) and out[key]:
            out[key] = str(Path(out[key]).expanduser().resolve())
    return out


def smoke_spec(spec: SweepSpec) -> SweepSpec:
    """Two trials of one epoch: a dense and a frozen point (seconds; for tests and quick checks)."""
    return replace(
        spec, experiment=merge_settings(spec.experiment, {"epochs": 1}), families=("dense", "frozen"), weight_trained_baseline=False,
        search="grid", grid_sparsity=(0.5,), grid_freeze_ratio=(0.5,), seeds=(spec.seeds[0],), num_samples=2, scheduler="fifo", smoke=True,
    )
