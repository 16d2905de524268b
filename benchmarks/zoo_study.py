"""Any model as a frozen source (issue 24): do frozen sources beat randomly pruned ones at equal ticket size?

For each converted model (a torchvision or PyG model given by import path, docs/method.md §13) this runs a
real grid sweep through the sweep driver's Python API (``sweeps.runner.run_sweep``: Ray Tune trials, MLflow
records, tickets) with the dense, pruned and frozen families and the weight-trained baseline, every grid
point under each of ``--seeds``. Then, per model:

- a configuration is (family, k, f, s); its val accuracy is averaged over the seeds, and its spread is the
  range over the seeds (min to max);
- each family's Pareto front and hypervolume are taken on those means (``sweeps.dominance``), against one
  reference point per model: 2 × its largest ticket size, accuracy 0; each family's hypervolume is also
  taken per seed, and its range is reported as the hypervolume's spread;
- frozen against pruned at equal size: a pruned point (p = f) and the frozen point of the same k and f
  (p + r = f) search the same number of free weights, so their tickets are of equal size (up to the
  per-layer rounding of the frozen counts, which the JSON reports as a size ratio). Each such pair is
  "frozen higher" or "pruned higher" when the two seed ranges do not overlap, else "within seed spread"
  (a pruned point with k = f has nothing to search, docs/method.md §2: it is listed as such and left out of
  the verdict); the hypervolumes are compared on all configurations and on the matched ones only (frozen also runs at
  f > k, where no pruned source exists, which enlarges its front without any pruned point to meet);
- one PNG per model (val accuracy against ticket size, log scale, with min–max error bars), a JSON of
  every number and a printed table.

    python benchmarks/zoo_study.py                                  # all three models, 2 seeds
    python benchmarks/zoo_study.py --models graphsage --seeds 0     # one model, one seed
    python benchmarks/zoo_study.py --models vit --smoke --json /tmp/zoo.json --plot-dir /tmp   # 1-2 min (tested)
    python benchmarks/zoo_study.py --from-json benchmarks/zoo_study.json   # analyse, print and plot again; no sweep

Sweeps write only under ``--workdir`` (Ray results, MLflow store); the outputs are the JSON and the PNGs.
It needs the sweep extra (Ray, Optuna, MLflow).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from frozen_slt.errors import FrozenSLTError  # noqa: E402
from sweeps import fronts  # noqa: E402
from sweeps.dominance import hypervolume, pareto_front  # noqa: E402

FAMILIES = ("dense", "pruned", "frozen")
CONFIGS = REPO / "sweeps" / "configs"


@dataclass(frozen=True)
class Study:
    """One model's sweep: a shipped sweep file, the settings that replace its [experiment] ones, the grid."""

    title: str
    config: str
    experiment: dict[str, Any] = field(default_factory=dict)
    sparsity: tuple[float, ...] = (0.3, 0.5, 0.7)
    freeze_ratio: tuple[float, ...] = (0.3, 0.6)


# k in {0.3, 0.5, 0.7} x f in {0.3, 0.6} (digits-torchvision.toml's grid) gives 4 pruned points (f <= k), each
# with a frozen twin of equal size, 6 frozen and 3 dense points and the baseline: 14 trials per seed. ResNet-18
# and GraphSAGE are cut to k in {0.5, 0.7} (10 trials per seed) to fit a shared 2-core machine; k = 0.3 adds
# no pair where the pruned source searches (k = f = 0.3 leaves it nothing). --sparsity, --freeze-ratio and
# --epochs change them.
GRID = ((0.3, 0.5, 0.7), (0.3, 0.6))
SMALL_GRID = ((0.5, 0.7), (0.3, 0.6))
VIT = {"patch_size": 4, "num_layers": 2, "num_heads": 2, "hidden_dim": 64, "mlp_dim": 128}
# GraphSAGE with PyG's defaults (2 layers, no normalisation) memorises the synthetic graph's noisy features:
# 13.5 % val weight-trained, 10 % as a frozen ticket, in 40 epochs. Four layers (GIN's depth) with
# non-affine BatchNorm reach 54 % and 47 %.
SAGE = {"hidden_channels": 256, "num_layers": 4, "norm": "batch_norm"}
STUDIES = {
    "resnet18": Study("torchvision ResNet-18 on digits", "digits-torchvision.toml", {"epochs": 6}, *SMALL_GRID),
    "vit": Study("torchvision VisionTransformer (2 layers, width 64) on digits", "digits-torchvision.toml",
                 {"model": "torchvision:VisionTransformer", "model_args": VIT, "epochs": 5}, *GRID),
    "graphsage": Study("PyG GraphSAGE (4 layers, BatchNorm) on synthetic-arxiv", "synthetic-arxiv-gin.toml",
                       {"model": "pyg:GraphSAGE", "model_args": SAGE, "epochs": 40}, *SMALL_GRID),
}


def study_spec(name: str, study: Study, seeds: list[int], smoke: bool, epochs: int | None, grid: tuple | None = None):
    """The SweepSpec of one model's study (``grid``: (sparsities, freeze ratios) instead of the study's own);
    ``smoke``: 1 epoch, one point per family, the first seed."""
    from sweeps.spec import load_sweep_spec

    experiment = dict(study.experiment)
    if epochs is not None:
        experiment["epochs"] = epochs
    if smoke:
        experiment["epochs"] = 1
    spec = load_sweep_spec(CONFIGS / study.config, experiment)
    grid = ((0.5,), (0.3,)) if smoke else (grid[0] or study.sparsity, grid[1] or study.freeze_ratio) if grid else \
        (study.sparsity, study.freeze_ratio)
    return replace(spec, name=f"zoo-{name}{'-smoke' if smoke else ''}", search="grid", families=FAMILIES,
                   weight_trained_baseline=True, grid_sparsity=grid[0], grid_freeze_ratio=grid[1],
                   grid_lock_share="proportional", seeds=tuple(seeds[:1] if smoke else seeds), scheduler="fifo")


def run(spec, workdir: Path) -> list[dict[str, Any]]:
    """Run the sweep (a new local Ray, never a recorded cluster) and return every full-budget trial's record."""
    from sweeps.runner import SweepOptions, run_sweep

    storage = workdir / "ray"
    options = SweepOptions(storage=str(storage), local_dir=storage, tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}",
                           address="local", verbose=0)
    outcome = run_sweep(spec, options)
    if not outcome.complete:
        raise SystemExit(f"sweep {spec.run_name}: {len(outcome.failed)} trials failed, {len(outcome.unfinished)} "
                         f"unfinished: {outcome.failed[:3]}")
    return outcome.records


def spread(values: list[float]) -> dict[str, Any]:
    return {"values": values, "mean": statistics.fmean(values), "min": min(values), "max": max(values),
            "range": max(values) - min(values)}


def configurations(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ticket trials as the sweeps group them (sweeps.fronts.configurations: (family, k, f, s) over seeds,
    one size per configuration), with each one's val and test accuracies and their spread over the seeds."""
    rows = fronts.configurations([r for r in records if r["family"] in FAMILIES])
    out = []
    for row in sorted(rows, key=lambda r: str((r["family"], r["sparsity"], r["freeze_ratio"], r["lock_share"]))):
        per_seed = row["per_seed"]
        out.append({"family": row["family"], "sparsity": row["sparsity"], "freeze_ratio": row["freeze_ratio"],
                    "lock_share": row["lock_share"], "size_bits": row["size_bits"], "seeds": [s["seed"] for s in per_seed],
                    "val_accuracy": spread([s["val_accuracy"] for s in per_seed]),
                    "test_accuracy": spread([s["test_accuracy"] for s in per_seed])})
    return out


def family_summary(configs: list[dict[str, Any]], reference: tuple[float, float], seeds: list[int]) -> dict[str, Any]:
    """Per family: the front and hypervolume on the means, and the hypervolume of each seed's own points."""
    out = {}
    for family in FAMILIES:
        members = [c for c in configs if c["family"] == family]
        points = [(c["size_bits"], c["val_accuracy"]["mean"]) for c in members]
        per_seed = [hypervolume([(c["size_bits"], c["val_accuracy"]["values"][c["seeds"].index(seed)])
                                 for c in members if seed in c["seeds"]], reference) for seed in seeds]
        out[family] = {"configurations": len(members), "hypervolume": hypervolume(points, reference),
                       "hypervolume_per_seed": spread(per_seed),
                       "front": [{key: members[i][key] for key in ("sparsity", "freeze_ratio", "lock_share", "size_bits")}
                                 | {"val_mean": members[i]["val_accuracy"]["mean"]} for i in pareto_front(points)]}
    return out


NOTHING_TO_SEARCH = "pruned source searches nothing (k = p)"


def pair_verdict(frozen: dict[str, Any], pruned: dict[str, Any]) -> str:
    if frozen["min"] > pruned["max"]:
        return "frozen higher"
    if pruned["min"] > frozen["max"]:
        return "pruned higher"
    return "within seed spread"


def compare(configs: list[dict[str, Any]], reference: tuple[float, float], seeds: int) -> dict[str, Any]:
    """Frozen against pruned at equal size: each pruned (k, f) with the frozen point of the same k and f.

    A pruned point with k = f (p = k) has nothing left to search (docs/method.md §2: its ticket is the pruned
    network itself, every free weight kept), so it is listed with that verdict and left out of the summary."""
    frozen = {(c["sparsity"], c["freeze_ratio"]): c for c in configs if c["family"] == "frozen"}
    pairs = []
    for pruned in (c for c in configs if c["family"] == "pruned"):
        twin = frozen.get((pruned["sparsity"], pruned["freeze_ratio"]))
        if twin is None:
            continue
        empty = pruned["sparsity"] <= pruned["freeze_ratio"] + 1e-9
        pairs.append({"sparsity": pruned["sparsity"], "freeze_ratio": pruned["freeze_ratio"],
                      "pruned_size_bits": pruned["size_bits"], "frozen_size_bits": twin["size_bits"],
                      "size_ratio": twin["size_bits"] / pruned["size_bits"],
                      "pruned_val": pruned["val_accuracy"], "frozen_val": twin["val_accuracy"],
                      "difference": twin["val_accuracy"]["mean"] - pruned["val_accuracy"]["mean"],
                      "verdict": NOTHING_TO_SEARCH if empty else pair_verdict(twin["val_accuracy"], pruned["val_accuracy"])})
    searched = [p for p in pairs if p["verdict"] != NOTHING_TO_SEARCH]
    counts = {v: sum(p["verdict"] == v for p in pairs)
              for v in ("frozen higher", "pruned higher", "within seed spread", NOTHING_TO_SEARCH)}
    beyond = "beyond the seed spread" if seeds > 1 else "(one seed: no spread to go beyond)"
    if not searched:
        verdict = "no matched size where both sources search"
    elif counts["frozen higher"] == len(searched):
        verdict = f"frozen beats pruned at every matched size, {beyond}"
    elif counts["pruned higher"] == len(searched):
        verdict = f"pruned beats frozen at every matched size, {beyond}"
    elif counts["within seed spread"] == len(searched):
        verdict = "no difference beyond the seed spread at any matched size"
    else:
        verdict = (f"mixed: frozen higher at {counts['frozen higher']}, pruned higher at {counts['pruned higher']}, "
                   f"within the seed spread at {counts['within seed spread']} of {len(searched)} matched sizes")
    if len(searched) < len(pairs):
        verdict += f" (and {len(pairs) - len(searched)} where the pruned source searches nothing, k = p)"
    matched = [frozen[p["sparsity"], p["freeze_ratio"]] for p in pairs]
    hv_matched = hypervolume([(c["size_bits"], c["val_accuracy"]["mean"]) for c in matched], reference)
    return {"pairs": pairs, "counts": counts, "verdict": verdict,
            "mean_difference": statistics.fmean(p["difference"] for p in searched) if searched else None,
            "frozen_hypervolume_matched_only": hv_matched}


def hypervolume_verdict(families: dict[str, Any]) -> str:
    """Which of frozen and pruned has the larger hypervolume on the means, and whether their per-seed ranges part."""
    frozen, pruned = families["frozen"], families["pruned"]
    larger = "frozen" if frozen["hypervolume"] > pruned["hypervolume"] else "pruned"
    apart = (frozen["hypervolume_per_seed"]["min"] > pruned["hypervolume_per_seed"]["max"]
             or pruned["hypervolume_per_seed"]["min"] > frozen["hypervolume_per_seed"]["max"])
    if len(frozen["hypervolume_per_seed"]["values"]) < 2:
        return f"{larger} larger (one seed: no spread)"
    return f"{larger} larger, per-seed ranges {'apart' if apart else 'overlapping'}"


def summarise(configs: list[dict[str, Any]], weight_trained: dict[str, Any] | None, seeds: list[int]) -> dict[str, Any]:
    """Everything the study reports, from the configurations alone (so a stored result can be analysed again)."""
    reference = (2.0 * max(c["size_bits"] for c in configs), 0.0)
    families = family_summary(configs, reference, seeds)
    comparison = compare(configs, reference, len(seeds))
    comparison["hypervolume"] = {family: families[family]["hypervolume"] for family in ("frozen", "pruned")}
    comparison["hypervolume_per_seed"] = {family: families[family]["hypervolume_per_seed"] for family in ("frozen", "pruned")}
    comparison["hypervolume_verdict"] = hypervolume_verdict(families)
    return {"reference": {"size_bits": reference[0], "accuracy": reference[1]}, "configurations": configs,
            "families": families, "comparison": comparison, "weight_trained": weight_trained}


def analyse(records: list[dict[str, Any]], seeds: list[int]) -> dict[str, Any]:
    baseline = [r for r in records if r["family"] == "weight_trained"]
    weight_trained = {"size_bits": baseline[0]["size_bits"], "val_accuracy": spread([r["val_accuracy"] for r in baseline]),
                      "test_accuracy": spread([r["test_accuracy"] for r in baseline])} if baseline else None
    return summarise(configurations(records), weight_trained, seeds)


def plot(result: dict[str, Any], path: Path) -> None:
    """Val accuracy (mean over seeds, min–max bars) against ticket size, log scale; each family's front as steps."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from sweeps.fronts import COLOURS

    figure, axis = plt.subplots(figsize=(6.4, 4.2), dpi=80)
    empty = [c for c in result["configurations"]
             if c["family"] == "pruned" and c["sparsity"] <= c["freeze_ratio"] + 1e-9]  # drawn as a note: off the scale
    for family, shift in zip(FAMILIES, (1.0, 0.98, 1.02)):  # pruned and frozen twins drawn 2 % apart, not on each other
        members = sorted((c for c in result["configurations"] if c["family"] == family and c not in empty),
                         key=lambda c: c["size_bits"])
        sizes = [shift * c["size_bits"] for c in members]
        means = [100 * c["val_accuracy"]["mean"] for c in members]
        errors = [[100 * (c["val_accuracy"]["mean"] - c["val_accuracy"]["min"]) for c in members],
                  [100 * (c["val_accuracy"]["max"] - c["val_accuracy"]["mean"]) for c in members]]
        axis.errorbar(sizes, means, yerr=errors, fmt="o", color=COLOURS[family], capsize=3, markersize=4, alpha=0.8,
                      label=f"{family} (hv {result['families'][family]['hypervolume']:.3f})")
        front = result["families"][family]["front"]
        right = max(c["size_bits"] for c in result["configurations"])  # each front's staircase runs on to the largest ticket
        axis.step([shift * p["size_bits"] for p in front] + [right], [100 * p["val_mean"] for p in front + front[-1:]],
                  where="post", color=COLOURS[family], linewidth=1)
    baseline = result["weight_trained"]
    if baseline is not None:
        axis.axhline(100 * baseline["val_accuracy"]["mean"], color=COLOURS["weight_trained"], linestyle="--", linewidth=1,
                     label="weight-trained")
    for number, config in enumerate(empty):
        axis.annotate(f"pruned k = f = {config['sparsity']} searches nothing: val {100 * config['val_accuracy']['mean']:.1f} % "
                      f"at {config['size_bits']:,.0f} bits (off the scale)", (0.02, 0.03 + 0.05 * number),
                      xycoords="axes fraction", fontsize=7, color=COLOURS["pruned"])
    axis.set_xscale("log")
    axis.set_xlabel("ticket size (bits, log scale)")
    axis.set_ylabel("val accuracy (%), mean and range over seeds")
    axis.set_title(f"{result['title']}, {epoch_count(result['epochs'])}, seeds {result['seeds']}", fontsize=10)
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def epoch_count(epochs: int) -> str:
    return f"{epochs} epoch{'s' if epochs != 1 else ''}"


def table(name: str, result: dict[str, Any]) -> list[str]:
    """The printed summary of one model: hypervolumes, then each matched pair."""
    lines = [f"\n{name}: {result['title']}; {epoch_count(result['epochs'])}, seeds {result['seeds']}, "
             f"{result['trials']} trials in {result['seconds']:.0f} s; reference {result['reference']['size_bits']:,.0f} bits"]
    for family in FAMILIES:
        summary = result["families"][family]
        per_seed = summary["hypervolume_per_seed"]
        lines.append(f"  {family:<7} {summary['configurations']} configurations  hypervolume on means {summary['hypervolume']:.4f}"
                     f"  per seed {per_seed['min']:.4f} to {per_seed['max']:.4f}")
    baseline = result["weight_trained"]
    if baseline is not None:
        lines.append(f"  weight-trained val {100 * baseline['val_accuracy']['mean']:.2f} % "
                     f"({100 * baseline['val_accuracy']['min']:.2f} to {100 * baseline['val_accuracy']['max']:.2f})")
    comparison = result["comparison"]
    lines.append(f"  frozen hypervolume on the matched configurations only: {comparison['frozen_hypervolume_matched_only']:.4f}")
    lines.append("      k     f   size pruned   size frozen   pruned val % [range]   frozen val % [range]   diff   verdict")
    for pair in comparison["pairs"]:
        pruned, frozen = pair["pruned_val"], pair["frozen_val"]
        lines.append(f"  {pair['sparsity']:5.2f} {pair['freeze_ratio']:5.2f} {pair['pruned_size_bits']:13,.0f} "
                     f"{pair['frozen_size_bits']:13,.0f}   {100 * pruned['mean']:6.2f} [{100 * pruned['min']:.2f}, {100 * pruned['max']:.2f}]"
                     f"   {100 * frozen['mean']:6.2f} [{100 * frozen['min']:.2f}, {100 * frozen['max']:.2f}]"
                     f"  {100 * pair['difference']:+5.2f}   {pair['verdict']}")
    lines.append(f"  verdict: {comparison['verdict']}; hypervolume: {comparison['hypervolume_verdict']}")
    return lines


def save(path: Path, name: str, result: dict[str, Any]) -> None:
    """Put one model's result into the JSON file, keeping the other models' (each model can be run alone,
    also by several processes at once: the file is read again just before it is replaced)."""
    from frozen_slt.files import write_atomically

    results = json.loads(path.read_text()) if path.is_file() else {"models": {}}
    results["models"][name] = result
    results["models"] = dict(sorted(results["models"].items()))
    write_atomically(path, (json.dumps(results, indent=1) + "\n").encode())


def redraw(path: Path, models: list[str], plot_dir: Path, write: bool) -> dict[str, Any]:
    """The models' results in ``path`` analysed again from their configurations (``write``: and saved), plotted, printed."""
    results = json.loads(path.read_text())
    missing = [name for name in models if name not in results["models"]]
    if missing and len(missing) == len(models):
        raise SystemExit(f"{path} holds none of the models {models} (it has {sorted(results['models'])})")
    for name in (name for name in models if name in results["models"]):
        result = results["models"][name]
        result.update(summarise(result["configurations"], result["weight_trained"], result["seeds"]))
        plot(result, plot_dir / f"zoo_study_{name}.png")
        print("\n".join(table(name, result)))
        if write:
            save(path, name, result)
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=sorted(STUDIES), default=list(STUDIES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, help="replace every model's epochs")
    parser.add_argument("--sparsity", type=float, nargs="+", help="replace every model's grid sparsities")
    parser.add_argument("--freeze-ratio", type=float, nargs="+", help="replace every model's grid freeze ratios")
    parser.add_argument("--smoke", action="store_true", help="1 epoch, one point per family, the first seed (a minute or two)")
    parser.add_argument("--workdir", type=Path, help="Ray results and MLflow store (default: a new folder under /tmp)")
    parser.add_argument("--json", type=Path, help="results file (default: benchmarks/zoo_study.json; under --workdir with --smoke)")
    parser.add_argument("--from-json", type=Path, metavar="JSON",
                        help="run nothing: analyse the models in this results file again, print their tables and draw their plots "
                             "(and save the new analysis when --json names the same file)")
    parser.add_argument("--plot-dir", type=Path, help="one zoo_study_<model>.png each (default: benchmarks/; --workdir with --smoke)")
    args = parser.parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        parser.error(f"--epochs {args.epochs}: give 1 or more")
    if len(set(args.seeds)) != len(args.seeds) or min(args.seeds) < 0:
        parser.error(f"--seeds {args.seeds}: give distinct seeds >= 0")
    if args.from_json is not None and not args.from_json.is_file():
        parser.error(f"--from-json {args.from_json}: no such file")
    for flag, path in (("--plot-dir", args.plot_dir), ("--json", args.json and args.json.parent)):
        if path is not None and not path.is_dir():
            parser.error(f"{flag} {path}: no such folder; outputs go into an existing folder")
    if args.from_json is not None:
        return redraw(args.from_json, args.models, args.plot_dir or REPO / "benchmarks", args.json == args.from_json)
    try:  # every model's settings and grid are checked before anything is written or Ray starts
        from sweeps.space import plan_sweep

        specs = {name: study_spec(name, STUDIES[name], args.seeds, args.smoke, args.epochs, (args.sparsity, args.freeze_ratio))
                 for name in args.models}
        for spec in specs.values():
            plan_sweep(spec)
    except FrozenSLTError as error:
        parser.exit(2, f"zoo_study.py: {error}\n")
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="zoo-study-", dir="/tmp"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    outputs = workdir if args.smoke else REPO / "benchmarks"
    json_path, plot_dir = args.json or outputs / "zoo_study.json", args.plot_dir or outputs
    print(f"zoo study: models {args.models}, seeds {args.seeds[:1] if args.smoke else args.seeds}{', smoke' if args.smoke else ''}; "
          f"workdir {workdir}; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    results: dict[str, Any] = {"models": {}}
    try:
        for name, spec in specs.items():
            study = STUDIES[name]
            started = time.perf_counter()
            records = run(spec, workdir)
            seconds = time.perf_counter() - started
            base = spec.base_config()
            result = {"title": study.title, "smoke": args.smoke, "date": time.strftime("%Y-%m-%d"), "model": base.model,
                      "model_args": dict(base.model_args or {}),
                      "dataset": base.dataset, "epochs": base.train.epochs, "grid": {"sparsity": list(spec.grid_sparsity),
                      "freeze_ratio": list(spec.grid_freeze_ratio), "lock_share": spec.grid_lock_share},
                      "seeds": list(spec.seeds), "trials": len(records), "seconds": seconds, "sweep": spec.run_name,
                      **analyse(records, list(spec.seeds))}
            results["models"][name] = result
            plot(result, plot_dir / f"zoo_study_{name}.png")
            print("\n".join(table(name, result)), flush=True)
            save(json_path, name, result)
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
    print(f"\nwrote {json_path} and {len(args.models)} plots in {plot_dir}; load average at the end "
          f"{' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    return results


if __name__ == "__main__":
    main()
