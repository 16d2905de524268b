"""Checkpoints written atomically and verified on load, and the store interface ``fit`` uses.

File layout: a magic line, the SHA-256 of the payload, then the payload (``torch.save`` of a dict of
tensors and plain values). Files are written by :func:`frozen_slt.files.write_atomically` (importable
from here too): a reader sees either the old file or the complete new one.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import pickle
import re
from pathlib import Path
from typing import Any, Protocol

import torch

from .errors import CorruptCheckpointError, WriteFailedError, with_article
from .files import write_atomically

log = logging.getLogger(__name__)

MAGIC = b"frozen-slt checkpoint v1\n"
_NAME = re.compile(r"^epoch_(\d+)\.pt$")


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
    if not isinstance(state, dict):
        raise CorruptCheckpointError(f"{source} holds {with_article(type(state).__name__)}, not a checkpoint's state")
    return state


def _refusal_reason(error: Exception) -> str:
    """The one useful sentence of torch's long weights-only refusal (e.g. ``Unsupported global: GLOBAL os.system ...``)."""
    found = re.search(r"WeightsUnpickler error: ([^\n]*?)(?:\. |\n|$)", str(error))
    return found.group(1) if found else (str(error).splitlines() or ["empty payload"])[0]


def write_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    write_atomically(Path(path), encode_checkpoint(state))


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    return decode_checkpoint(path.read_bytes(), str(path))


class DirectoryStore:
    """Checkpoints ``epoch_NNNN.pt`` in one directory; keeps the newest ``keep`` of them.

    A damaged checkpoint is never deleted: :meth:`load` renames it to ``epoch_NNNN.pt.corrupt`` (the
    retention rule counts only intact names, so a damaged file can never displace a new checkpoint).
    """

    def __init__(self, directory: str | Path, keep: int = 2):
        if keep < 2:
            raise ValueError("keep at least 2 checkpoints, so a corrupted newest one has a fallback")
        self.directory = Path(directory)
        self.keep = keep

    def _epochs(self) -> list[tuple[int, Path]]:
        if not self.directory.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.directory.iterdir() if (m := _NAME.match(p.name))]
        return sorted(found, reverse=True)

    def newest_intact(self) -> tuple[dict[str, Any] | None, list[tuple[Path, CorruptCheckpointError]]]:
        """Read-only: the newest intact checkpoint (None if there is none) and the damaged checkpoints newer
        than it, newest first, each with its error."""
        damaged = []
        for _, path in self._epochs():
            try:
                return read_checkpoint(path), damaged
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
            stale.unlink(missing_ok=True)


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
