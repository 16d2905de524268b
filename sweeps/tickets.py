"""Handing back each trial's ticket file: from its last checkpoint to the sweep's results and MLflow.

A ticket trial writes ``ticket.slt`` (its best-validation epoch, docs/ticket-format.md) into its final
checkpoint, which Ray persists in the sweep's storage, so the driver can read it whichever node ran the
trial. The driver copies it to ``<results>/tickets/<trial id>.slt`` and logs it as the artifact
``ticket/<trial id>.slt`` of the trial's MLflow child run. Both steps are idempotent: the callback does
them when a trial completes, and the end of the sweep does them again for any trial whose completion a
killed driver missed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from trainables.tune_trainable import TICKET_FILE

#: Tag on a child run once its ticket file is logged: the path of the local copy.
TICKET_TAG = "ticket_file"
ARTIFACT_DIR = "ticket"


def ticket_path(tickets_dir: str | Path, trial_id: str) -> Path:
    return Path(tickets_dir) / f"{trial_id}.slt"


def fetch_ticket(checkpoint, destination: Path) -> Path | None:
    """Copy the ticket file of a Ray checkpoint (local or remote storage) to ``destination``; None if it has none."""
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as directory:
        source = Path(directory) / TICKET_FILE
        if not source.is_file():
            return None
        destination.parent.mkdir(parents=True, exist_ok=True)
        temporary = destination.with_name(f".{destination.name}.tmp")
        shutil.copyfile(source, temporary)
        temporary.replace(destination)
    return destination


def hand_back_ticket(client, run_id: str, checkpoint, tickets_dir: str | Path, trial_id: str) -> Path | None:
    """The local copy of a finished trial's ticket (fetched if missing), logged to its child run once."""
    path = ticket_path(tickets_dir, trial_id)
    if not path.is_file() and fetch_ticket(checkpoint, path) is None:
        return None
    if client.get_run(run_id).data.tags.get(TICKET_TAG) != str(path):
        client.log_artifact(run_id, str(path), artifact_path=ARTIFACT_DIR)
        client.set_tag(run_id, TICKET_TAG, str(path))
    return path


def artifact_uri(run_id: str, trial_id: str) -> str:
    """Where MLflow keeps a trial's ticket: ``runs:/<run id>/ticket/<trial id>.slt``."""
    return f"runs:/{run_id}/{ARTIFACT_DIR}/{trial_id}.slt"
