"""The default sweep (``python sweeps/pareto.py``) from two checkouts, back to back: wall times and fronts.

Runs the README's main job, unchanged, once from a baseline checkout and once from this one (or
alternately, ``--repeats`` times each), each in a fresh process with its own temporary ``--storage``
and ``--tracking-uri``, and ``PYTHONPATH`` pointing at the checkout that runs. It prints each wall
time, the load average before and after, and the ratio this / baseline, then checks that both sweeps
found the same trials with the same accuracies: every finished trial's config hash, best validation
and test accuracy, best epoch and ticket size (from Ray's ``result.json``), and the fronts.

The baseline is a git revision exported with ``git archive`` into a temporary directory (default: the
main branch's revision the speed-ups are measured against), or any directory holding a checkout.
Each run takes minutes on 2 cores; run it on an otherwise quiet machine (``uptime`` below ~0.7),
as both sweeps use every core.

    python benchmarks/default_sweep.py                           # baseline b9217ab, then this checkout
    python benchmarks/default_sweep.py --baseline /path/to/checkout --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from paired import load_average, machine

ROOT = Path(__file__).resolve().parents[1]
BASELINE_REVISION = "b9217ab"


def export_revision(revision: str, destination: Path) -> Path:
    """``git archive`` of ``revision`` unpacked into ``destination`` (no worktree, no change to the repository)."""
    destination.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(destination)], input=archive, check=True)
    return destination


def run_sweep(checkout: Path, scratch: Path, extra: list[str]) -> dict:
    """One default sweep from ``checkout``; its wall time, load averages and finished trials."""
    scratch.mkdir(parents=True, exist_ok=True)  # a sweep refuses a tracking database in a folder that is not there
    storage, tracking = scratch / "ray_results", f"sqlite:///{scratch / 'mlflow.db'}"
    environment = {**os.environ, "PYTHONPATH": str(checkout), "RAY_AUTH_MODE": "disabled"}
    command = [sys.executable, "sweeps/pareto.py", "--storage", str(storage), "--tracking-uri", tracking, "--quiet", *extra]
    before = load_average()
    start = time.perf_counter()
    completed = subprocess.run(command, cwd=checkout, env=environment, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if completed.returncode != 0:
        raise SystemExit(f"the sweep from {checkout} failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
    return {"seconds": seconds, "load_before": before, "load_after": load_average(),
            "trials": finished_trials(storage), "fronts": fronts(storage)}


def finished_trials(storage: Path) -> dict[str, tuple]:
    """config hash -> (family, best val accuracy, best test accuracy, best epoch, ticket bits) of every trial."""
    trials = {}
    for path in storage.glob("*/*/result.json"):
        lines = path.read_text().splitlines()
        if not lines:
            continue
        last = json.loads(lines[-1])
        if last.get("done"):
            trials[last["config_hash"]] = (last["family"], last["best_val_accuracy"], last["best_test_accuracy"],
                                           last["best_epoch"], last["ticket_bits"])
    return trials


def fronts(storage: Path) -> dict[str, list[tuple]]:
    """family -> its front as (config hash, val accuracy, test accuracy, size) rows."""
    (path,) = storage.glob("*.results/pareto_fronts.json")
    data = json.loads(path.read_text())
    return {family: [(row["config_hash"], row["val_accuracy"], row["test_accuracy"], row["size_bits"]) for row in value["front"]]
            for family, value in data["families"].items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, help="a checkout directory (default: an export of --baseline-revision)")
    parser.add_argument("--baseline-revision", default=BASELINE_REVISION)
    parser.add_argument("--repeats", type=int, default=1, help="runs per side, alternating baseline and this checkout")
    parser.add_argument("--smoke", action="store_true", help="pass --smoke to both sweeps (seconds; checks the script)")
    args = parser.parse_args()
    extra = ["--smoke"] if args.smoke else []
    print(f"{machine(__import__('torch').device('cpu'))}")
    with tempfile.TemporaryDirectory() as scratch_root:
        scratch = Path(scratch_root)
        baseline = args.baseline.resolve() if args.baseline else export_revision(args.baseline_revision, scratch / "baseline")
        runs: dict[str, list[dict]] = {"baseline": [], "this": []}
        for repeat in range(args.repeats):
            for side, checkout in (("baseline", baseline), ("this", ROOT)):
                result = run_sweep(checkout, scratch / f"{side}-{repeat}", extra)
                runs[side].append(result)
                print(f"{side:<8} {result['seconds']:7.1f} s  load {result['load_before']} -> {result['load_after']}, "
                      f"{len(result['trials'])} trials", flush=True)
    for repeat, (ours, theirs) in enumerate(zip(runs["this"], runs["baseline"])):
        print(f"round {repeat + 1}: this / baseline = {ours['seconds'] / theirs['seconds']:.3f}")
    reference = runs["baseline"][0]
    for side, results in runs.items():
        for result in results:
            if result["trials"] != reference["trials"] or result["fronts"] != reference["fronts"]:
                differing = sorted(key for key in set(result["trials"]) | set(reference["trials"])
                                   if result["trials"].get(key) != reference["trials"].get(key))
                raise SystemExit(f"{side}: the sweep's results differ from the baseline's (trials {differing})")
    print(f"identical: the same {len(reference['trials'])} trials with the same accuracies, epochs and sizes, "
          f"and the same fronts, in every run")


if __name__ == "__main__":
    main()
