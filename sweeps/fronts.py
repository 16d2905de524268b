"""Pareto fronts of a sweep: per-family fronts drawn on configurations, hypervolumes, tables and the plot.

A *configuration* is a trial's point without its seed: (family, sparsity, freeze_ratio, lock_share), and
the weight-trained baseline is one configuration too. Its seeds are repeats, and the fronts are drawn on
configurations, not on draws: each configuration's row carries the mean validation accuracy over its
seeds (the front's coordinate), the sample standard deviation (ddof = 1; 0 for a single seed), the
minimum and maximum, the seed count and the seeds, and the same for test accuracy, which is never used
to choose. Taking the best seed would bias a front upwards more the more seeds ran.

A configuration is *complete* when every seed it expects finished its whole budget (a record's
``seeds_expected``, from its trial config; a record without it expects the seeds that finished). An
incomplete one (a seed failed, is unfinished, or was stopped early by a scheduler) is never averaged
over fewer seeds in silence: it is kept off the front and off the hypervolume and listed as incomplete,
marked ``seeds 1/2``. Every seed of a configuration has the same ticket size; seeds of different sizes
are a bug and raise.

A row points at a real ticket: the seed whose validation accuracy is closest to the mean (ties: the
lowest seed), named in ``ticket_seed``; ``ticket_file``, ``ticket_artifact``, ``mlflow_run_id``,
``trial_id``, ``config_hash`` and ``ticket_val_accuracy`` are that seed's.

Hypervolumes are computed on the means of the complete configurations, against the reference point
(:func:`reference_for`: 2 × the largest ticket size of the sweep, accuracy 0), with size in log10, so the
families of one sweep are compared on one scale. A sweep fixes that size from its plan before training
(sweeps.space.largest_ticket_bits), so a hypervolume computed while it runs is on the scale of the final
one; without it (``reference_size`` None) it is taken from the records. With one seed per configuration
every row is its trial and the fronts and hypervolumes are those of the trials.

Only trials that trained their whole budget enter the fronts: the trials a scheduler stopped early are
drawn as faint markers and counted in the summary. :func:`write_front_files` writes what a sweep
publishes: the tables, the plot and the text, at its end and while it runs (sweeps.live).
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # noqa: E402  (the backend must be chosen first)

from frozen_slt.config.points import TICKET_FAMILIES  # noqa: E402

from .dominance import hypervolume, pareto_front  # noqa: E402

COLOURS = {"dense": "tab:blue", "pruned": "tab:orange", "frozen": "tab:green", "weight_trained": "black"}
#: The coordinates of a configuration: a trial's point without its seed.
CONFIGURATION_KEYS = ("family", "sparsity", "freeze_ratio", "lock_share")
#: The CSV columns of a front table (pareto_fronts.json's rows hold these, ``seeds`` as a list, and
#: ``complete``, ``seeds_missing`` and ``per_seed``).
COLUMNS = ("family", "size_bits", "val_accuracy", "val_accuracy_std", "val_accuracy_min", "val_accuracy_max",
           "test_accuracy", "test_accuracy_std", "test_accuracy_min", "test_accuracy_max", "seed_count",
           "seeds_expected", "seeds", "sparsity", "freeze_ratio", "lock_share", "ticket_seed", "ticket_val_accuracy",
           "config_hash", "trial_id", "ticket_file", "ticket_artifact", "mlflow_run_id")
#: Seeds whose distance to the mean differs by less than this are tied (float rounding of the mean).
TIE = 1e-12
#: What a row carries from each of its seeds into ``per_seed``.
PER_SEED = ("seed", "val_accuracy", "test_accuracy", "trial_id", "ticket_file", "mlflow_run_id")


def reference_for(largest_bits: float) -> float:
    """The hypervolume reference point's size: twice the largest ticket (accuracy 0 is its other coordinate)."""
    return 2.0 * largest_bits


def configuration_key(record: dict[str, Any]) -> tuple:
    return tuple(record.get(key) for key in CONFIGURATION_KEYS)


def _spread(values: list[float], prefix: str) -> dict[str, float]:
    """Mean, sample standard deviation (ddof = 1; 0 for one value), minimum and maximum. The mean of one
    value is that value exactly."""
    return {prefix: math.fsum(values) / len(values),
            f"{prefix}_std": statistics.stdev(values) if len(values) > 1 else 0.0,
            f"{prefix}_min": min(values), f"{prefix}_max": max(values)}


def _seed_order(seed: Any) -> tuple:
    return (seed is None, seed if isinstance(seed, (int, float)) else 0, str(seed))


def configuration_row(members: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One configuration's row from the records of its finished seeds (see module docstring)."""
    sizes = sorted({r["size_bits"] for r in members})
    if len(sizes) > 1:
        raise ValueError(f"the seeds of configuration {describe_configuration(members[0])} have different ticket "
                         f"sizes {sizes}; every seed of a configuration should give the same size")
    members = sorted(members, key=lambda r: _seed_order(r.get("seed")))
    val = _spread([r["val_accuracy"] for r in members], "val_accuracy")
    tests = [r["test_accuracy"] for r in members if r.get("test_accuracy") is not None]
    test = _spread(tests, "test_accuracy") if tests else {}
    closest = min(abs(r["val_accuracy"] - val["val_accuracy"]) for r in members)
    ticket = next(r for r in members if abs(r["val_accuracy"] - val["val_accuracy"]) <= closest + TIE)
    seeds = [r.get("seed") for r in members]
    expected = _expected(members)
    row = {key: value for key, value in ticket.items() if key not in ("seed", "seeds_expected")}
    missing = [seed for seed in expected if seed not in seeds]
    row.update(val, **test, seed_count=len(members), seeds_expected=len(expected), seeds=seeds,
               complete=not missing, seeds_missing=missing, ticket_seed=ticket.get("seed"),
               ticket_val_accuracy=ticket["val_accuracy"],
               per_seed=[{key: r.get(key) for key in PER_SEED} for r in members])
    return row


def _expected(members: Sequence[dict[str, Any]]) -> list[Any]:
    """The seeds a configuration expects: its records' ``seeds_expected``, else those that finished."""
    for record in members:
        if record.get("seeds_expected") is not None:
            return list(record["seeds_expected"])
    return [r.get("seed") for r in members]


def configurations(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The configuration rows of ``records``, in the order each configuration first appears. A configuration
    a search drew twice (NSGA-II can copy a parent) has each of its seeds twice: the n-th record of a seed
    goes to the configuration's n-th row, so each draw keeps its own row, as it keeps its own study trial."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    seen: dict[tuple, int] = {}
    for record in records:
        key = configuration_key(record)
        draw = seen.get((key, record.get("seed")), 0)
        seen[(key, record.get("seed"))] = draw + 1
        groups.setdefault((key, draw), []).append(record)
    return [configuration_row(members) for members in groups.values()]


def compute_fronts(records: Sequence[dict[str, Any]], *, reference_size: float | None = None) -> dict[str, Any]:
    """``{"reference": ..., "families": {family: {"front": [rows], "hypervolume": h, "trials": n,
    "configurations": c, "incomplete": [rows]}}, "weight_trained": [rows], "smallest_reaching_baseline": row}``
    from the per-trial ``records`` (sweeps.outcome.collect), on configurations (see module docstring).
    ``reference_size``: the reference point's size in bits (None: :func:`reference_for` of the largest
    ticket among ``records``)."""
    tickets = [r for r in records if r["family"] in TICKET_FAMILIES]
    if reference_size is None:
        reference_size = reference_for(max((r["size_bits"] for r in tickets), default=1.0))
    reference = (reference_size, 0.0)
    out: dict[str, Any] = {
        "reference": {"size_bits": reference[0], "accuracy": reference[1],
                      "note": "hypervolume in (log10 size_bits, mean val accuracy) against this point"},
        "families": {},
        "weight_trained": configurations([r for r in records if r["family"] == "weight_trained"]),
    }
    for family in TICKET_FAMILIES:
        members = [r for r in tickets if r["family"] == family]
        if not members:
            continue
        rows = configurations(members)
        complete = [row for row in rows if row["complete"]]
        points = [(row["size_bits"], row["val_accuracy"]) for row in complete]
        out["families"][family] = {
            "front": [complete[i] for i in pareto_front(points)],
            "hypervolume": hypervolume(points, reference),
            "trials": len(members),
            "configurations": len(complete),
            "incomplete": [row for row in rows if not row["complete"]],
        }
    out["smallest_reaching_baseline"] = smallest_reaching_baseline(out)
    return out


def smallest_reaching_baseline(fronts: dict[str, Any]) -> dict[str, Any] | None:
    """The smallest point of the frozen front whose mean validation accuracy reaches the weight-trained
    baseline's mean (of its complete configuration); None when no point does or either is missing."""
    baselines = [b for b in fronts["weight_trained"] if b["complete"]]
    frozen = fronts["families"].get("frozen")
    if not baselines or frozen is None:
        return None
    target = max(b["val_accuracy"] for b in baselines)
    reaching = [r for r in frozen["front"] if r["val_accuracy"] >= target]
    return min(reaching, key=lambda r: r["size_bits"]) if reaching else None


def _csv_row(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "seeds": " ".join(str(seed) for seed in row["seeds"])}


def write_tables(fronts: dict[str, Any], directory: Path) -> list[Path]:
    """One CSV per family front (:data:`COLUMNS`) plus ``pareto_fronts.json``; returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for family, data in fronts["families"].items():
        path = directory / f"pareto_front_{family}.csv"
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(_csv_row(row) for row in data["front"])
        written.append(path)
    path = directory / "pareto_fronts.json"
    path.write_text(json.dumps(fronts, indent=2, default=str) + "\n")
    return written + [path]


def write_front_files(fronts: dict[str, Any], records: Sequence[dict[str, Any]], directory: Path, title: str,
                      stopped: Sequence[dict[str, Any]] = ()) -> list[Path]:
    """What a sweep publishes of ``fronts`` (computed from ``records``) into ``directory``: the tables
    (:func:`write_tables`), the plot when there is a record (:func:`plot_fronts`, with the ``stopped``
    trials) and the printed text ``pareto_fronts.txt``; returns the files written, the text last."""
    written = write_tables(fronts, directory)
    if records:
        written.append(plot_fronts(records, fronts, directory / "pareto_fronts.png", title, stopped=stopped))
    text = directory / "pareto_fronts.txt"
    text.write_text(format_fronts(fronts) + "\n")
    return written + [text]


def plot_fronts(records: Sequence[dict[str, Any]], fronts: dict[str, Any], path: Path, title: str,
                stopped: Sequence[dict[str, Any]] = ()) -> Path:
    """Mean validation accuracy versus ticket size (log scale): every complete configuration as a dot at
    its mean, with a thick error bar of ± one standard deviation and a thin line from its worst to its
    best seed when it has several; each family's front as steps; incomplete configurations as hollow circles
    labelled with their seed count; the ``stopped`` trials as faint crosses at the accuracy they had when
    stopped."""
    figure, axes = plt.subplots(figsize=(8, 5.5), dpi=120)
    right_edge = 1.15 * max((r["size_bits"] for r in records if r["family"] in TICKET_FAMILIES), default=1)
    for family in TICKET_FAMILIES:
        early = [r for r in stopped if r["family"] == family]
        if early:
            axes.scatter([r["size_bits"] for r in early], [100 * r["val_accuracy"] for r in early], color=COLOURS[family],
                         alpha=0.25, s=18, marker="x", label=f"{family}: {len(early)} trials stopped early")
    spread = False
    for family in TICKET_FAMILIES:
        if family not in fronts["families"]:
            continue
        colour, data = COLOURS[family], fronts["families"][family]
        rows = [row for row in configurations([r for r in records if r["family"] == family]) if row["complete"]]
        sizes = [row["size_bits"] for row in rows]
        axes.scatter(sizes, [100 * row["val_accuracy"] for row in rows], color=colour, alpha=0.35, s=22)
        several = [row for row in rows if row["seed_count"] > 1]
        if several:
            spread = True
            x = [row["size_bits"] for row in several]
            axes.errorbar(x, [100 * row["val_accuracy"] for row in several],
                          yerr=[100 * row["val_accuracy_std"] for row in several],
                          fmt="none", ecolor=colour, alpha=0.5, linewidth=3)
            axes.vlines(x, [100 * row["val_accuracy_min"] for row in several],
                        [100 * row["val_accuracy_max"] for row in several], colors=colour, alpha=0.8, linewidth=0.8)
        incomplete = data["incomplete"]
        if incomplete:
            axes.scatter([row["size_bits"] for row in incomplete], [100 * row["val_accuracy"] for row in incomplete],
                         facecolors="none", edgecolors=colour, s=40,
                         label=f"{family}: {len(incomplete)} incomplete (not all seeds finished; off the front)")
            for row in incomplete:
                axes.annotate(f"{row['seed_count']}/{row['seeds_expected']}", (row["size_bits"], 100 * row["val_accuracy"]),
                              textcoords="offset points", xytext=(4, 4), fontsize=7, color=colour)
        front = data["front"]
        if not front:
            continue
        steps = [row["size_bits"] for row in front]
        accuracies = [100 * row["val_accuracy"] for row in front]
        label = f"{family} source (front, HV {data['hypervolume']:.3f})"
        # a front holds its best accuracy for every larger size: carry the last step to the right edge
        axes.step(steps + [right_edge], accuracies + accuracies[-1:], where="post", color=colour, linewidth=2, label=label)
        axes.plot(steps, accuracies, "o", color=colour, markersize=6)
    for baseline in fronts["weight_trained"]:
        mean, std = 100 * baseline["val_accuracy"], 100 * baseline["val_accuracy_std"]
        marked = "" if baseline["complete"] else f", seeds {baseline['seed_count']}/{baseline['seeds_expected']}"
        seeds = f", mean of {baseline['seed_count']} seeds, band ± 1 std" if baseline["seed_count"] > 1 else ""
        axes.axhline(mean, color=COLOURS["weight_trained"], linestyle="--", linewidth=1,
                     label=f"weight-trained dense ({baseline['size_bits'] / 8 / 1024:,.0f} KiB{seeds}{marked})")
        if std > 0:
            axes.axhspan(max(0.0, mean - std), min(100.0, mean + std), color=COLOURS["weight_trained"], alpha=0.08)
    if spread:
        axes.errorbar([], [], yerr=[], fmt="none", ecolor="grey", linewidth=3, alpha=0.5,
                      label="thick bar: ± 1 std over seeds; thin line: min-max")
    axes.set_xscale("log")
    axes.set_xlabel("ticket size (bits, log scale)")
    axes.set_ylabel("validation accuracy (%, mean over seeds)" if spread else "validation accuracy (%)")
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="lower right", fontsize=8 if spread else 9)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def format_fronts(fronts: dict[str, Any]) -> str:
    """The per-family table printed at the end of a sweep: mean ± std over seeds, the seed count."""
    lines = []
    for family, data in fronts["families"].items():
        lines.append(f"{family} source: {data['configurations']} configurations ({data['trials']} trials), "
                     f"hypervolume {data['hypervolume']:.4f}")
        lines.append(f"  {'size (bits)':>14}  {'val % ± std':>13}  {'val min-max':>11}  {'test % ± std':>13}  "
                     f"{'seeds':>5}  {'k':>5}  {'f':>5}  {'s':<5}  (ticket seed) ticket file")
        for r in data["front"]:
            lines.append(_row_line(r))
        for r in data["incomplete"]:
            lines.append(_row_line(r) + "  incomplete: off the front")
    lines.extend(_early_stopping_lines(fronts.get("early_stopping")))
    for baseline in fronts["weight_trained"]:
        marked = "" if baseline["complete"] else " (incomplete: not compared)"
        lines.append(f"weight-trained dense: {baseline['size_bits']:,} bits, val {_mean_std(baseline, 'val_accuracy')}%, "
                     f"test {_mean_std(baseline, 'test_accuracy')}%, seeds {_seeds(baseline)}{marked}")
    complete = [b for b in fronts["weight_trained"] if b["complete"]]
    if complete and "frozen" in fronts["families"]:
        best = fronts.get("smallest_reaching_baseline")
        target = 100 * max(b["val_accuracy"] for b in complete)
        if best is None:
            lines.append(f"no frozen ticket on the front reaches the weight-trained val accuracy {target:.2f}%")
        else:
            lines.append(f"smallest frozen ticket reaching the weight-trained val accuracy {target:.2f}%: "
                         f"{best['size_bits']:,} bits, val {100 * best['val_accuracy']:.2f}%  "
                         f"{_ticket(best)}")
    return "\n".join(lines)


def _row_line(r: dict[str, Any]) -> str:
    share = r.get("lock_share")
    share = "-" if share in (None, "") else (share if isinstance(share, str) else f"{share:.3f}")
    low_high = f"{100 * r['val_accuracy_min']:.2f}-{100 * r['val_accuracy_max']:.2f}"
    return (f"  {r['size_bits']:>14,}  {_mean_std(r, 'val_accuracy'):>13}  {low_high:>11}  "
            f"{_mean_std(r, 'test_accuracy'):>13}  {_seeds(r):>5}  {r.get('sparsity') or 0:5.3f}  "
            f"{r.get('freeze_ratio') or 0:5.3f}  {share:<5}  {_ticket(r)}")


def _mean_std(row: dict[str, Any], name: str) -> str:
    if row.get(name) is None:
        return "-"
    return f"{100 * row[name]:.2f} ± {100 * row[f'{name}_std']:.2f}"


def _seeds(row: dict[str, Any]) -> str:
    return f"{row['seed_count']}/{row['seeds_expected']}"


def _ticket(row: dict[str, Any]) -> str:
    return f"({row.get('ticket_seed')}) {_shown_path(row.get('ticket_file'))}"


def describe_configuration(record: dict[str, Any]) -> str:
    """``frozen k=0.5 f=0.3 s=proportional``: a configuration's coordinates."""
    names = {"sparsity": "k", "freeze_ratio": "f", "lock_share": "s"}
    return " ".join([str(record.get("family"))] + [f"{short}={record[key]}" for key, short in names.items()
                                                   if record.get(key) is not None])


def _early_stopping_lines(summary: dict[str, Any] | None) -> list[str]:
    if not summary or summary["scheduler"] == "fifo":
        return []
    full = summary["epochs_trained"] + summary["epochs_saved"]
    share = f" ({100 * summary['epochs_saved'] / full:.0f} % of {full:,})" if full else ""
    return [f"{summary['scheduler']} stopped {summary['trials_stopped']} of {summary['trials']} trials early "
            f"(fronts and hypervolumes count only full-budget trials): {summary['epochs_trained']:,} epochs trained, "
            f"{summary['epochs_saved']:,} saved{share}"]


def _shown_path(path: str | None) -> str:
    """A ticket file's path, relative to the working directory when it lies below it."""
    if not path:
        return "-"
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path
