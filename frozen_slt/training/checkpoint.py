"""Checkpoints written atomically and verified on load, and the store interface ``fit`` uses.

File layout: a magic line, the SHA-256 of the payload, then the payload (``torch.save`` of a dict of
tensors and plain values). Files are written by :func:`frozen_slt.files.write_atomically`: a reader sees
either the old file or the complete new one.

An intact checksum proves only that the file is the one written, not who wrote it: :func:`check_fit_state`
is the one place that checks a state's structure (keys, types, ranges, consistency) against the run it
should belong to, and a store given it treats a state that fails as damaged.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import pickle
import re
from pathlib import Path
from typing import Any, Callable, Protocol

import torch

from ..errors import CorruptCheckpointError, WriteFailedError, with_article
from ..files import write_atomically

log = logging.getLogger(__name__)

MAGIC = b"frozen-slt checkpoint v1\n"
_NAME = re.compile(r"^epoch_(\d+)\.pt$")
#: Version of the state dict that frozen_slt.training.loop.fit checkpoints (its keys: FIT_STATE_KEYS).
CHECKPOINT_FORMAT = 1
FIT_STATE_KEYS = frozenset({"format", "config", "config_hash", "weights_fingerprint", "epoch", "model", "optimizer",
                            "scheduler", "rng", "history", "best"})
_RECORD_KEYS = ("val_accuracy", "test_accuracy", "realised_sparsity")


class CheckpointStore(Protocol):
    """Where ``fit`` keeps its per-epoch state. ``load`` returns the newest intact state, or None."""

    def load(self) -> dict[str, Any] | None: ...

    def save(self, state: dict[str, Any]) -> None: ...


def encode_checkpoint(state: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    return MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload


def decode_checkpoint(blob: bytes, source: str) -> dict[str, Any]:
    """The state in ``blob``, or :class:`CorruptCheckpointError` naming ``source`` and what is wrong."""
    if not blob.startswith(MAGIC):
        raise CorruptCheckpointError(f"{source} is not a frozen-slt checkpoint (bad header)")
    digest, newline, payload = blob[len(MAGIC) :].partition(b"\n")
    if not newline or hashlib.sha256(payload).hexdigest().encode() != digest:
        raise CorruptCheckpointError(f"{source} is corrupted (checksum mismatch: truncated or altered)")
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, EOFError) as error:  # intact bytes, but content the safe loader refuses to build
        raise CorruptCheckpointError(f"{source} holds content a checkpoint may not hold and was not loaded "
                                     f"({_refusal_reason(error)})") from None
    except (RuntimeError, ValueError, TypeError, KeyError, IndexError, AttributeError):
        # intact bytes that torch's archive reader cannot read (a crafted or foreign zip): its messages run long
        raise CorruptCheckpointError(f"{source} holds a payload that is not a readable torch archive") from None
    if not isinstance(state, dict):
        raise CorruptCheckpointError(f"{source} holds {with_article(type(state).__name__)}, not a checkpoint's state")
    return state


def _refusal_reason(error: Exception) -> str:
    """What the safe loader refused, in our words: torch's own text goes on to suggest loading the file
    unsafely (``weights_only=False``), advice that must never reach the user of a file from elsewhere."""
    found = re.search(r"GLOBAL ([\w.]+)", str(error))
    if found:
        return f"a pickled reference to {found.group(1)}, which may run code"
    return "data the safe loader does not build" if isinstance(error, pickle.UnpicklingError) else "a truncated payload"


def write_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    write_atomically(Path(path), encode_checkpoint(state))


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The state in the file at ``path``; CorruptCheckpointError when it is not a readable regular file
    (a FIFO would block the reader) or not an intact checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise CorruptCheckpointError(f"{path} is not a regular file")
    try:
        blob = path.read_bytes()
    except OSError as error:
        raise CorruptCheckpointError(f"{path} cannot be read ({error.strerror or error})") from None
    return decode_checkpoint(blob, str(path))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_fraction(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and 0 <= value <= 1


def _tensors(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())


def _shown(value: Any) -> str:
    """A crafted value as a message shows it: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _top_level_problem(state: dict[str, Any], config_hash: str, epochs: int) -> str | None:
    missing, unexpected = FIT_STATE_KEYS - set(state), set(state) - FIT_STATE_KEYS
    if missing or unexpected:
        return f"keys missing: {sorted(missing)}, unexpected: {_shown(sorted(map(str, unexpected)))}"
    if not _is_int(state["format"]) or state["format"] != CHECKPOINT_FORMAT:
        return f"format {_shown(state['format'])}, this frozen-slt writes {CHECKPOINT_FORMAT}"
    if state["config_hash"] != config_hash:
        return f"it belongs to config {_shown(state['config_hash'])}, not to this run's {config_hash}"
    if not _is_int(state["epoch"]) or not 0 <= state["epoch"] <= epochs:
        return f"epoch {_shown(state['epoch'])} is not an integer in [0, {epochs}] (the run's epochs)"
    if not isinstance(state["weights_fingerprint"], str) or not isinstance(state["config"], dict):
        return "weights_fingerprint must be a string and config a table"
    if not _tensors(state["model"]) or not state["model"]:
        return "model must be a non-empty table of tensors"
    optimizer, rng = state["optimizer"], state["rng"]
    if not (isinstance(optimizer, dict) and isinstance(optimizer.get("state"), dict)
            and isinstance(optimizer.get("param_groups"), list) and isinstance(state["scheduler"], dict)):
        return "optimizer and scheduler must be the state dicts torch writes"
    if not (_tensors(rng) and "torch" in rng and rng["torch"].dtype == torch.uint8):
        return "rng must hold the torch generator's state (a uint8 tensor)"
    return None


def _history_problem(state: dict[str, Any]) -> str | None:
    history, best = state["history"], state["best"]
    if not isinstance(history, list) or len(history) != state["epoch"] + 1:
        return f"history must list epochs 0 to {state['epoch']}"
    for index, entry in enumerate(history):
        if not (isinstance(entry, dict) and _is_int(entry.get("epoch")) and entry["epoch"] == index
                and all(_is_fraction(entry.get(key)) for key in _RECORD_KEYS)):
            return f"history entry {index} is not epoch {index}'s record (epoch, accuracies, realised sparsity)"
    if not (isinstance(best, dict) and set(best) == {"epoch", "model", *_RECORD_KEYS} and _is_int(best["epoch"])
            and 0 <= best["epoch"] <= state["epoch"] and all(_is_fraction(best[key]) for key in _RECORD_KEYS)):
        return "best must record an epoch up to the checkpoint's, its accuracies and realised sparsity, and its model"
    if any(best[key] != history[best["epoch"]][key] for key in _RECORD_KEYS):
        return f"best differs from history entry {best['epoch']}"
    model = state["model"]
    if not _tensors(best["model"]) or {k: v.shape for k, v in best["model"].items()} != {k: v.shape for k, v in model.items()}:
        return "best's model must hold the tensors of the model's state, with the same names and shapes"
    return None


def check_fit_state(state: dict[str, Any], config_hash: str, epochs: int, source: str) -> None:
    """Raise :class:`CorruptCheckpointError` naming ``source`` unless ``state`` has the structure that
    ``frozen_slt.training.loop.fit`` checkpoints for the run of ``config_hash`` trained for ``epochs`` epochs: every
    key, of the right type; ``epoch`` an integer in [0, epochs]; ``history`` one record per epoch up to it;
    ``best`` an epoch of that history, with its model's tensors named and shaped like the model's."""
    problem = _top_level_problem(state, config_hash, epochs) or _history_problem(state)
    if problem:
        raise CorruptCheckpointError(f"{source} is not a checkpoint of this run ({problem})")


class DirectoryStore:
    """Checkpoints ``epoch_NNNN.pt`` in one directory; keeps the newest ``keep`` of them.

    A damaged checkpoint is never deleted: :meth:`load` renames it to ``epoch_NNNN.pt.corrupt`` (the
    retention rule counts only intact names, so a damaged file can never displace a new checkpoint).
    """

    def __init__(self, directory: str | Path, keep: int = 2,
                 check: Callable[[dict[str, Any], str], None] | None = None):
        """``check(state, source)`` (e.g. :func:`check_fit_state` bound to a run) raises CorruptCheckpointError
        for a state that must be treated as damaged."""
        if keep < 2:
            raise ValueError("keep at least 2 checkpoints, so a corrupted newest one has a fallback")
        self.directory = Path(directory)
        self.keep = keep
        self.check = check

    def _epochs(self) -> list[tuple[int, Path]]:
        if not self.directory.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.directory.iterdir() if (m := _NAME.match(p.name))]
        return sorted(found, reverse=True)

    def is_empty(self) -> bool:
        """Whether no checkpoint (intact or damaged) has been written under an epoch's name."""
        return not self._epochs()

    def newest_intact(self) -> tuple[dict[str, Any] | None, list[tuple[Path, CorruptCheckpointError]]]:
        """Read-only: the newest intact checkpoint (None if there is none) and the damaged checkpoints newer
        than it, newest first, each with its error."""
        damaged = []
        for _, path in self._epochs():
            try:
                state = read_checkpoint(path)
                if self.check is not None:
                    self.check(state, str(path))
                return state, damaged
            except CorruptCheckpointError as error:
                damaged.append((path, error))
        return None, damaged

    def load(self) -> dict[str, Any] | None:
        """The newest intact checkpoint, or None. Each damaged one met on the way is moved aside with a warning;
        when none is intact a warning says that the run restarts from scratch."""
        state, damaged = self.newest_intact()
        for path, error in damaged:
            log.warning("%s; moved it aside to %s", error, move_aside(path).name)
        if damaged and state is None:
            log.warning("no intact checkpoint left in %s: the run restarts from scratch", self.directory)
        return state

    def save(self, state: dict[str, Any]) -> None:
        write_checkpoint(self.directory / f"epoch_{state['epoch']:04d}.pt", state)
        for _, stale in self._epochs()[self.keep :]:
            try:
                stale.unlink(missing_ok=True)
            except OSError as error:
                raise WriteFailedError(f"cannot remove old checkpoint {stale}: {error.strerror or error}") from None


def move_aside(path: Path) -> Path:
    """Rename ``path`` to ``<name>.corrupt`` (``.corrupt.1``, ... when taken) and return the new path; never overwrites."""
    target, index = path.with_name(path.name + ".corrupt"), 0
    while target.exists():
        index += 1
        target = path.with_name(f"{path.name}.corrupt.{index}")
    try:
        os.replace(path, target)
    except OSError as error:
        raise WriteFailedError(f"cannot move damaged checkpoint {path} aside to {target.name}: "
                               f"{error.strerror or error}") from None
    return target
