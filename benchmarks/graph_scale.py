"""Full-batch GIN training at OGBN-Arxiv's scale: a masked ticket against the weight-trained GIN (the floor).

The graph is random but has OGBN-Arxiv's sizes: 169,343 nodes, 1,166,243 random directed edges (the
raw edge count; about 2.33 M directed edges once symmetrised and coalesced), 128-d Gaussian features,
40 classes and the official split sizes. One epoch is what ``fit`` does per epoch: one optimizer step
over the whole graph (with the threshold update for the ticket) and one evaluation of val and test.

Time: both sides run in this process on the same graph, interleaved (ticket, floor, ticket, ...) after
one warm-up epoch each; the medians and their ratio are printed. Memory: each side runs again in a
fresh subprocess that builds the graph and the model, resets the kernel's resident high-water mark
(``/proc/self/clear_refs``), runs two epochs and reads the mark back (``VmHWM``): the peak resident
memory of the whole process while training, graph, model and libraries included. It also reports the
resident memory after the imports and after building the graph, and the graph build's own peak. On
CUDA the training peak is ``torch.cuda.max_memory_allocated`` over the same two epochs instead.

    python benchmarks/graph_scale.py                     # CPU, 3 timed epochs per side
    python benchmarks/graph_scale.py --device cuda --repeats 10
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from frozen_slt.config.experiment import ExperimentConfig
from frozen_slt.data.graph import GraphData
from frozen_slt.training.loop import (
    Reporter,
    evaluate_splits,
    make_optimizer,
    train_epoch,
)
from frozen_slt.training.network import build_network

NODES, RAW_EDGES, FEATURES, CLASSES = 169_343, 1_166_243, 128, 40
SPLIT = (90_941, 29_799, 48_603)  # OGB's official train/valid/test sizes
SIDES = {
    "ticket": {"sparsity": 0.5, "freeze_ratio": 0.5},  # frozen source, proportional lock share, EPL (the recipe)
    "floor": {"weight_trained": True, "freeze_ratio": 0.0},  # the weight-trained GIN of the same shape
}


def arxiv_sized_graph(device: torch.device, seed: int = 0) -> GraphData:
    """A random graph with OGBN-Arxiv's node, edge, feature and split sizes, on ``device``."""
    generator = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, NODES, (2, RAW_EDGES), generator=generator)
    features = torch.randn(NODES, FEATURES, generator=generator)
    labels = torch.randint(0, CLASSES, (NODES,), generator=generator)
    order = torch.randperm(NODES, generator=generator)
    bounds = (0, SPLIT[0], SPLIT[0] + SPLIT[1], NODES)
    splits = {name: order[bounds[i] : bounds[i + 1]].sort().values for i, name in enumerate(("train", "val", "test"))}
    return GraphData("arxiv-sized", features, edge_index, labels, splits, CLASSES, device)


def build_side(side: str, device: torch.device):
    config = ExperimentConfig.from_settings({"model": "gin", "dataset": "ogbn-arxiv", "device": device.type, **SIDES[side]})
    network = build_network(config, device)
    return config, network, make_optimizer(config, network.model)


def one_epoch(data: GraphData, config, network, optimizer, epoch: int) -> float:
    """Seconds of one epoch: the training step and one evaluation of val and test."""
    if network.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    train_epoch(network, data, optimizer, config, epoch, Reporter())
    evaluate_splits(network, data, config)
    if network.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _resident_kib(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1))


def memory_child(side: str, device: torch.device) -> dict[str, float]:
    """Run in a fresh process: resident memory (MiB) after the imports, after building the graph, at the
    graph build's peak, and the peak over two epochs of ``side`` (graph and model resident)."""
    report = {"imports_mib": _resident_kib("VmRSS") / 1024}
    data = arxiv_sized_graph(device)
    report.update(graph_mib=_resident_kib("VmRSS") / 1024, build_peak_mib=_resident_kib("VmHWM") / 1024)
    config, network, optimizer = build_side(side, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM: the peak below is the training's
    for epoch in (1, 2):
        one_epoch(data, config, network, optimizer, epoch)
    if device.type == "cuda":
        report["peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20  # device memory, not host
    else:
        report["peak_mib"] = _resident_kib("VmHWM") / 1024
    return report


def measure_memory(side: str, device: torch.device) -> dict[str, float]:
    command = [sys.executable, __file__, "--memory-child", side, "--device", device.type]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def time_sides(device: torch.device, repeats: int) -> dict[str, float]:
    """Median epoch seconds of each side, interleaved in this process after one warm-up epoch each."""
    data = arxiv_sized_graph(device)
    print(f"graph: {data.num_nodes:,} nodes, {data.num_edges:,} directed edges after symmetrising, "
          f"splits {data.split_sizes}", flush=True)
    built = {side: build_side(side, device) for side in SIDES}
    times: dict[str, list[float]] = {side: [] for side in SIDES}
    for epoch in range(repeats + 1):
        for side, (config, network, optimizer) in built.items():
            seconds = one_epoch(data, config, network, optimizer, epoch + 1)
            if epoch:  # the first epoch of each side warms up allocator and kernels
                times[side].append(seconds)
            print(f"  epoch {epoch} {side}: {seconds:.2f} s", flush=True)
    return {side: statistics.median(values) for side, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs per side (after one warm-up each)")
    parser.add_argument("--skip-memory", action="store_true", help="only the timing")
    parser.add_argument("--memory-child", choices=tuple(SIDES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child, device)))
        return
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads; ticket: k=0.5 f=0.5; "
          f"floor: weight-trained GIN; median of {args.repeats} epochs", flush=True)
    seconds = time_sides(device, args.repeats)
    memory = {} if args.skip_memory else {side: measure_memory(side, device) for side in SIDES}
    print(f"{'side':<7} {'epoch s':>8} {'training peak MiB':>18} {'after imports':>14} {'after graph':>12} {'graph build peak':>17}")
    for side in SIDES:
        row = {key: float("nan") for key in ("peak_mib", "imports_mib", "graph_mib", "build_peak_mib")} | memory.get(side, {})
        print(f"{side:<7} {seconds[side]:>8.2f} {row['peak_mib']:>18.0f} {row['imports_mib']:>14.0f} {row['graph_mib']:>12.0f} "
              f"{row['build_peak_mib']:>17.0f}")
    ratio_memory = memory["ticket"]["peak_mib"] / memory["floor"]["peak_mib"] if memory else float("nan")
    print(f"ticket / floor: time {seconds['ticket'] / seconds['floor']:.2f}x, peak memory {ratio_memory:.2f}x")


if __name__ == "__main__":
    main()
