"""Checkpoint files: verified on load, and never executing code from a file that passes the checksum."""

import os

import pytest
import torch
from hostile import CreatesFile, EvalCreatesFile, SystemCreatesFile

from frozen_slt.errors import CorruptCheckpointError
from frozen_slt.training.checkpoint import (
    DirectoryStore,
    check_fit_state,
    decode_checkpoint,
    encode_checkpoint,
    read_checkpoint,
    write_checkpoint,
)


def test_round_trip(tmp_path):
    write_checkpoint(tmp_path / "epoch_0001.pt", {"epoch": 1, "history": [{"val_accuracy": 0.5}]})
    assert read_checkpoint(tmp_path / "epoch_0001.pt") == {"epoch": 1, "history": [{"val_accuracy": 0.5}]}


@pytest.mark.parametrize("hostile, name", [(CreatesFile, "io.open"), (EvalCreatesFile, "eval"),
                                           (SystemCreatesFile, "posix.system")])
def test_valid_checksum_with_disallowed_content_is_a_corrupt_checkpoint_and_runs_nothing(tmp_path, hostile, name):
    marker = tmp_path / "marker"
    blob = encode_checkpoint({"epoch": 1, "payload": hostile(marker)})
    with pytest.raises(CorruptCheckpointError, match=r"epoch_0001\.pt holds content a checkpoint may not hold") as caught:
        decode_checkpoint(blob, "epoch_0001.pt")
    message = str(caught.value)
    assert f"a pickled reference to {name}, which may run code" in message and "\n" not in message
    assert "weights_only" not in message  # torch's advice to load the file unsafely is not passed on
    assert not marker.exists()


def fit_state(epoch: int = 1) -> dict:
    """A state with the structure frozen_slt.training.loop.fit checkpoints (config hash "abc", 3 epochs)."""
    model = {"layer.score": torch.zeros(2, 2), "layer.threshold": torch.tensor(-1.0)}
    history = [{"epoch": e, "val_accuracy": 0.5, "test_accuracy": 0.25, "realised_sparsity": 0.5} for e in range(epoch + 1)]
    best = {"epoch": 0, "val_accuracy": 0.5, "test_accuracy": 0.25, "realised_sparsity": 0.5, "model": dict(model)}
    return {"format": 1, "config": {}, "config_hash": "abc", "weights_fingerprint": "f", "epoch": epoch, "model": model,
            "optimizer": {"state": {}, "param_groups": []}, "scheduler": {}, "rng": {"torch": torch.get_rng_state()},
            "history": history, "best": best}


def _without(state, key):
    return {k: v for k, v in state.items() if k != key}


@pytest.mark.parametrize("change, needle", [
    (lambda s: {}, "keys missing"),
    (lambda s: _without(s, "best"), "keys missing: ['best']"),
    (lambda s: {**s, "extra": 1}, "unexpected: ['extra']"),
    (lambda s: {**s, "epoch": "abc"}, "epoch 'abc' is not an integer in [0, 3]"),
    (lambda s: {**s, "epoch": 99}, "epoch 99 is not an integer in [0, 3]"),
    (lambda s: {**s, "epoch": True}, "is not an integer"),
    (lambda s: {**s, "format": 2}, "format 2"),
    (lambda s: {**s, "config_hash": "other"}, "belongs to config 'other'"),
    (lambda s: {**s, "model": {"layer.score": [1.0]}}, "model must be a non-empty table of tensors"),
    (lambda s: {**s, "rng": {}}, "rng must hold"),
    (lambda s: {**s, "optimizer": []}, "optimizer and scheduler"),
    (lambda s: {**s, "history": s["history"][:1]}, "history must list epochs 0 to 1"),
    (lambda s: {**s, "history": [s["history"][0], {**s["history"][1], "epoch": 7}]}, "history entry 1 is not"),
    (lambda s: {**s, "history": [s["history"][0], {**s["history"][1], "val_accuracy": float("nan")}]}, "history entry 1"),
    (lambda s: {**s, "best": {**s["best"], "epoch": 2}}, "best must record an epoch up to"),
    (lambda s: {**s, "best": {**s["best"], "test_accuracy": 0.9}}, "best differs from history entry 0"),
    (lambda s: {**s, "best": {**s["best"], "model": {"layer.score": torch.zeros(3)}}}, "same names and shapes"),
])
def test_a_state_fit_did_not_write_for_this_run_is_refused_in_one_line(change, needle):
    check_fit_state(fit_state(), "abc", 3, "epoch_0001.pt")  # the unchanged state passes
    with pytest.raises(CorruptCheckpointError) as caught:
        check_fit_state(change(fit_state()), "abc", 3, "epoch_0001.pt")
    message = str(caught.value)
    assert message.startswith("epoch_0001.pt is not a checkpoint of this run (") and needle in message, message
    assert "\n" not in message


def test_a_checked_store_treats_a_state_that_fails_like_a_damaged_file(tmp_path, caplog):
    store = DirectoryStore(tmp_path, check=lambda state, source: check_fit_state(state, "abc", 3, source))
    store.save(fit_state(0))
    store.save(fit_state(1))
    write_checkpoint(tmp_path / "epoch_0002.pt", {**fit_state(1), "epoch": 99})  # an intact checksum, a crafted state
    state, damaged = store.newest_intact()
    assert state["epoch"] == 1 and [path.name for path, _ in damaged] == ["epoch_0002.pt"]
    assert (tmp_path / "epoch_0002.pt").exists()  # newest_intact only reads
    assert store.load()["epoch"] == 1
    assert "epoch 99 is not an integer in [0, 3]" in caplog.text
    assert sorted(os.listdir(tmp_path)) == ["epoch_0000.pt", "epoch_0001.pt", "epoch_0002.pt.corrupt"]


def test_a_checkpoint_name_that_is_not_a_regular_file_is_damaged_not_read(tmp_path):
    store = DirectoryStore(tmp_path)
    store.save({"epoch": 1})
    os.mkfifo(tmp_path / "epoch_0002.pt")  # reading it would block
    (tmp_path / "epoch_0003.pt").mkdir()
    state, damaged = store.newest_intact()
    assert state == {"epoch": 1} and all("is not a regular file" in str(error) for _, error in damaged)


def test_an_intact_payload_that_is_not_a_torch_archive_is_corrupt_in_one_line():
    import hashlib
    import io

    buffer = io.BytesIO()
    torch.save({"a": torch.zeros(3)}, buffer)
    payload = buffer.getvalue()[:200]  # a zip archive cut short, under a checksum that matches it
    blob = b"frozen-slt checkpoint v1\n" + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload
    with pytest.raises(CorruptCheckpointError, match=r"^a\.pt holds a payload that is not a readable torch archive$"):
        decode_checkpoint(blob, "a.pt")


def test_a_crafted_value_is_shown_cut_short():
    with pytest.raises(CorruptCheckpointError) as caught:
        check_fit_state({**fit_state(), "epoch": "x" * 10_000}, "abc", 3, "epoch_0001.pt")
    assert len(str(caught.value)) < 200


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
