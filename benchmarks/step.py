"""Training step: this project's masked step against the authors' algorithm and against fixed-weight floors.

Four sides train the same architecture on the same batches, in one process, interleaved step by step
(the order rotating every round), after a few untimed warm-up steps each:

* ``project``: :func:`frozen_slt.training.loop.train_step` on a ticket (k = 0.5, f = 0.4, proportional lock
  share), the step ``fit`` runs;
* ``reference``: the same ticket trained by the authors' algorithm (:mod:`reference`): a float ternary
  mask rebuilt with two ``where``s in every forward, a local-sparsity reduction per layer, and after
  every step the ±∞ encoding, a concatenation and a full sort for the threshold;
* ``floor``: the same architecture built with the dense layer kind, holding the same random weights,
  trained as ordinary parameters by the same optimizer and recipe: the cheapest training step of this
  network, the one a masked step is measured against;
* ``fixed``: the dense network with its weights fixed (no weight gradients, no optimizer step), only
  the gradients with respect to each layer's input: a lower bound no method that trains anything can
  reach, printed for reference.

Before any time is reported the project and reference sides must agree bit for bit, at every measured
step, on the fp32 loss, the threshold and every layer's mask (a speed-up that changes the result is
not a speed-up). The table gives median step times and the median of the per-round ratios with their
spread.

    python benchmarks/step.py                            # every CPU case, a few minutes on 2 cores
    python benchmarks/step.py --cases conv6-digits-b32 --rounds 50
    python benchmarks/step.py --device cuda --bf16 --channels-last
    python benchmarks/step.py --smoke                    # tiny: only checks the bit-identity
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from paired import interleave, machine, median_ms, paired_ratio
from reference import install_reference, reference_optimizer, reference_step
from torch.nn import functional as F

from frozen_slt.config.experiment import ExperimentConfig
from frozen_slt.data import load_dataset
from frozen_slt.method.layers import masked_layers
from frozen_slt.training.loop import train_step
from frozen_slt.training.network import Network, build_network
from frozen_slt.training.optimizers import make_optimizer

TICKET = {"sparsity": 0.5, "freeze_ratio": 0.4}  # a frozen source: pruned, locked and free entries


@dataclass(frozen=True)
class Case:
    model: str
    dataset: str
    batch_size: int
    threads: int
    rounds: int
    settings: dict = field(default_factory=dict)


CASES = {
    # The default sweep's trial: Conv6 on digits, batch 32, one thread per trial (two trials share 2 cores).
    "conv6-digits-b32": Case("conv6", "digits", 32, 1, 40, {"lr": 0.05}),
    "conv6-cifar10-b128": Case("conv6", "cifar10", 128, 2, 8),
    "conv6-cifar10-b16": Case("conv6", "cifar10", 16, 2, 30),
    "resnet18-cifar10-b128": Case("resnet18", "cifar10", 128, 2, 4),
}
SMOKE = Case("conv6", "digits", 8, 1, 3, {"lr": 0.05})


def batches(case: Case, device: torch.device, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``count`` training batches: digits' real shuffled batches, or seeded Gaussian images of CIFAR-10's shape."""
    config = ExperimentConfig.from_settings({"model": case.model, "dataset": case.dataset})
    if case.dataset == "digits":
        data, out, epoch = load_dataset("digits", config.data, device), [], 1
        while len(out) < count:
            out += [(x, y) for x, y in data.train_batches(case.batch_size, epoch) if len(y) == case.batch_size]
            epoch += 1
        return out[:count]
    generator = torch.Generator().manual_seed(0)
    shape = (case.batch_size, 3, 32, 32)
    return [(torch.randn(shape, generator=generator).to(device), torch.randint(0, 10, (case.batch_size,), generator=generator).to(device))
            for _ in range(count)]


def side_config(case: Case, device: torch.device, args, **overrides) -> ExperimentConfig:
    return ExperimentConfig.from_settings({
        "model": case.model, "dataset": case.dataset, "batch_size": case.batch_size, "device": device.type,
        "bf16": args.bf16, "channels_last": args.channels_last, **TICKET, **case.settings, **overrides})


class Side:
    """One side of the comparison: a network, its step function, and what it produced at each step."""

    def __init__(self, network: Network, step: Callable, data: list):
        self.network, self.step_function, self.data = network, step, data
        self.losses: list[torch.Tensor] = []
        self.thresholds: list[torch.Tensor] = []

    def __call__(self) -> None:
        inputs, labels = self.data[len(self.losses)]
        self.losses.append(self.step_function(inputs, labels))
        if self.network.masked:
            self.thresholds.append(masked_layers(self.network.model)[0].threshold.clone())


def build_sides(case: Case, device: torch.device, data: list, args) -> dict[str, Side]:
    config = side_config(case, device, args)
    sides = {}
    for name in ("project", "reference"):
        network = build_network(config, device)
        network.model.train()
        if name == "project":
            optimizer = make_optimizer(config, network.model)
            step = lambda x, y, n=network, o=optimizer: train_step(n, o, config, (x,), y)[0]
        else:
            install_reference(network.model)
            optimizer = reference_optimizer(config, network.model)
            step = lambda x, y, n=network, o=optimizer: reference_step(n, o, config, x, y)
        sides[name] = Side(network, step, data)
    floor_config = side_config(case, device, args, weight_trained=True, freeze_ratio=0.0)
    floor = build_network(floor_config, device)
    floor.model.train()
    floor_optimizer = make_optimizer(floor_config, floor.model)
    sides["floor"] = Side(floor, lambda x, y: train_step(floor, floor_optimizer, floor_config, (x,), y)[0], data)
    fixed = build_network(floor_config, device)
    fixed.model.train().requires_grad_(False)
    sides["fixed"] = Side(fixed, lambda x, y: fixed_step(fixed, floor_config, x, y), data)
    return sides


def fixed_step(network: Network, config: ExperimentConfig, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Forward and backward of the dense network with fixed weights: only input gradients, no update."""
    (inputs,) = network.prepare_inputs((inputs.detach().requires_grad_(),))
    with torch.autocast(network.device.type, dtype=torch.bfloat16, enabled=config.train.bf16 and network.device.type == "cuda"):
        loss = F.cross_entropy(network.model(inputs).float(), labels)
    loss.backward()
    return loss.detach()


def check_identical(project: Side, reference: Side, step: int) -> None:
    """Raise unless both sides produced the same fp32 loss, threshold and masks at ``step``."""
    def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
        return torch.equal(a.float().view(torch.int32), b.float().view(torch.int32))

    problems = []
    if not same_bits(project.losses[step], reference.losses[step]):
        problems.append(f"loss {project.losses[step].item()!r} != {reference.losses[step].item()!r}")
    if not same_bits(project.thresholds[step], reference.thresholds[step]):
        problems.append(f"threshold {project.thresholds[step].item()!r} != {reference.thresholds[step].item()!r}")
    for index, (a, b) in enumerate(zip(masked_layers(project.network.model), masked_layers(reference.network.model))):
        if not torch.equal(a.keep_mask(), b.keep_mask()):
            problems.append(f"mask of masked layer {index} differs")
    if problems:
        raise SystemExit(f"step {step}: the project's step changes the result: " + "; ".join(problems))


def run_case(name: str, case: Case, device: torch.device, args) -> dict:
    torch.set_num_threads(case.threads)
    rounds = args.rounds or case.rounds
    data = batches(case, device, args.warmup + rounds)
    sides = build_sides(case, device, data, args)
    for _ in range(args.warmup):
        for side in sides.values():
            side()
    for step in range(args.warmup):
        check_identical(sides["project"], sides["reference"], step)
    times = interleave(sides, rounds, device,
                       after_round=lambda r: check_identical(sides["project"], sides["reference"], args.warmup + r))
    result = {"case": name, "model": case.model, "dataset": case.dataset, "batch_size": case.batch_size,
              "identical_steps": args.warmup + rounds, "machine": machine(device),
              "ms": {side: median_ms(values) for side, values in times.items()}}
    for numerator, denominator in (("project", "floor"), ("reference", "floor"), ("reference", "project"), ("project", "fixed")):
        result[f"{numerator}/{denominator}"] = paired_ratio(times[numerator], times[denominator]).to_dict()
    return result


def report(result: dict) -> str:
    ms, info = result["ms"], result["machine"]
    lines = [f"{result['case']}: {info['threads']} threads, load {info['load_average']}, "
             f"bit-identical loss/threshold/masks over {result['identical_steps']} steps",
             "  median step ms: " + ", ".join(f"{side} {value:.1f}" for side, value in ms.items())]
    for key in ("project/floor", "reference/floor", "reference/project", "project/fixed"):
        ratio = result[key]
        lines.append(f"  {key:<18} {ratio['median']:.3f}x  (quartiles {ratio['q1']:.3f}-{ratio['q3']:.3f}, "
                     f"range {ratio['min']:.3f}-{ratio['max']:.3f}, {ratio['rounds']} rounds)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=list(CASES))
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--rounds", type=int, help="timed rounds per case (default: the case's own)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast on every side (CUDA only)")
    parser.add_argument("--channels-last", action="store_true", help="channels-last on every side (CUDA only)")
    parser.add_argument("--smoke", action="store_true", help="one tiny case: checks the bit-identity only")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False  # the sides must agree
    cases = {"smoke": SMOKE} if args.smoke else {name: CASES[name] for name in args.cases}
    results = []
    for name, case in cases.items():
        results.append(run_case(name, case, device, args))
        print(report(results[-1]), flush=True)
    info = results[0]["machine"]
    print(f"{info['cpu']}, {info['cores']} cores{', ' + info['gpu'] if 'gpu' in info else ''}, torch {info['torch']}, {info['date']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
