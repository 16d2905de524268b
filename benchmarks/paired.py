"""Paired, interleaved timing shared by the benchmarks, and the machine description printed with every table.

Every comparison runs its sides in one process, one step of each side per round, the order rotating
from round to round, so a change in the machine's load hits every side alike. Each round gives one
ratio per pair of sides; the benchmarks report the median of these paired ratios with their spread
(quartiles and extremes), never a ratio of separately taken medians.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Mapping

import torch


def cpu_model() -> str:
    """The CPU's model name (``lscpu``'s "Model name", read from /proc/cpuinfo), or the platform's guess."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine(device: torch.device) -> dict[str, object]:
    """Where a number was taken: CPU model and cores, GPU, torch version, threads, date and load average."""
    info: dict[str, object] = {
        "cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "load_average": load_average(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def load_average() -> str:
    """The 1-, 5- and 15-minute load averages, as ``uptime`` prints them."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleave(sides: Mapping[str, Callable[[], object]], rounds: int, device: torch.device,
               after_round: Callable[[int], None] | None = None) -> dict[str, list[float]]:
    """Seconds of each side's step in each of ``rounds`` rounds, the sides' order rotating every round.

    ``after_round(r)`` runs untimed after round ``r`` (e.g. to check that the sides still agree).
    """
    names = list(sides)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            synchronize(device)
            start = time.perf_counter()
            sides[name]()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
        if after_round is not None:
            after_round(round_index)
    return times


@dataclass(frozen=True)
class PairedRatio:
    """Summary of per-round ratios ``a / b``: median, quartiles and extremes."""

    median: float
    low_quartile: float
    high_quartile: float
    minimum: float
    maximum: float
    rounds: int

    def __str__(self) -> str:
        return (f"{self.median:.3f}x (quartiles {self.low_quartile:.3f}-{self.high_quartile:.3f}, "
                f"range {self.minimum:.3f}-{self.maximum:.3f}, {self.rounds} rounds)")

    def to_dict(self) -> dict[str, float]:
        return {"median": self.median, "q1": self.low_quartile, "q3": self.high_quartile,
                "min": self.minimum, "max": self.maximum, "rounds": self.rounds}


def paired_ratio(numerator: list[float], denominator: list[float]) -> PairedRatio:
    """The median and spread of ``numerator[r] / denominator[r]`` over the rounds r."""
    if len(numerator) != len(denominator) or not numerator:
        raise ValueError("paired ratios need the same, non-zero number of rounds on both sides")
    ratios = sorted(a / b for a, b in zip(numerator, denominator))
    if len(ratios) == 1:
        low = high = ratios[0]
    else:
        low, _, high = statistics.quantiles(ratios, n=4, method="inclusive")
    return PairedRatio(statistics.median(ratios), low, high, ratios[0], ratios[-1], len(ratios))


def median_ms(times: list[float]) -> float:
    return 1e3 * statistics.median(times)
