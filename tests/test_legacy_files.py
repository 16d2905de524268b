"""Files written by an earlier release (revision 73c3802, tests/data/legacy-73c3802/) still work: an interrupted
run directory resumes to its end, and a ticket file decodes, re-encodes to the same bytes and evaluates."""

import contextlib
import io
import json
import lzma
import tarfile
from pathlib import Path

from frozen_slt.cli import main
from frozen_slt.ticket import decode_ticket, encode_ticket, rebuild_network

LEGACY = Path(__file__).resolve().parent / "data" / "legacy-73c3802"
#: The flags the legacy run was trained with (its config hash, 73def617f41e, must not have moved).
TRAIN = ["train", "--model", "conv2", "--dataset", "digits", "--sparsity", "0.5", "--freeze-ratio", "0.9",
         "--epochs", "2", "--device", "cpu"]


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(args))
    return status, out.getvalue(), err.getvalue()


def test_an_interrupted_run_directory_of_an_earlier_release_resumes_to_its_end(tmp_path):
    with lzma.open(LEGACY / "run.tar.xz") as packed, tarfile.open(fileobj=packed) as archive:
        archive.extractall(tmp_path / "run", filter="data")
    directory = tmp_path / "run"
    written = (directory / "metrics.jsonl").read_text().splitlines()
    status, out, err = run(*TRAIN, "--run-dir", str(directory))
    assert status == 0, err
    assert "run 73def617f41e on cpu: resuming after epoch 1" in err
    lines = (directory / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [0, 1, 2]
    assert [json.loads(line) for line in lines[:2]] == [json.loads(line) for line in written]  # the old epochs kept
    result = json.loads((directory / "result.json").read_text())
    assert result["config_hash"] == "73def617f41e" and result["epochs"] == 2
    status, out, err = run("eval", str(directory))
    assert status == 0 and f"best epoch {result['best_epoch']}:" in out, err


def test_a_ticket_file_of_an_earlier_release_decodes_to_the_same_bytes_and_evaluates():
    blob = (LEGACY / "ticket.slt").read_bytes()
    ticket = decode_ticket(blob, "ticket.slt")
    assert encode_ticket(ticket) == blob  # the format, byte for byte
    assert ticket.config.config_hash() == ticket.config_hash == "73def617f41e"
    network = rebuild_network(ticket)  # refuses weights regenerated differently from the ones it was taken from
    assert network.realised_sparsity() == ticket.realised_sparsity
    status, out, err = run("eval", str(LEGACY / "ticket.slt"))
    assert status == 0 and out.startswith(f"ticket {LEGACY / 'ticket.slt'}, epoch {ticket.epoch} on digits:"), err
