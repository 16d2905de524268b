"""MO-ASHA versus FIFO on the same sweep: epochs trained, wall time and each family's front hypervolume.

Runs ``sweeps/pareto.py`` four times as a user would (a grid and an Optuna search, each with
``--scheduler fifo`` and ``--scheduler mo-asha``) on a digits sweep larger than the default one (5
sparsities × 5 freezing ratios over the three families, plus the weight-trained baseline; the Optuna
search gets the same number of trials), then prints one table per search with the ratios MO-ASHA / FIFO.
Hypervolumes of the two runs are recomputed from their front tables against one reference point (2 ×
the largest ticket of both), so they compare like for like.

    python benchmarks/early_stopping.py                      # conv4, 12 epochs: about half an hour on 2 cores
    python benchmarks/early_stopping.py --epochs 4 --grid 0.3 0.7 --model conv2   # a quick look

It needs the sweep extra (Ray, Optuna, MLflow) and writes everything under ``--workdir``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sweeps.dominance import hypervolume  # noqa: E402
from sweeps.spec import load_sweep_spec  # noqa: E402

FAMILIES = ("dense", "pruned", "frozen")
CONFIG = """
name = "early-stopping"
families = ["dense", "pruned", "frozen"]
weight_trained_baseline = true
[experiment]
model = "{model}"
dataset = "digits"
epochs = {epochs}
batch_size = 32
lr = 0.05
distribution = "erk"
[grid]
sparsity = {grid}
freeze_ratio = {grid}
lock_share = "proportional"
[optuna]
num_samples = {samples}
strategy = "nsga2"
seed = 0
sparsity = [0.1, 0.9]
freeze_ratio = [0.1, 0.9]
[scheduler]
kind = "fifo"
grace_epochs = {grace}
reduction_factor = {eta}
[resources]
cpus_per_trial = 1
"""


def run(config: Path, workdir: Path, search: str, scheduler: str) -> dict:
    """One sweep as a subprocess; its front tables, early-stopping summary and wall time."""
    command = [sys.executable, str(REPO / "sweeps" / "pareto.py"), "--config", str(config), "--search", search,
               "--scheduler", scheduler, "--quiet", "--storage", str(workdir / "ray"),
               "--tracking-uri", f"sqlite:///{workdir / 'mlflow.db'}"]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=workdir, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{search}/{scheduler} sweep failed ({done.returncode}):\n{done.stderr[-3000:]}")
    spec = replace(load_sweep_spec(config), search=search, scheduler=scheduler)
    results = workdir / "ray" / f"{spec.run_name}.results"
    fronts = json.loads((results / "pareto_fronts.json").read_text())
    print(f"  {search:<6} {scheduler:<7} {seconds:7.0f} s  {fronts['early_stopping']['epochs_trained']:5d} epochs", flush=True)
    return {"seconds": seconds, "fronts": fronts, "plot": results / "pareto_fronts.png"}


def compare(fifo: dict, asha: dict) -> list[str]:
    """Markdown rows: epochs, wall time, then each family's hypervolume, FIFO | MO-ASHA | ratio."""
    largest = max(r["size_bits"] for side in (fifo, asha) for data in side["fronts"]["families"].values() for r in data["front"])
    reference = (2.0 * largest, 0.0)

    def volume(side: dict, family: str) -> float:
        front = side["fronts"]["families"].get(family, {"front": []})["front"]
        return hypervolume([(r["size_bits"], r["val_accuracy"]) for r in front], reference)

    summary = asha["fronts"]["early_stopping"]
    rows = [("epochs trained", fifo["fronts"]["early_stopping"]["epochs_trained"], summary["epochs_trained"], "{:,}"),
            ("wall time (s)", fifo["seconds"], asha["seconds"], "{:,.0f}")]
    rows += [(f"hypervolume, {family}", volume(fifo, family), volume(asha, family), "{:.4f}") for family in FAMILIES]
    lines = [f"| {name} | {form.format(a)} | {form.format(b)} | {b / a:.2f}× |" for name, a, b, form in rows]
    lines.append(f"| trials stopped early | 0 | {summary['trials_stopped']} of {summary['trials']} | |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="conv4")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--grid", type=float, nargs="+", default=[0.1, 0.3, 0.5, 0.7, 0.9],
                        help="the sparsities, and also the freezing ratios, of the grid")
    parser.add_argument("--grace-epochs", type=int, default=1)
    parser.add_argument("--reduction-factor", type=float, default=3.0)
    parser.add_argument("--searches", nargs="+", choices=("grid", "optuna"), default=["grid", "optuna"])
    parser.add_argument("--workdir", type=Path, default=Path("early-stopping-benchmark"))
    parser.add_argument("--plots", type=Path, help="copy each MO-ASHA run's front plot here")
    args = parser.parse_args()
    args.workdir = args.workdir.resolve()
    args.workdir.mkdir(parents=True, exist_ok=True)
    config = args.workdir / "early-stopping.toml"
    config.write_text(CONFIG.format(model=args.model, epochs=args.epochs, grid=list(args.grid), samples=1,
                                    grace=args.grace_epochs, eta=args.reduction_factor))
    spec = replace(load_sweep_spec(config), scheduler="mo-asha")
    # the Optuna search gets as many trials as the grid: its ticket trials, and the baseline on top as there
    from sweeps.space import grid_points

    points = grid_points(spec)[0]
    trials, tickets = len(points), sum(point["family"] != "weight_trained" for point in points)
    config.write_text(CONFIG.format(model=args.model, epochs=args.epochs, grid=list(args.grid), samples=tickets,
                                    grace=args.grace_epochs, eta=args.reduction_factor))
    print(f"{args.model} on digits, {args.epochs} epochs, {trials} trials per sweep; MO-ASHA rungs at epochs "
          f"{', '.join(map(str, spec.rungs()))}, η = {args.reduction_factor:g}; load average {os.getloadavg()[0]:.2f}")
    tables = []
    for search in args.searches:
        fifo = run(config, args.workdir, search, "fifo")
        asha = run(config, args.workdir, search, "mo-asha")
        if args.plots is not None:
            args.plots.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(asha["plot"], args.plots / f"early_stopping_{search}.png")
        tables.append(f"\n{search} ({trials} trials)\n\n| | FIFO | MO-ASHA | MO-ASHA / FIFO |\n|---|---:|---:|---:|")
        tables.extend(compare(fifo, asha))
    print("\n".join(tables))
    print(f"\nload average at the end: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")


if __name__ == "__main__":
    main()
