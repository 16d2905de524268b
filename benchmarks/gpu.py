"""The GPU fast path, measured: host syncs in the step, step variants, whole trials, and trials packed on one GPU.

Data is CIFAR-10-sized random images written in CIFAR-10's own file format (50,000 training and
10,000 test images, read by the project's real loader and held on the GPU), so timings are those of
the real dataset without downloading it. Subcommands, each within a few minutes on one H100:

* ``sync``: runs training steps (:func:`frozen_slt.training.loop.train_step`: forward, backward, optimizer, the
  fixed-shape threshold) under ``torch.cuda.set_sync_debug_mode("error")``: any operation that makes
  the host wait for the GPU raises, naming itself. The batches are taken from the loader first (its
  per-epoch shuffle is copied to the GPU once per epoch, outside the step).
* ``step``: median step time of Conv6 and ResNet-18 at batch 128 in fp32, bf16 autocast with
  channels-last, and (``--compile``) the same with ``torch.compile`` of the model, interleaved, plus a
  profile of the fastest variant's step (the kernels that take its time, and the host time between them).
* ``trial``: one :func:`frozen_slt.training.loop.fit` run (``--model``, ``--epochs``, bf16 and channels-last
  unless ``--fp32``) with a checkpoint per epoch as in a sweep; prints the time per epoch and in all.
* ``packing``: ``sweeps/pareto.py`` on a grid of ``--trials`` such runs with ``--gpus-per-trial``
  (0.25: four trials per GPU), while ``nvidia-smi`` is sampled every second; prints how many trial
  processes shared the GPU at once and the trials finished per GPU-hour.

    python benchmarks/gpu.py sync step
    python benchmarks/gpu.py trial --model conv6 --epochs 100
    python benchmarks/gpu.py trial --model resnet18 --epochs 100
    python benchmarks/gpu.py packing --trials 8 --gpus-per-trial 0.25 --epochs 100
    python benchmarks/gpu.py trial --device cpu --epochs 1 --train-images 500   # dry run of the script on a CPU
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from paired import interleave, machine, median_ms, paired_ratio

from frozen_slt.config.experiment import ExperimentConfig
from frozen_slt.data import load_dataset
from frozen_slt.data.loop import loop_view
from frozen_slt.training.checkpoint import DirectoryStore
from frozen_slt.training.loop import fit, train_step
from frozen_slt.training.network import build_network
from frozen_slt.training.optimizers import make_optimizer

ROOT = Path(__file__).resolve().parents[1]
TICKET = {"sparsity": 0.5, "freeze_ratio": 0.4}  # a frozen source, proportional lock share


def write_cifar10_format(root: Path, train_images: int, test_images: int, seed: int = 0) -> Path:
    """``root/cifar-10-batches-py`` with random uint8 images and labels in CIFAR-10's pickle layout."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    def batch(count: int, name: str) -> bytes:
        return pickle.dumps({b"batch_label": name.encode(), b"labels": rng.integers(0, 10, count).tolist(),
                             b"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8),
                             b"filenames": [b"x.png"] * count})

    per_file = train_images // 5
    for index in range(1, 6):
        (folder / f"data_batch_{index}").write_bytes(batch(per_file, f"training batch {index} of 5"))
    (folder / "test_batch").write_bytes(batch(test_images, "testing batch 1 of 1"))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"c"] * 10, b"num_cases_per_batch": per_file}))
    return root


def experiment(args, data_dir: Path, model: str | None = None, fast: bool | None = None, **overrides) -> ExperimentConfig:
    fast = not args.fp32 if fast is None else fast
    return ExperimentConfig.from_settings({
        "model": model or args.model, "dataset": "cifar10", "data_dir": str(data_dir), "epochs": args.epochs,
        "device": args.device, "bf16": fast and args.device == "cuda", "channels_last": fast and args.device == "cuda",
        **TICKET, **overrides})


def take_batches(config: ExperimentConfig, count: int, device: torch.device):
    data = loop_view(load_dataset(config.dataset, config.data, device, config.dataset_args))
    batches = []
    for epoch in range(1, count + 1):
        for step in data.train_steps(config.train.batch_size, epoch):
            batches.append(step)
            if len(batches) == count:
                return batches
    return batches


def check_sync(args, data_dir: Path) -> None:
    """Training steps under ``set_sync_debug_mode("error")``: any host synchronisation raises."""
    device = torch.device(args.device)
    for model in ("conv6", "resnet18"):
        config = experiment(args, data_dir, model)
        network = build_network(config, device)
        optimizer = make_optimizer(config, network.model)
        network.model.train()
        batches = take_batches(config, 4, device)
        train_step(network, optimizer, config, *batches[0])  # warm-up: lazy initialisations may sync once
        if device.type != "cuda":
            print(f"sync {model}: not on CUDA, nothing to check")
            continue
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for inputs, labels, rows in batches[1:]:
                train_step(network, optimizer, config, inputs, labels, rows)
        finally:
            torch.cuda.set_sync_debug_mode(0)
        torch.cuda.synchronize()
        print(f"sync {model} (bf16 {config.train.bf16}, channels-last {config.train.channels_last}): "
              f"{len(batches) - 1} training steps without a host synchronisation")


def step_variants(args, data_dir: Path) -> None:
    """Paired step times of fp32, bf16 + channels-last (and compiled), then a profile of the fastest."""
    device = torch.device(args.device)
    for model in ("conv6", "resnet18"):
        sides, steps = {}, {}
        variants = {"fp32": (False, False), "bf16+channels-last": (True, False)}
        if args.compile:
            variants["bf16+channels-last+compile"] = (True, True)
        for name, (fast, compiled) in variants.items():
            config = experiment(args, data_dir, model, fast)
            network = build_network(config, device)
            if compiled:
                network.model = torch.compile(network.model)
            optimizer = make_optimizer(config, network.model)
            network.model.train()
            batches = take_batches(config, args.rounds + 3, device)
            cursor = iter(batches)
            steps[name] = lambda n=network, o=optimizer, c=config, it=cursor: train_step(n, o, c, *next(it))
            for _ in range(3):
                steps[name]()
            sides[name] = steps[name]
        times = interleave(sides, args.rounds, device)
        print(f"step {model}, batch 128: " + ", ".join(f"{name} {median_ms(value):.2f} ms" for name, value in times.items()))
        for name in list(times)[1:]:
            print(f"  {name} / fp32: {paired_ratio(times[name], times['fp32'])}")
        if device.type == "cuda":
            profile_step(steps[min(times, key=lambda name: statistics.median(times[name]))], device)


def profile_step(step, device: torch.device) -> None:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as profiler:
        for _ in range(3):
            step()
        torch.cuda.synchronize(device)
    print(profiler.key_averages().table(sort_by="cuda_time_total", row_limit=15))


def time_trial(args, data_dir: Path) -> dict:
    config = experiment(args, data_dir)
    with tempfile.TemporaryDirectory() as directory:
        start = time.perf_counter()
        result = fit(config, store=DirectoryStore(directory))
        seconds = time.perf_counter() - start
    epochs = [row["seconds"] for row in result.history[1:]]
    out = {"model": config.model, "epochs": config.train.epochs, "bf16": config.train.bf16,
           "channels_last": config.train.channels_last, "seconds": seconds,
           "median_epoch_seconds": statistics.median(epochs), "machine": machine(torch.device(args.device))}
    print(f"trial {config.model}, {config.train.epochs} epochs (bf16 {config.train.bf16}, channels-last "
          f"{config.train.channels_last}): {seconds:.1f} s in all, median epoch (train + evaluation) "
          f"{out['median_epoch_seconds']:.2f} s, the rest (start, checkpoints) "
          f"{seconds - sum(epochs):.1f} s; val accuracy {result.val_accuracy:.3f}")
    return out


class GpuSampler(threading.Thread):
    """Samples every second how many processes hold memory on the GPU (``nvidia-smi``)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.counts: list[int] = []
        self.running = True

    def run(self) -> None:
        while self.running:
            output = subprocess.run(["nvidia-smi", "--query-compute-apps=pid", "--format=csv,noheader"],
                                    capture_output=True, text=True).stdout
            self.counts.append(len([line for line in output.splitlines() if line.strip()]))
            time.sleep(1.0)


def packing(args, data_dir: Path, scratch: Path) -> None:
    """The sweep with fractional GPUs: processes sharing the GPU at once, and trials per GPU-hour."""
    sparsities = [round(0.1 + 0.8 * index / max(args.trials - 1, 1), 3) for index in range(args.trials)]
    config_path = scratch / "packing.toml"
    config_path.write_text("\n".join([
        'name = "gpu-packing"', 'search = "grid"', 'families = ["dense"]', "weight_trained_baseline = false",
        "[experiment]", f'model = "{args.model}"', 'dataset = "cifar10"', f'data_dir = "{data_dir}"',
        f"epochs = {args.epochs}", f"bf16 = {str(not args.fp32).lower()}", f"channels_last = {str(not args.fp32).lower()}",
        "[grid]", f"sparsity = {sparsities}", "freeze_ratio = [0.0]", "seeds = [0]",
        "[resources]", f"cpus_per_trial = {args.cpus_per_trial}", f"gpus_per_trial = {args.gpus_per_trial}",
        "max_failures = 0", ""]))
    sampler = GpuSampler()
    if args.device == "cuda":
        sampler.start()
    start = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "sweeps/pareto.py", "--config", str(config_path), "--storage", str(scratch / "ray_results"),
         "--tracking-uri", f"sqlite:///{scratch / 'mlflow.db'}", "--quiet"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    sampler.running = False
    print(completed.stdout[-2000:])
    if completed.returncode != 0:
        raise SystemExit(f"the sweep failed ({completed.returncode}): {completed.stderr[-3000:]}")
    finished = sum(1 for path in (scratch / "ray_results").glob("*/*/result.json")
                   if path.read_text().strip() and json.loads(path.read_text().splitlines()[-1]).get("done"))
    print(f"packing: {finished} of {args.trials} trials of {args.model} x {args.epochs} epochs with "
          f"--gpus-per-trial {args.gpus_per_trial} in {seconds:.0f} s: {3600 * finished / seconds:.0f} trials per "
          f"GPU-hour; at most {max(sampler.counts, default=0)} trial processes on the GPU at once"
          + ("" if args.device == "cuda" else " (not sampled: no GPU)"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", nargs="+", choices=("sync", "step", "trial", "packing"))
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"), help="cpu: a dry run of the script")
    parser.add_argument("--model", default="conv6", choices=("conv6", "resnet18"))
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--fp32", action="store_true", help="trial/packing without bf16 autocast and channels-last")
    parser.add_argument("--compile", action="store_true", help="step: also time torch.compile of the model")
    parser.add_argument("--rounds", type=int, default=20, help="step: timed rounds")
    parser.add_argument("--trials", type=int, default=8, help="packing: trials in the sweep")
    parser.add_argument("--gpus-per-trial", type=float, default=0.25)
    parser.add_argument("--cpus-per-trial", type=float, default=2)
    parser.add_argument("--train-images", type=int, default=50_000, help="CIFAR-10 has 50,000 (40,000 train, 10,000 val)")
    parser.add_argument("--test-images", type=int, default=10_000)
    parser.add_argument("--data-dir", type=Path, help="reuse a folder written by an earlier run")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here; --device cpu runs the script as a dry run")
    print(machine(torch.device(args.device)))
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        data_dir = args.data_dir or write_cifar10_format(scratch / "data", args.train_images, args.test_images)
        for what in args.what:
            if what == "sync":
                check_sync(args, data_dir)
            elif what == "step":
                step_variants(args, data_dir)
            elif what == "trial":
                time_trial(args, data_dir)
            else:
                packing(args, data_dir, scratch)


if __name__ == "__main__":
    main()
