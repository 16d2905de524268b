"""Pareto fronts of a finished sweep: per-family fronts, hypervolumes, CSV/JSON tables and the plot.

Fronts are taken on validation accuracy (the selection objective); test accuracy is carried next to it
and never used to choose. Only trials that trained their whole budget enter them: the trials a scheduler
stopped early are drawn as faint markers and counted in the summary, never part of a front or a
hypervolume. Hypervolumes use the reference point (:func:`reference_for`: 2 × the largest ticket size of
the sweep, accuracy 0), with size in log10, so the families of one sweep are compared on one scale. A sweep
fixes that size from its plan before training (sweeps.space.largest_ticket_bits), so a hypervolume computed
while it runs is on the scale of the final one. :func:`write_front_files` writes what a sweep publishes:
the tables, the plot and the text, at its end and while it runs (sweeps.live).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # noqa: E402  (the backend must be chosen first)

from frozen_slt.config.points import TICKET_FAMILIES  # noqa: E402

from .dominance import hypervolume, pareto_front  # noqa: E402

COLOURS = {"dense": "tab:blue", "pruned": "tab:orange", "frozen": "tab:green", "weight_trained": "black"}
COLUMNS = ("family", "size_bits", "val_accuracy", "test_accuracy", "sparsity", "freeze_ratio", "lock_share",
           "seed", "config_hash", "trial_id", "ticket_file", "ticket_artifact", "mlflow_run_id")


def reference_for(largest_bits: float) -> float:
    """The hypervolume reference point's size: twice the largest ticket (accuracy 0 is its other coordinate)."""
    return 2.0 * largest_bits


def compute_fronts(records: Sequence[dict[str, Any]], *, reference_size: float | None = None) -> dict[str, Any]:
    """``{"reference": ..., "families": {family: {"front": [...], "hypervolume": h, "trials": n}}, "weight_trained": [...]}``.

    ``reference_size``: the size of the hypervolume reference point, in bits; None takes :func:`reference_for`
    of the largest ticket among ``records``.
    """
    tickets = [r for r in records if r["family"] in TICKET_FAMILIES]
    if reference_size is None:
        reference_size = reference_for(max((r["size_bits"] for r in tickets), default=1.0))
    reference = (reference_size, 0.0)
    out: dict[str, Any] = {
        "reference": {"size_bits": reference[0], "accuracy": reference[1],
                      "note": "hypervolume in (log10 size_bits, val accuracy) against this point"},
        "families": {},
        "weight_trained": [r for r in records if r["family"] == "weight_trained"],
    }
    for family in TICKET_FAMILIES:
        members = [r for r in tickets if r["family"] == family]
        if not members:
            continue
        points = [(r["size_bits"], r["val_accuracy"]) for r in members]
        out["families"][family] = {
            "front": [members[i] for i in pareto_front(points)],
            "hypervolume": hypervolume(points, reference),
            "trials": len(members),
        }
    out["smallest_reaching_baseline"] = smallest_reaching_baseline(out)
    return out


def smallest_reaching_baseline(fronts: dict[str, Any]) -> dict[str, Any] | None:
    """The smallest point of the frozen front whose validation accuracy reaches the weight-trained
    baseline's (the best one, when several seeds ran); None when no point does or either is missing."""
    baselines = fronts["weight_trained"]
    frozen = fronts["families"].get("frozen")
    if not baselines or frozen is None:
        return None
    target = max(b["val_accuracy"] for b in baselines)
    reaching = [r for r in frozen["front"] if r["val_accuracy"] >= target]
    return min(reaching, key=lambda r: r["size_bits"]) if reaching else None


def write_tables(fronts: dict[str, Any], directory: Path) -> list[Path]:
    """One CSV per family front plus ``pareto_fronts.json``; returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for family, data in fronts["families"].items():
        path = directory / f"pareto_front_{family}.csv"
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(data["front"])
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
    """Accuracy versus ticket size (log scale): all trials as dots, each family's front as steps, and
    the ``stopped`` trials as faint crosses at the accuracy they had when stopped."""
    figure, axes = plt.subplots(figsize=(8, 5.5), dpi=120)
    right_edge = 1.15 * max((r["size_bits"] for r in records if r["family"] in TICKET_FAMILIES), default=1)
    for family in TICKET_FAMILIES:
        early = [r for r in stopped if r["family"] == family]
        if early:
            axes.scatter([r["size_bits"] for r in early], [100 * r["val_accuracy"] for r in early], color=COLOURS[family],
                         alpha=0.25, s=18, marker="x", label=f"{family}: {len(early)} stopped early")
    for family in TICKET_FAMILIES:
        members = [r for r in records if r["family"] == family]
        if not members:
            continue
        colour = COLOURS[family]
        axes.scatter([r["size_bits"] for r in members], [100 * r["val_accuracy"] for r in members],
                     color=colour, alpha=0.35, s=22)
        front = fronts["families"][family]["front"]
        sizes = [r["size_bits"] for r in front]
        accuracies = [100 * r["val_accuracy"] for r in front]
        label = f"{family} source (front, HV {fronts['families'][family]['hypervolume']:.3f})"
        # a front holds its best accuracy for every larger size: carry the last step to the right edge
        axes.step(sizes + [right_edge], accuracies + accuracies[-1:], where="post", color=colour, linewidth=2, label=label)
        axes.plot(sizes, accuracies, "o", color=colour, markersize=6)
    for baseline in fronts["weight_trained"]:
        axes.axhline(100 * baseline["val_accuracy"], color=COLOURS["weight_trained"], linestyle="--", linewidth=1,
                     label=f"weight-trained dense ({baseline['size_bits'] / 8 / 1024:,.0f} KiB)")
    axes.set_xscale("log")
    axes.set_xlabel("ticket size (bits, log scale)")
    axes.set_ylabel("validation accuracy (%)")
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="lower right", fontsize=9)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def format_fronts(fronts: dict[str, Any]) -> str:
    """The per-family table printed at the end of a sweep."""
    lines = []
    for family, data in fronts["families"].items():
        lines.append(f"{family} source: {data['trials']} trials, hypervolume {data['hypervolume']:.4f}")
        lines.append(f"  {'size (bits)':>14}  {'val %':>6}  {'test %':>6}  {'k':>5}  {'f':>5}  {'s':<5}  ticket file")
        for r in data["front"]:
            share = r.get("lock_share")
            share = "-" if share in (None, "") else (share if isinstance(share, str) else f"{share:.3f}")
            lines.append(f"  {r['size_bits']:>14,}  {100 * r['val_accuracy']:6.2f}  {100 * r['test_accuracy']:6.2f}  "
                         f"{r.get('sparsity') or 0:5.3f}  {r.get('freeze_ratio') or 0:5.3f}  {share:<5}  "
                         f"{_shown_path(r.get('ticket_file'))}")
    lines.extend(_early_stopping_lines(fronts.get("early_stopping")))
    for baseline in fronts["weight_trained"]:
        lines.append(f"weight-trained dense: {baseline['size_bits']:,} bits, val {100 * baseline['val_accuracy']:.2f}%, "
                     f"test {100 * baseline['test_accuracy']:.2f}%")
    if fronts["weight_trained"] and "frozen" in fronts["families"]:
        best = fronts.get("smallest_reaching_baseline")
        target = 100 * max(b["val_accuracy"] for b in fronts["weight_trained"])
        if best is None:
            lines.append(f"no frozen ticket on the front reaches the weight-trained val accuracy {target:.2f}%")
        else:
            lines.append(f"smallest frozen ticket reaching the weight-trained val accuracy {target:.2f}%: "
                         f"{best['size_bits']:,} bits, val {100 * best['val_accuracy']:.2f}%  "
                         f"{_shown_path(best.get('ticket_file'))}")
    return "\n".join(lines)


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
