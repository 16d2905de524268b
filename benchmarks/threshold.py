"""Global threshold: the sort-free radix select against the authors' full-sort formulation.

Both run in this process on the same freshly initialised ticket, interleaved (one update of each per
round, the order alternating), so the printed ratio (the median of the per-round ratios, with its
spread) is what to read; absolute times on shared machines are noise. Every row first checks that the
two thresholds are bit-identical.

    python benchmarks/threshold.py                       # CPU, three model sizes
    python benchmarks/threshold.py --device cuda --repeats 50
"""

from __future__ import annotations

import argparse

import torch

from frozen_slt.data import get_dataset_entry
from frozen_slt.initialize import initialize_ticket
from frozen_slt.models import build_model, count_weights
from frozen_slt.specs import TicketSpec
from frozen_slt.threshold import update_thresholds

from paired import interleave, machine, median_ms, paired_ratio

CASES = (("conv6", "cifar10"), ("resnet18", "cifar10"), ("resnet50", "imagenet"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds")
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--freeze-ratio", type=float, default=0.5)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    share = 1 - args.sparsity  # proportional lock share
    ticket = TicketSpec(sparsity=args.sparsity, prune_ratio=args.freeze_ratio * (1 - share),
                        lock_ratio=args.freeze_ratio * share)
    info = machine(device)
    print(f"{info}\nk={args.sparsity} f={args.freeze_ratio}, {args.repeats} rounds after one warm-up each")
    print(f"{'model':<10} {'weights':>12} {'radix ms':>10} {'sort ms':>10}  speed-up (median of paired ratios, quartiles)  identical")
    for name, dataset in CASES:
        entry = get_dataset_entry(dataset)
        model = build_model(name, entry.input_shape, entry.num_classes).to(device)
        initialize_ticket(model, ticket)
        tau_fast, tau_slow = update_thresholds(model, "fast"), update_thresholds(model, "reference")
        identical = torch.equal(tau_fast.view(torch.int32), tau_slow.view(torch.int32))
        if not identical:
            raise SystemExit(f"{name}: radix threshold {tau_fast.item()!r} != reference {tau_slow.item()!r}")
        times = interleave({"fast": lambda: update_thresholds(model, "fast"),
                            "reference": lambda: update_thresholds(model, "reference")}, args.repeats, device)
        ratio = paired_ratio(times["reference"], times["fast"])
        print(f"{name:<10} {count_weights(model):>12,} {median_ms(times['fast']):>10.2f} {median_ms(times['reference']):>10.2f}"
              f"  {ratio.median:6.1f}x ({ratio.low_quartile:.1f}-{ratio.high_quartile:.1f}){'':<27} {identical}")
    print(f"load average after: {machine(device)['load_average']}")


if __name__ == "__main__":
    main()
