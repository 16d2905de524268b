"""Checkpoint files: verified on load, and never executing code from a file that passes the checksum."""

import pytest

from frozen_slt.checkpoint import DirectoryStore, decode_checkpoint, encode_checkpoint, read_checkpoint, write_checkpoint
from frozen_slt.errors import CorruptCheckpointError
from hostile import CreatesFile


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


def test_store_moves_damaged_checkpoints_aside_never_overwriting_and_keeps_new_ones(tmp_path, caplog):
    store = DirectoryStore(tmp_path)
    for epoch in (1, 2, 3):
        store.save({"epoch": epoch})
    (tmp_path / "epoch_0003.pt").write_bytes(b"damaged")
    (tmp_path / "epoch_0003.pt.corrupt").write_bytes(b"damaged earlier")
    assert store.newest_intact()[0] == {"epoch": 2} and (tmp_path / "epoch_0003.pt").exists()  # read-only
    assert store.load() == {"epoch": 2}
    assert "epoch_0003.pt is not a frozen-slt checkpoint" in caplog.text and "epoch_0003.pt.corrupt.1" in caplog.text
    assert (tmp_path / "epoch_0003.pt.corrupt").read_bytes() == b"damaged earlier"
    assert (tmp_path / "epoch_0003.pt.corrupt.1").read_bytes() == b"damaged"
    store.save({"epoch": 3})
    store.save({"epoch": 4})
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == ["epoch_0003.pt", "epoch_0004.pt"]
