"""Optuna-mode search strategies against the grid at equal trial budgets: each family's front hypervolume.

Drives the sweeps' own strategies (``sweeps.strategies.SearchStrategy``: size-aware, NSGA-II, TPE, GP,
random) in-process, without Ray: each suggestion is trained by ``frozen_slt.training.loop.fit`` and told back
before the next is asked (one trial at a time), with a cache of results by config hash shared by all
runs, so a point two strategies both ask for is trained once. The grids are the sweeps' own grid points
(``sweeps.space.grid_points``). Every hypervolume is taken against one reference point (2 × the largest
ticket of all runs, accuracy 0), and each strategy's is given as a ratio to the grid's with the same
number of trials (median and range over the sampler seeds).

    python benchmarks/search_strategies.py --plot benchmarks/search_strategies.png   # conv2, 3 epochs, 23 and 45, 3 seeds
    python benchmarks/search_strategies.py --seeds 0 --budgets 23 --workers 1       # a quick look

The small grid (k in {.2, .4, .6, .8} x f in {.2, .5, .8}) has 23 ticket trials, the large one (k, f in
{.1, .3, .5, .7, .9}) 45 (pruned points need f <= k); the strategies get the same numbers, split evenly
over the families, with k and f in [0.1, 0.9]. Every trial uses seed 0, so the grid is one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from frozen_slt.config.experiment import ExperimentConfig  # noqa: E402
from frozen_slt.files import write_atomically  # noqa: E402
from sweeps.dominance import hypervolume  # noqa: E402
from sweeps.spec import STRATEGIES, SweepSpec  # noqa: E402

FAMILIES = ("dense", "pruned", "frozen")
GRIDS = {23: ((0.2, 0.4, 0.6, 0.8), (0.2, 0.5, 0.8)), 45: ((0.1, 0.3, 0.5, 0.7, 0.9), (0.1, 0.3, 0.5, 0.7, 0.9))}
RANGE = (0.1, 0.9)


def experiment(args) -> dict:
    return {"model": args.model, "dataset": "digits", "epochs": args.epochs, "batch_size": 32, "lr": 0.05,
            "distribution": "erk"}


def train(point: dict, settings: dict, cache: Path) -> dict:
    """(family, size_bits, val_accuracy, config_hash) of a point, from the cache or trained now."""
    import torch

    from frozen_slt.config.points import point_config
    from frozen_slt.training.loop import fit

    config = point_config(ExperimentConfig.from_settings(settings), point)
    path = cache / f"{config.config_hash()}.json"
    if not path.is_file():
        torch.set_num_threads(1)
        result = fit(config)
        write_atomically(path, json.dumps({"family": config.family, "size_bits": result.size_bits,
                                           "val_accuracy": result.val_accuracy}).encode())
    return {**json.loads(path.read_text()), "config_hash": config.config_hash()}


def run_strategy(task: tuple) -> tuple:
    """One strategy at one budget and sampler seed: the records of its trials."""
    strategy, budget, seed, settings, cache = task
    import optuna

    from sweeps.strategies import COMPLETE, SearchStrategy, family_budgets

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    search = SearchStrategy(strategy, family_budgets(budget, {f: 1 for f in FAMILIES}), RANGE, RANGE, seed=seed,
                            trial_seed=0, baseline=False)
    records = []
    for number in range(len(search.order)):
        point = search.ask(str(number))["point"]
        record = train(point, settings, cache)
        search.tell(str(number), COMPLETE, record["val_accuracy"], record["size_bits"])
        records.append(record)
    return strategy, budget, seed, records


def run_grid(task: tuple) -> tuple:
    budget, settings, cache = task
    from sweeps.space import grid_points

    sparsity, freeze = GRIDS[budget]
    spec = SweepSpec(experiment=settings, weight_trained_baseline=False, grid_sparsity=sparsity, grid_freeze_ratio=freeze)
    points, _ = grid_points(spec)
    assert len(points) == budget, (budget, len(points))
    return "grid", budget, 0, [train(point, settings, cache) for point in points]


def volumes(records: list[dict], reference: tuple[float, float]) -> dict[str, float]:
    return {family: hypervolume([(r["size_bits"], r["val_accuracy"]) for r in records if r["family"] == family], reference)
            for family in FAMILIES}


def report(runs: dict, budgets: list[int], seeds: list[int], strategies: list[str]) -> list[str]:
    """Markdown: per budget, the grid's hypervolume and each strategy's ratio to it (median [min, max])."""
    largest = max(r["size_bits"] for records in runs.values() for r in records)
    reference = (2.0 * largest, 0.0)
    lines = []
    for budget in budgets:
        grid = volumes(runs["grid", budget, 0], reference)
        lines += [f"\n{budget} ticket trials (hypervolume ratio to the grid's, median [min, max] over seeds {seeds})\n",
                  "| method | " + " | ".join(FAMILIES) + " |", "|---|" + "---:|" * len(FAMILIES),
                  "| grid (hypervolume) | " + " | ".join(f"{grid[f]:.4f}" for f in FAMILIES) + " |"]
        for strategy in strategies:
            ratios = {f: [volumes(runs[strategy, budget, seed], reference)[f] / grid[f] for seed in seeds] for f in FAMILIES}
            cells = [f"{statistics.median(v):.3f} [{min(v):.3f}, {max(v):.3f}]" for v in ratios.values()]
            lines.append(f"| {strategy} | " + " | ".join(cells) + " |")
    if "size-aware" not in strategies:
        return lines
    if len(budgets) == 2:
        small, large = sorted(budgets)
        big_grid = volumes(runs["grid", large, 0], reference)["frozen"]
        sized = [volumes(runs["size-aware", small, seed], reference)["frozen"] / big_grid for seed in seeds]
        lines.append(f"\nsize-aware with {small} trials / grid with {large}, frozen family: median {statistics.median(sized):.3f} "
                     f"[{min(sized):.3f}, {max(sized):.3f}]")
    for budget in budgets:  # size-aware against each other strategy: median hypervolume over the seeds, per family
        median = {strategy: {f: statistics.median(volumes(runs[strategy, budget, seed], reference)[f] for seed in seeds)
                             for f in FAMILIES} for strategy in strategies}
        for other in (s for s in strategies if s != "size-aware"):
            wins = [f for f in FAMILIES if median["size-aware"][f] > median[other][f]]
            lines.append(f"{budget} trials: size-aware's median above {other}'s in {len(wins)} of {len(FAMILIES)} families "
                         f"({', '.join(wins) or 'none'})")
    return lines


def plot(runs: dict, budget: int, path: Path, strategies: list[str]) -> None:
    """The fronts of one run per method (seed 0) at ``budget`` trials, one panel per method."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from sweeps.dominance import pareto_front
    from sweeps.fronts import COLOURS

    methods = ["grid", *strategies]
    figure, axes = plt.subplots(2, 3, figsize=(11, 6.5), dpi=80, sharex=True, sharey=True)
    for axis, method in zip(axes.flat, methods):
        records = runs[method, budget, 0]
        for family in FAMILIES:
            members = [(r["size_bits"], 100 * r["val_accuracy"]) for r in records if r["family"] == family]
            front = [members[i] for i in pareto_front(members)]
            axis.scatter(*zip(*members), color=COLOURS[family], alpha=0.3, s=12)
            axis.step(*zip(*front), where="post", color=COLOURS[family], label=family)
            axis.plot(*zip(*front), "o", color=COLOURS[family], markersize=4)
        axis.set_xscale("log")
        axis.set_title(f"{method} ({budget} trials)", fontsize=10)
        axis.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(loc="lower right", fontsize=8)
    figure.supxlabel("ticket size (bits, log scale)")
    figure.supylabel("validation accuracy (%)")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="conv2")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--budgets", type=int, nargs="+", choices=sorted(GRIDS), default=sorted(GRIDS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES))
    parser.add_argument("--workers", type=int, default=2, help="processes training at once (one thread each)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "frozen-slt-search-strategies",
                        help="trial results by config hash, shared by all runs (default: %(default)s)")
    parser.add_argument("--plot", type=Path, help="write the fronts of one run per method here (PNG)")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    settings = experiment(args)
    tasks = [(run_grid, (budget, settings, args.cache)) for budget in args.budgets]
    tasks += [(run_strategy, (strategy, budget, seed, settings, args.cache))
              for seed in args.seeds for budget in args.budgets for strategy in args.strategies]
    print(f"{args.model} on digits, {args.epochs} epochs; budgets {args.budgets}; seeds {args.seeds}; "
          f"{args.workers} workers; load average {os.getloadavg()[0]:.2f}", flush=True)
    started, runs = time.perf_counter(), {}
    with ProcessPoolExecutor(args.workers) as pool:
        futures = [pool.submit(function, task) for function, task in tasks]
        for future in futures:
            method, budget, seed, records = future.result()
            runs[method, budget, seed] = records
    print("\n".join(report(runs, args.budgets, args.seeds, args.strategies)))
    distinct = len({r["config_hash"] for records in runs.values() for r in records})
    print(f"\n{distinct} distinct trials (cache: {args.cache}); {time.perf_counter() - started:.0f} s; "
          f"load average at the end: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    if args.plot is not None:
        plot(runs, max(args.budgets), args.plot, args.strategies)


if __name__ == "__main__":
    main()
