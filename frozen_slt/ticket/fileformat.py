"""The ticket file, byte by byte (docs/ticket-format.md): encode and decode, nothing else.

Layout of format versions 1 and 2 (all integers little-endian)::

    magic            8 bytes   89 53 4C 54 0D 0A 1A 0A   ("\\x89SLT\\r\\n\\x1a\\n")
    version          u16       1, or 2 for a model or dataset given by import path
    header length    u32       H
    header           H bytes   UTF-8 JSON object (keys: HEADER_KEYS; version 2 adds HEADER_KEYS_V2)
    mask length      u64       M = ⌈free / 8⌉
    mask             M bytes   the final mask over the free positions, 8 bits per byte, most significant first
    BatchNorm length u64       B = 4 · (number of running-statistic values)
    BatchNorm        B bytes   float32 values
    checksum         32 bytes  SHA-256 of every byte before it

Decoding reads JSON, integers and raw float32 only: nothing in a file can make the reader run code.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..config.experiment import ExperimentConfig
from ..data import INPUT_KINDS
from ..errors import FrozenSLTError, TicketFileError
from ..nesting import load_json

MAGIC = b"\x89SLT\r\n\x1a\n"
#: Version 1: built-in models and datasets (their files stay byte for byte what they were). Version 2: the
#: header also records the input kind and where the model's code comes from (docs/ticket-format.md).
FORMAT_VERSION = 2
VERSIONS = (1, 2)
CHECKSUM_BYTES = 32
#: Bytes of the fixed fields: magic, version, three section lengths, checksum.
FRAMING_BYTES = len(MAGIC) + 2 + 4 + 8 + 8 + CHECKSUM_BYTES
HEADER_KEYS = (
    "config", "config_hash", "input_shape", "num_classes", "epoch", "val_accuracy", "test_accuracy",
    "realised_sparsity", "weights_fingerprint", "free_weights", "batchnorm_values",
)
HEADER_KEYS_V2 = HEADER_KEYS + ("input_kind", "model_source")


@dataclass(frozen=True, eq=False)
class Ticket:
    """A frozen ticket as the file holds it.

    ``mask`` is the final binary mask (bool, 1-D) over the free positions only, in layer registration
    order and row-major within a layer; ``batchnorm_stats`` (float32, 1-D) holds, for every BatchNorm
    layer in registration order, its running mean then its running variance. The random weights and the
    freeze pattern are not stored: they are regenerated from ``config.ticket``'s seeds.
    """

    config: ExperimentConfig
    config_hash: str
    input_shape: tuple[int, ...]
    num_classes: int
    epoch: int
    val_accuracy: float
    test_accuracy: float
    realised_sparsity: float
    weights_fingerprint: str
    mask: torch.Tensor
    batchnorm_stats: torch.Tensor
    #: Version 2 only (None in version 1): the input kind, and the model's callable and package versions.
    input_kind: str | None = None
    model_source: dict[str, Any] | None = None

    @property
    def free_weights(self) -> int:
        return int(self.mask.numel())

    @property
    def version(self) -> int:
        return 1 if self.model_source is None else 2

    def header(self) -> dict[str, Any]:
        """The JSON header: the identity fields of the config (what changes the result) and the record."""
        config = self.config.identity_dict()
        config.pop("schema")
        return {
            "config": config, "config_hash": self.config_hash, "input_shape": list(self.input_shape),
            "num_classes": self.num_classes, "epoch": self.epoch, "val_accuracy": self.val_accuracy,
            "test_accuracy": self.test_accuracy, "realised_sparsity": self.realised_sparsity,
            "weights_fingerprint": self.weights_fingerprint, "free_weights": self.free_weights,
            "batchnorm_values": int(self.batchnorm_stats.numel()),
        } | ({} if self.version == 1 else {"input_kind": self.input_kind, "model_source": self.model_source})


@dataclass(frozen=True)
class TicketSizes:
    """Bytes of each part of an encoded ticket file."""

    header: int
    mask: int
    batchnorm: int
    framing: int = FRAMING_BYTES

    @property
    def total(self) -> int:
        return self.header + self.mask + self.batchnorm + self.framing


def _header_bytes(ticket: Ticket) -> bytes:
    return json.dumps(ticket.header(), sort_keys=True, separators=(",", ":")).encode()


def pack_mask(mask: torch.Tensor) -> bytes:
    """Bits of a 1-D bool tensor, 8 per byte, the first bit in the most significant position; zero padding."""
    return np.packbits(mask.detach().cpu().numpy().astype(np.uint8), bitorder="big").tobytes()


def unpack_mask(packed: bytes, count: int) -> torch.Tensor:
    """The inverse of :func:`pack_mask` for ``count`` bits."""
    bits = np.unpackbits(np.frombuffer(packed, dtype=np.uint8), count=count, bitorder="big")
    return torch.from_numpy(bits.astype(np.bool_))


def ticket_sizes(ticket: Ticket) -> TicketSizes:
    return TicketSizes(len(_header_bytes(ticket)), math.ceil(ticket.free_weights / 8), 4 * ticket.batchnorm_stats.numel())


def encode_ticket(ticket: Ticket) -> bytes:
    """The file's bytes (deterministic: the same ticket always gives the same bytes)."""
    header = _header_bytes(ticket)
    mask = pack_mask(ticket.mask)
    stats = ticket.batchnorm_stats.detach().cpu().to(torch.float32).numpy().astype("<f4").tobytes()
    body = b"".join((
        MAGIC, struct.pack("<HI", ticket.version, len(header)), header,
        struct.pack("<Q", len(mask)), mask, struct.pack("<Q", len(stats)), stats,
    ))
    return body + hashlib.sha256(body).digest()


class _Reader:
    """Sequential reads that name the file and refuse to run past the checksummed body."""

    def __init__(self, body: bytes, source: str):
        self.body, self.source, self.position = body, source, 0

    def take(self, count: int, what: str) -> bytes:
        if count > len(self.body) - self.position:
            raise TicketFileError(f"{self.source}: the {what} runs past the end of the file (its lengths do not add up)")
        chunk = self.body[self.position : self.position + count]
        self.position += count
        return chunk

    def integer(self, fmt: str, what: str) -> int:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))[0]


def decode_ticket(blob: bytes, source: str) -> Ticket:
    """The ticket in ``blob``, or :class:`TicketFileError` naming ``source`` and what is wrong with it."""
    if not blob.startswith(MAGIC):
        if len(blob) < len(MAGIC) and MAGIC.startswith(blob):
            raise TicketFileError(f"{source} is truncated ({len(blob)} bytes; a ticket file is at least {FRAMING_BYTES})")
        raise TicketFileError(f"{source} is not a frozen-slt ticket file (wrong magic bytes; expected {MAGIC.hex(' ')})")
    if len(blob) < len(MAGIC) + 2:
        raise TicketFileError(f"{source} is truncated ({len(blob)} bytes; a ticket file is at least {FRAMING_BYTES})")
    version = struct.unpack_from("<H", blob, len(MAGIC))[0]
    if version not in VERSIONS:
        raise TicketFileError(
            f"{source} has ticket format version {version}, which this frozen-slt cannot read (it reads versions "
            f"{' and '.join(map(str, VERSIONS))}); use the frozen-slt release that wrote it"
        )
    if len(blob) < FRAMING_BYTES:
        raise TicketFileError(f"{source} is truncated ({len(blob)} bytes; a ticket file is at least {FRAMING_BYTES})")
    body, checksum = blob[:-CHECKSUM_BYTES], blob[-CHECKSUM_BYTES:]
    if hashlib.sha256(body).digest() != checksum:
        raise TicketFileError(f"{source} is corrupted (SHA-256 checksum mismatch: the file was truncated or altered)")
    reader = _Reader(body, source)
    reader.take(len(MAGIC) + 2, "magic")
    header = _parse_header(reader.take(reader.integer("<I", "header length"), "header"), source, version)
    packed = reader.take(reader.integer("<Q", "mask length"), "mask section")
    stats = reader.take(reader.integer("<Q", "BatchNorm length"), "BatchNorm section")
    if reader.position != len(body):
        raise TicketFileError(f"{source}: {len(body) - reader.position} unexpected bytes before the checksum")
    return _assemble(header, packed, stats, source)


#: The header nests the config's sections of settings in the header object (three levels), and a model's
#: argument may be a list (one more).
HEADER_DEPTH = 4


def _parse_header(raw: bytes, source: str, version: int) -> dict[str, Any]:
    try:
        header = load_json(raw.decode("utf-8"), HEADER_DEPTH, f"{source}: the header",
                           "an object holding the config's sections of settings", TicketFileError)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise TicketFileError(f"{source}: the header is not valid UTF-8 JSON ({error})") from None
    keys = HEADER_KEYS if version == 1 else HEADER_KEYS_V2
    if not isinstance(header, dict) or set(header) != set(keys):
        found = sorted(map(str, header))[:20] if isinstance(header, dict) else type(header).__name__  # a crafted header may hold many
        raise TicketFileError(f"{source}: the header must be an object with keys {', '.join(keys)} (format version "
                              f"{version}); found {found}")
    return header


def _check(condition: bool, source: str, what: str) -> None:
    if not condition:
        raise TicketFileError(f"{source}: header field {what}")


def _is_int(value: Any, minimum: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _assemble(header: dict[str, Any], packed: bytes, stats: bytes, source: str) -> Ticket:
    shape = header["input_shape"]
    _check(isinstance(shape, list) and shape and all(_is_int(s, 1) for s in shape), source,
           "input_shape must be a list of positive integers")
    _check(_is_int(header["num_classes"], 1), source, "num_classes must be a positive integer")
    _check(_is_int(header["epoch"]), source, "epoch must be an integer >= 0")
    for key in ("val_accuracy", "test_accuracy", "realised_sparsity"):
        _check(_is_number(header[key]), source, f"{key} must be a number")
    for key in ("config_hash", "weights_fingerprint"):
        _check(isinstance(header[key], str), source, f"{key} must be a string")
    free, values = header["free_weights"], header["batchnorm_values"]
    _check(_is_int(free) and _is_int(values), source, "free_weights and batchnorm_values must be integers >= 0")
    if len(packed) != math.ceil(free / 8):
        raise TicketFileError(f"{source}: the mask section has {len(packed)} bytes, but {free} free weights need "
                              f"{math.ceil(free / 8)}")
    if free % 8 and packed[-1] & ((1 << (8 - free % 8)) - 1):
        raise TicketFileError(f"{source}: the padding bits after the last mask bit are not zero")
    if len(stats) != 4 * values:
        raise TicketFileError(f"{source}: the BatchNorm section has {len(stats)} bytes, but {values} float32 values "
                              f"need {4 * values}")
    if not isinstance(header["config"], dict):
        raise TicketFileError(f"{source}: header field config must be an object")
    try:
        config = ExperimentConfig.from_dict(header["config"])
    except (FrozenSLTError, TypeError) as error:
        raise TicketFileError(f"{source}: its config cannot be used by this frozen-slt: {error}") from None
    if config.weight_trained:
        raise TicketFileError(f"{source}: its config is a weight-trained run, which has no ticket")
    extra = _version_two(header, source) if "model_source" in header else {}
    if not extra and config.uses_additions:
        raise TicketFileError(f"{source}: a version-1 file holds settings of version 2 (a model or dataset by import "
                              "path, or an optional setting)")
    return Ticket(
        config=config, config_hash=header["config_hash"], input_shape=tuple(shape), num_classes=header["num_classes"],
        epoch=header["epoch"], val_accuracy=float(header["val_accuracy"]), test_accuracy=float(header["test_accuracy"]),
        realised_sparsity=float(header["realised_sparsity"]), weights_fingerprint=header["weights_fingerprint"],
        mask=unpack_mask(packed, free),
        batchnorm_stats=torch.from_numpy(np.frombuffer(stats, dtype="<f4").astype(np.float32)), **extra,
    )


def _version_two(header: dict[str, Any], source: str) -> dict[str, Any]:
    """The fields version 2 adds, checked: they are data (the reader imports nothing they name)."""
    kind, model = header["input_kind"], header["model_source"]
    _check(kind in INPUT_KINDS, source, f"input_kind must be one of {', '.join(INPUT_KINDS)}")
    _check(isinstance(model, dict) and set(model) == {"callable", "packages"}, source,
           "model_source must be an object with keys callable, packages")
    _check(model["callable"] is None or isinstance(model["callable"], str), source, "model_source.callable must be a string")
    packages = model["packages"]
    _check(isinstance(packages, dict) and all(isinstance(k, str) and (v is None or isinstance(v, str))
                                              for k, v in packages.items()), source,
           "model_source.packages must map package names to versions")
    return {"input_kind": kind, "model_source": {"callable": model["callable"], "packages": dict(packages)}}
