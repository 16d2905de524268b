"""A built network: the model drawn from its seeds, plus what training and checkpoints need to know.

Random weights and freeze patterns are regenerated from seeds on every build, so checkpoints leave them
out (they would double the file) and carry a fingerprint of them instead: resuming refuses a build
whose regenerated weights differ.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import torch
from torch import nn

from ..config.experiment import ExperimentConfig
from ..data import DataFacts, describe_dataset
from ..errors import CorruptCheckpointError, FrozenSLTError
from ..fused.window import ThresholdWindow
from ..method.freezing import LayerFreezeCounts
from ..method.initialize import draw_weights, freeze_plan, initialize_ticket
from ..method.layers import DENSE, MASKED, masked_layers
from ..method.memory import MemoryReport, account_memory, batchnorm_stat_values
from ..models import build_model, check_fits
from ..models.convert import draw_fixed, fingerprint_extra

_REGENERATED = ("weight", "freeze_state")


@dataclass
class Network:
    model: nn.Module
    device: torch.device
    masked: bool
    freeze_counts: list[LayerFreezeCounts]
    fingerprint: str
    facts: DataFacts  # the input shape, class count and input kind the model was built for
    channels_last: bool = False
    window: ThresholdWindow = field(default_factory=ThresholdWindow)  # where the next τ is looked for first

    def prepare_inputs(self, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        """The model's inputs in its memory format: channels-last images when asked for (only ever set for images)."""
        if not self.channels_last:
            return inputs
        return tuple(tensor.contiguous(memory_format=torch.channels_last) for tensor in inputs)

    def memory_report(self) -> MemoryReport:
        return account_memory(self.freeze_counts, batchnorm_stat_values(self.model))

    def regenerated_keys(self) -> set[str]:
        """State-dict keys rebuilt from seeds (masked layers' weights and freeze states)."""
        if not self.masked:
            return set()
        names = {id(module): name for name, module in self.model.named_modules()}
        return {f"{names[id(layer)]}.{key}".lstrip(".") for layer in masked_layers(self.model) for key in _REGENERATED}

    def state_to_save(self) -> dict[str, torch.Tensor]:
        """A CPU copy of the trained state: scores, thresholds, BatchNorm statistics (or weights)."""
        skip = self.regenerated_keys()
        return {key: value.detach().to("cpu", copy=True) for key, value in self.model.state_dict().items() if key not in skip}

    def load_saved_state(self, state: dict[str, torch.Tensor]) -> None:
        """Install a state of :meth:`state_to_save`; CorruptCheckpointError (one line) when it does not fit."""
        try:
            missing, unexpected = self.model.load_state_dict(state, strict=False)
        except RuntimeError as error:  # shapes that differ: torch lists them on several lines
            raise CorruptCheckpointError(f"the saved state does not fit the model ({' '.join(str(error).split())[:300]})") from None
        if set(missing) != self.regenerated_keys() or unexpected:
            raise CorruptCheckpointError(f"the saved state does not fit the model: missing {sorted(missing)[:5]}, "
                                         f"unexpected {sorted(unexpected)[:5]}")

    @torch.no_grad()
    def realised_sparsity(self) -> float:
        """Fraction of zeros in the current mask over all masked weights (0 for a weight-trained model)."""
        if not self.masked:
            return 0.0
        layers = masked_layers(self.model)
        zeros = sum((~layer.keep_mask()).sum() for layer in layers)
        return int(zeros) / sum(layer.weight.numel() for layer in layers)


def weights_fingerprint(model: nn.Module) -> str:
    """SHA-256 over the random weights (and freeze states) as drawn, in registration order; for a converted
    model also over its parameters' names, shapes and rules and its fixed tensors (docs/method.md §13), so a
    model whose code changed is caught."""
    digest = hashlib.sha256()
    for key, value in model.state_dict().items():
        if key.endswith(_REGENERATED):
            digest.update(key.encode())
            digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    for part in fingerprint_extra(model):
        digest.update(part)
    return digest.hexdigest()


def input_facts(config: ExperimentConfig) -> DataFacts:
    """The input shape, class count and input kind of ``config``'s data (read from the data unless built-in)."""
    return describe_dataset(config.dataset, config.dataset_args, config.data)


def check_buildable(config: ExperimentConfig) -> DataFacts:
    """Refuse, in one line and before anything is written, a config whose model does not build or fit its data
    (a model by import path is built and run once; data from files is read once per process). Returns the facts."""
    facts = input_facts(config)
    check_fits(config.model, config.model_args, facts.input_shape, facts.num_classes, facts.input_kind)
    return facts


def build_network(config: ExperimentConfig, device: torch.device, facts: DataFacts | None = None) -> Network:
    """Build the architecture for ``facts`` (default: ``config``'s data), draw its random state from the config's
    seeds on the CPU, move it to ``device``. A model that does not fit the data is refused first, in one line."""
    facts = facts or input_facts(config)
    check_fits(config.model, config.model_args, facts.input_shape, facts.num_classes, facts.input_kind)
    masked = not config.weight_trained
    model = build_model(config.model, facts.input_shape, facts.num_classes, MASKED if masked else DENSE,
                        config.model_args, facts.input_kind)
    if masked:
        counts = initialize_ticket(model, config.ticket)
    else:
        draw_weights(model, config.ticket.weight_init, config.ticket.weight_seed)
        counts = freeze_plan(model, config.ticket)
    draw_fixed(model, config.ticket.weight_seed)  # a converted model's embeddings and tokens; nothing for a built-in
    fingerprint = weights_fingerprint(model)
    channels_last = config.train.channels_last and device.type == "cuda" and facts.input_kind == "image"
    model = model.to(device, memory_format=torch.channels_last) if channels_last else model.to(device)
    return Network(model, device, masked, counts, fingerprint, facts, channels_last)


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without CUDA is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise FrozenSLTError("device 'cuda' was requested but CUDA is not available on this machine; use --device cpu or auto")
    return torch.device(name)
