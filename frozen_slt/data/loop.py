"""What the training loop asks of a dataset, for image batches and whole graphs alike.

``fit`` sees every dataset as a :class:`LoopData`: a sequence of optimizer steps per epoch, each a
:class:`Step` whose ``inputs`` the model is called with (``model(*inputs)``), and one evaluation that
turns a forward function into the loss and accuracy of each requested split. An image dataset
(:class:`~frozen_slt.data.base.ImageData`) is adapted by :class:`ImageLoop`: one step per mini-batch,
each split evaluated batch by batch. A graph (:class:`~frozen_slt.data.graph.GraphData`) is a
LoopData itself: one step per epoch over the whole graph, and one forward pass shared by all splits.
"""

from __future__ import annotations

from typing import Callable, Iterator, NamedTuple, Protocol, runtime_checkable

import torch
from torch.nn import functional as F

from .base import ImageData

Forward = Callable[..., torch.Tensor]  # forward(*inputs) -> logits, in evaluation mode, without gradients


class Step(NamedTuple):
    """One optimizer step: ``model(*inputs)``, restricted to ``rows`` when given, is scored against ``labels``."""

    inputs: tuple[torch.Tensor, ...]
    labels: torch.Tensor
    rows: torch.Tensor | None = None


def select_rows(logits: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
    """The logits the labels belong to: all of them (a batch of images) or the given rows (graph nodes)."""
    return logits if rows is None else logits[rows]


@runtime_checkable
class LoopData(Protocol):
    """A dataset as the training loop uses it.

    ``train_steps(batch_size, epoch)`` depends only on the dataset's seeds and ``epoch``, never on earlier
    calls, so a run resumed at epoch e sees the steps of an uninterrupted one. ``evaluate(forward,
    splits, batch_size)`` returns ``{split}_loss`` (mean cross-entropy) and ``{split}_accuracy`` for each
    split, in the order given.
    """

    split_sizes: dict[str, int]

    def num_train_steps(self, batch_size: int) -> int: ...

    def train_steps(self, batch_size: int, epoch: int) -> Iterator[Step]: ...

    def evaluate(self, forward: Forward, splits: tuple[str, ...], batch_size: int) -> dict[str, float]: ...


class ImageLoop:
    """An :class:`ImageData` seen as :class:`LoopData`: mini-batches of images, top-1 accuracy counted on the device."""

    def __init__(self, data: ImageData):
        self.data = data
        self.split_sizes = data.split_sizes

    def num_train_steps(self, batch_size: int) -> int:
        return self.data.num_train_batches(batch_size)

    def train_steps(self, batch_size: int, epoch: int) -> Iterator[Step]:
        for images, labels in self.data.train_batches(batch_size, epoch):
            yield Step((images,), labels)

    def evaluate(self, forward: Forward, splits: tuple[str, ...], batch_size: int) -> dict[str, float]:
        metrics: dict[str, float] = {}
        for split in splits:
            loss_sum = torch.zeros((), device=self.data.device)
            correct = torch.zeros((), dtype=torch.int64, device=self.data.device)
            seen = 0
            for images, labels in self.data.eval_batches(split, batch_size):
                logits = forward(images)
                loss_sum += F.cross_entropy(logits.float(), labels, reduction="sum")
                correct += (logits.argmax(1) == labels).sum()
                seen += labels.numel()
            metrics[f"{split}_loss"] = loss_sum.item() / max(seen, 1)
            metrics[f"{split}_accuracy"] = correct.item() / max(seen, 1)
        return metrics


def loop_view(data) -> LoopData:
    """``data`` as the loop uses it: a graph already is a :class:`LoopData`; image data is wrapped."""
    return data if isinstance(data, LoopData) else ImageLoop(data)
