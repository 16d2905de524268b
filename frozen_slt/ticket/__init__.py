"""Compact ticket files (docs/ticket-format.md): a frozen ticket stored as its seeds plus one bit per free weight.

Write: :func:`write_ticket` (from a checkpoint state of :func:`frozen_slt.training.loop.fit`, one call),
:func:`ticket_from_network` and :func:`save_ticket`. Read: :func:`read_ticket`, then
:func:`rebuild_network` (bit-identical effective weights), :func:`evaluate_ticket` or
:func:`dense_module` / :func:`save_dense_module` (a plain PyTorch module that needs nothing of this
package). Nothing here unpickles anything.
"""

from .build import (
    EPOCHS,
    TicketExport,
    check_dataset_fits,
    evaluate_ticket,
    network_from_checkpoint,
    read_ticket,
    rebuild_network,
    save_ticket,
    ticket_bytes,
    ticket_facts,
    ticket_from_checkpoint,
    ticket_from_network,
    write_ticket,
)
from .deploy import (
    DENSE_SUFFIXES,
    check_dense_path,
    dense_module,
    dense_module_bytes,
    save_dense_module,
)
from .fileformat import (
    FORMAT_VERSION,
    FRAMING_BYTES,
    MAGIC,
    VERSIONS,
    Ticket,
    TicketSizes,
    decode_ticket,
    encode_ticket,
    ticket_sizes,
)

__all__ = [
    "DENSE_SUFFIXES", "EPOCHS", "FORMAT_VERSION", "FRAMING_BYTES", "MAGIC", "VERSIONS", "Ticket", "TicketExport", "TicketSizes",
    "check_dataset_fits", "check_dense_path", "decode_ticket", "dense_module", "dense_module_bytes", "encode_ticket",
    "evaluate_ticket", "network_from_checkpoint", "read_ticket", "rebuild_network", "save_dense_module", "save_ticket", "ticket_bytes", "ticket_from_checkpoint",
    "ticket_facts", "ticket_from_network", "ticket_sizes", "write_ticket",
]
