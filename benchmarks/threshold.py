"""Global threshold: the sort-free selection against the authors' full-sort formulation.

On the CPU the fast path has two ways to the same answer (docs/method.md §12): a search in a window
around the previous τ, which a training step takes when τ moved little, and the two-pass radix select.
Both are timed: ``window`` updates τ of an unchanged ticket, so the previous τ is the answer (the best
case; in training the window holds a few hundred candidates instead of one), and ``radix`` resets τ
first, so the window is skipped. ``--eager`` times PyTorch's operators instead (the radix select as it
runs where numba is missing).

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
from paired import interleave, machine, median_ms, paired_ratio
from reference import reference_update

from frozen_slt.config.specs import TicketSpec
from frozen_slt.data import get_dataset_entry
from frozen_slt.fused.route import set_enabled
from frozen_slt.fused.window import ThresholdWindow
from frozen_slt.method.initialize import initialize_ticket
from frozen_slt.method.layers import masked_layers
from frozen_slt.method.threshold import update_thresholds
from frozen_slt.models import build_model, count_weights

CASES = (("conv6", "cifar10"), ("resnet18", "cifar10"), ("resnet50", "imagenet"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds")
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--freeze-ratio", type=float, default=0.5)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--eager", action="store_true", help="PyTorch operators instead of the fused CPU loops")
    args = parser.parse_args()
    set_enabled(not args.eager)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    share = 1 - args.sparsity  # proportional lock share
    ticket = TicketSpec(sparsity=args.sparsity, prune_ratio=args.freeze_ratio * (1 - share),
                        lock_ratio=args.freeze_ratio * share)
    info = machine(device)
    print(f"{info}\nk={args.sparsity} f={args.freeze_ratio}, {args.repeats} rounds after one warm-up each")
    if args.eager:
        print("eager operators: there is no window search, so both fast columns time the radix select")
    print(f"{'model':<10} {'weights':>12} {'window ms':>10} {'radix ms':>10} {'sort ms':>10}  "
          f"sort / window  sort / radix  (medians of paired ratios, quartiles)  identical")
    for name, dataset in CASES:
        entry = get_dataset_entry(dataset)
        model = build_model(name, entry.input_shape, entry.num_classes).to(device)
        initialize_ticket(model, ticket)
        layers, window = masked_layers(model), ThresholdWindow()

        def radix():
            for layer in layers:
                layer.threshold.fill_(-1.0)  # no previous τ: the window is skipped
            return update_thresholds(model, window)

        tau_slow = reference_update(model)
        for tau_fast in (radix(), update_thresholds(model, window)):
            if not torch.equal(tau_fast.view(torch.int32), tau_slow.view(torch.int32)):
                raise SystemExit(f"{name}: fast threshold {tau_fast.item()!r} != reference {tau_slow.item()!r}")
        times = interleave({"window": lambda: update_thresholds(model, window), "radix": radix,
                            "reference": lambda: reference_update(model)}, args.repeats, device)
        window, by_radix = paired_ratio(times["reference"], times["window"]), paired_ratio(times["reference"], times["radix"])
        print(f"{name:<10} {count_weights(model):>12,} {median_ms(times['window']):>10.2f} {median_ms(times['radix']):>10.2f} "
              f"{median_ms(times['reference']):>10.2f}  {window.median:6.1f}x ({window.low_quartile:.1f}-"
              f"{window.high_quartile:.1f})  {by_radix.median:6.1f}x ({by_radix.low_quartile:.1f}-{by_radix.high_quartile:.1f})"
              f"{'':<22} True")
    print(f"load average after: {machine(device)['load_average']}")


if __name__ == "__main__":
    main()
