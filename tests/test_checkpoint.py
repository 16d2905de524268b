"""Checkpoint files: verified on load, and never executing code from a file that passes the checksum."""

import pytest

from frozen_slt.checkpoint import decode_checkpoint, encode_checkpoint, read_checkpoint, write_checkpoint
from frozen_slt.errors import CorruptCheckpointError


class CreatesFile:
    """Pickles as a call to ``open(path, "w")``: loading it with a plain unpickler would create ``path``."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return open, (str(self.path), "w")


def test_round_trip(tmp_path):
    write_checkpoint(tmp_path / "epoch_0001.pt", {"epoch": 1, "history": [{"val_accuracy": 0.5}]})
    assert read_checkpoint(tmp_path / "epoch_0001.pt") == {"epoch": 1, "history": [{"val_accuracy": 0.5}]}


def test_valid_checksum_with_disallowed_content_is_a_corrupt_checkpoint_and_runs_nothing(tmp_path):
    marker = tmp_path / "marker"
    blob = encode_checkpoint({"epoch": 1, "payload": CreatesFile(marker)})
    with pytest.raises(CorruptCheckpointError, match=r"epoch_0001\.pt holds content a checkpoint may not hold") as caught:
        decode_checkpoint(blob, "epoch_0001.pt")
    assert "Unsupported global" in str(caught.value) and "\n" not in str(caught.value)
    assert not marker.exists()


@pytest.mark.parametrize("state", [[1, 2], "text"])
def test_a_payload_that_is_not_a_state_dict_is_corrupt(state):
    with pytest.raises(CorruptCheckpointError, match="not a checkpoint's state"):
        decode_checkpoint(encode_checkpoint(state), "epoch_0001.pt")


def test_truncated_and_foreign_files_are_corrupt():
    blob = encode_checkpoint({"epoch": 1})
    with pytest.raises(CorruptCheckpointError, match="checksum mismatch"):
        decode_checkpoint(blob[:-10], "a.pt")
    with pytest.raises(CorruptCheckpointError, match="bad header"):
        decode_checkpoint(b"PK\x03\x04" + blob, "a.pt")
