"""Same results across two checkouts: short digits runs, every metric and state compared bit for bit.

A speed-up must not change what a run computes. This script trains a few short runs on the embedded
digits data (every source family, the weight-trained baseline, the static and dynamic scales, a ResNet with
BatchNorm) with the checkout on ``PYTHONPATH`` and writes every epoch's metrics (floats as their exact
hex) and SHA-256 digests of the final and best states (scores, thresholds, BatchNorm statistics)
and of the optimizer's state to a JSON file. With
``--baseline DIR`` it runs itself once per checkout, each in its own subprocess, and compares.

    python benchmarks/same_results.py --baseline /tmp/main-export          # this checkout vs another
    python benchmarks/same_results.py --emit out.json                      # only write this checkout's

Wall-clock fields (``seconds``) are left out; everything else must be identical.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

#: (name, flat settings): short runs that together exercise every code path of the CPU step.
RUNS = (
    ("dense", {"sparsity": 0.5, "freeze_ratio": 0.0}),
    ("pruned", {"sparsity": 0.5, "freeze_ratio": 0.4, "lock_share": 0.0}),
    ("frozen", {"sparsity": 0.5, "freeze_ratio": 0.6}),
    ("frozen-dynamic-scale", {"sparsity": 0.7, "freeze_ratio": 0.8, "scale": "dynamic"}),
    ("frozen-static-scale", {"sparsity": 0.4, "freeze_ratio": 0.5, "scale": "static"}),
    ("frozen-static-scale-adamw", {"sparsity": 0.3, "freeze_ratio": 0.2, "scale": "static", "optimizer": "adamw",
                                   "lr": 0.01}),
    ("weight-trained", {"weight_trained": True, "freeze_ratio": 0.0}),
    ("resnet18-frozen", {"model": "resnet18", "sparsity": 0.5, "freeze_ratio": 0.4, "batch_size": 128}),
)


def _exact(value):
    return value.hex() if isinstance(value, float) else value


def _digest(tree) -> str:
    """SHA-256 over every tensor in a (nested) dict, keys in sorted order: the exact bits of a state."""
    digest = hashlib.sha256()

    def visit(prefix: str, value) -> None:
        if isinstance(value, dict):
            for key in sorted(value, key=str):
                visit(f"{prefix}/{key}", value[key])
        elif hasattr(value, "numpy"):
            digest.update(prefix.encode())
            digest.update(value.detach().contiguous().numpy().tobytes())

    visit("", tree)
    return digest.hexdigest()


def emit(epochs: int) -> dict[str, dict]:
    """Train every run of :data:`RUNS` with the importable ``frozen_slt`` and describe its results exactly."""
    import torch

    try:
        from frozen_slt.config.experiment import ExperimentConfig
        from frozen_slt.training.checkpoint import DirectoryStore
        from frozen_slt.training.loop import fit
    except ImportError:  # a checkout from before the library was grouped into subpackages (73c3802 and earlier)
        from frozen_slt.checkpoint import DirectoryStore
        from frozen_slt.config import ExperimentConfig
        from frozen_slt.train import fit

    torch.set_num_threads(1)
    out = {}
    for name, settings in RUNS:
        config = ExperimentConfig.from_settings({"model": "conv6", "dataset": "digits", "epochs": epochs,
                                                 "lr": 0.05, "device": "cpu", **settings})
        with tempfile.TemporaryDirectory() as directory:
            store = DirectoryStore(directory)
            result = fit(config, store=store)
            state = store.load()
        history = [{key: _exact(value) for key, value in epoch.items() if key != "seconds"} for epoch in result.history]
        out[name] = {"config_hash": config.config_hash(), "history": history,
                     "best": [result.best_epoch, _exact(result.val_accuracy), _exact(result.test_accuracy)],
                     "final_state": _digest(state["model"]), "best_state": _digest(state["best"]["model"]),
                     "optimizer_state": _digest(state["optimizer"]["state"])}
    return out


def run_in(checkout: Path, epochs: int, destination: Path) -> dict:
    """Run this script's ``--emit`` with ``checkout`` first on ``PYTHONPATH``, in a fresh interpreter."""
    environment = {**os.environ, "PYTHONPATH": str(checkout)}
    command = [sys.executable, str(Path(__file__).resolve()), "--emit", str(destination), "--epochs", str(epochs)]
    subprocess.run(command, check=True, env=environment, cwd=checkout)
    return json.loads(destination.read_text())


def compare(ours: dict, theirs: dict) -> list[str]:
    """One line per difference (run, epoch, metric), empty when everything is identical."""
    differences = []
    for name in sorted(set(ours) | set(theirs)):
        if name not in ours or name not in theirs:
            differences.append(f"{name}: only in one checkout")
            continue
        a, b = ours[name], theirs[name]
        for epoch, (x, y) in enumerate(zip(a["history"], b["history"])):
            for key in sorted(set(x) | set(y)):
                if x.get(key) != y.get(key):
                    differences.append(f"{name} epoch {epoch} {key}: {x.get(key)} != {y.get(key)}")
        for key in ("config_hash", "best", "final_state", "best_state", "optimizer_state"):
            if a[key] != b[key]:
                differences.append(f"{name} {key}: {a[key]} != {b[key]}")
    return differences


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, help="the other checkout (a directory holding frozen_slt/)")
    parser.add_argument("--emit", type=Path, help="write this checkout's results to this JSON file and stop")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    if args.emit:
        args.emit.write_text(json.dumps(emit(args.epochs), indent=1))
        return
    if args.baseline is None:
        parser.error("give --baseline DIR (or --emit FILE)")
    here = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as scratch:
        theirs = run_in(args.baseline.resolve(), args.epochs, Path(scratch) / "baseline.json")
        ours = run_in(here, args.epochs, Path(scratch) / "ours.json")
    differences = compare(ours, theirs)
    runs = ", ".join(name for name, _ in RUNS)
    if differences:
        print("\n".join(differences))
        raise SystemExit(f"{len(differences)} differences between {here} and {args.baseline}")
    print(f"identical: {runs} ({args.epochs} epochs each, every metric of every epoch)")


if __name__ == "__main__":
    main()
