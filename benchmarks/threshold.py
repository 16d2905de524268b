"""Global threshold: the sort-free radix select against the authors' full-sort formulation.

Both run in this process on the same freshly initialised ticket, so the printed ratio is what to read;
absolute times on shared machines are noise. Every row also checks that the two thresholds are
bit-identical.

    python benchmarks/threshold.py                       # CPU, three model sizes
    python benchmarks/threshold.py --device cuda --repeats 50
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from frozen_slt.specs import TicketSpec
from frozen_slt.data import get_dataset_entry
from frozen_slt.initialize import initialize_ticket
from frozen_slt.models import build_model, count_weights
from frozen_slt.threshold import update_thresholds

CASES = (("conv6", "cifar10"), ("resnet18", "cifar10"), ("resnet50", "imagenet"))


def timed(model: torch.nn.Module, method: str, device: torch.device, repeats: int) -> tuple[float, torch.Tensor]:
    """Median seconds of one threshold update, and the threshold."""
    tau = update_thresholds(model, method)  # warm-up (allocator, kernels)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        tau = update_thresholds(model, method)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times), tau


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--freeze-ratio", type=float, default=0.5)
    args = parser.parse_args()
    device = torch.device(args.device)
    share = 1 - args.sparsity  # proportional lock share
    ticket = TicketSpec(sparsity=args.sparsity, prune_ratio=args.freeze_ratio * (1 - share),
                        lock_ratio=args.freeze_ratio * share)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"k={args.sparsity} f={args.freeze_ratio}, median of {args.repeats}")
    print(f"{'model':<10} {'weights':>12} {'radix ms':>10} {'sort ms':>10} {'speed-up':>9}  identical")
    for name, dataset in CASES:
        entry = get_dataset_entry(dataset)
        model = build_model(name, entry.input_shape, entry.num_classes).to(device)
        initialize_ticket(model, ticket)
        fast, tau_fast = timed(model, "fast", device, args.repeats)
        slow, tau_slow = timed(model, "reference", device, args.repeats)
        identical = torch.equal(tau_fast.view(torch.int32), tau_slow.view(torch.int32))
        print(f"{name:<10} {count_weights(model):>12,} {fast * 1e3:>10.2f} {slow * 1e3:>10.2f} "
              f"{slow / fast:>8.1f}x  {identical}")
        if not identical:
            raise SystemExit(f"{name}: radix threshold {tau_fast.item()!r} != reference {tau_slow.item()!r}")


if __name__ == "__main__":
    main()
