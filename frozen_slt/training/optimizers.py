"""The optimizer and the learning-rate schedule of a training recipe (docs/method.md §9)."""

from __future__ import annotations

import torch
from torch import nn

from ..config.experiment import ExperimentConfig
from ..method.layers import masked_layers
from .score_sgd import ScoreSGD


def make_optimizer(config: ExperimentConfig, model: nn.Module) -> torch.optim.Optimizer:
    """SGD or AdamW over ``model``'s trainable parameters (a ticket's scores, or a baseline's weights)."""
    recipe = config.train
    parameters = [p for p in model.parameters() if p.requires_grad]
    if recipe.optimizer == "sgd":
        # fused: one pass per tensor instead of four, bit-identical to the default single-tensor SGD on
        # the CPU (about 2x faster on Conv6's 1.3 M scores, one thread). Not for AdamW: its fused kernel
        # rounds differently. A ticket's scores get ScoreSGD, the same SGD whose step also updates τ (on
        # the CPU in one fused pass per layer with the masking and the threshold's window count).
        if masked_layers(model):
            return ScoreSGD(model, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
        return torch.optim.SGD(parameters, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay,
                               fused=True)
    return torch.optim.AdamW(parameters, lr=recipe.lr, weight_decay=recipe.weight_decay)


def make_scheduler(config: ExperimentConfig, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    """Cosine annealing to 0 over the recipe's epochs, stepped once per epoch, or a constant rate."""
    if config.train.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(config.train.epochs, 1), eta_min=0.0)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)
