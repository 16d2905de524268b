"""The loss and accuracy of a network on its dataset's evaluation splits, as training and re-evaluation compute them."""

from __future__ import annotations

import torch

from ..config.experiment import ExperimentConfig
from ..data.base import EVAL_SPLITS
from ..data.loop import loop_view
from .network import Network


def autocast(network: Network, config: ExperimentConfig):
    """bf16 autocast on CUDA when the recipe asks for it; a no-op context elsewhere."""
    enabled = config.train.bf16 and network.device.type == "cuda"
    return torch.autocast(network.device.type, dtype=torch.bfloat16, enabled=enabled)


@torch.no_grad()
def evaluate_splits(network: Network, data, config: ExperimentConfig, splits: tuple[str, ...] = EVAL_SPLITS) -> dict[str, float]:
    """Mean cross-entropy and top-1 accuracy of the current model on each of ``splits``, in one evaluation.

    ``data`` is an image dataset (evaluated batch by batch, split by split) or a graph (one forward pass
    over the whole graph shared by every split, accuracy by OGB's Evaluator).
    """
    network.model.eval()

    def forward(*inputs: torch.Tensor) -> torch.Tensor:
        with autocast(network, config):
            return network.model(*network.prepare_inputs(inputs))

    return loop_view(data).evaluate(forward, splits, config.train.eval_batch_size)
