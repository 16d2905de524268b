"""Ticket files: a digits run exported and evaluated from the file, sizes, bit-exact rebuild, plain modules, bad files.

One Conv-6 run (k = 0.5, f = 0.7, the issue's case) is trained once for the whole module.
"""

import contextlib
import io
import json
import math
import pickle
import re
import struct
import subprocess
import sys

import pytest
import torch
from helpers import rewrite_ticket as rewrite

from frozen_slt.cli import main
from frozen_slt.cli.rundir import RunDirectory
from frozen_slt.config.experiment import ExperimentConfig
from frozen_slt.errors import TicketFileError
from frozen_slt.method import seeding
from frozen_slt.method.layers import DENSE, masked_layers
from frozen_slt.method.threshold import update_thresholds
from frozen_slt.models import build_model
from frozen_slt.ticket import (
    FORMAT_VERSION,
    decode_ticket,
    dense_module,
    encode_ticket,
    evaluate_ticket,
    network_from_checkpoint,
    read_ticket,
    rebuild_network,
    ticket_from_network,
    write_ticket,
)
from frozen_slt.training.network import build_network

TRAIN = ["train", "--model", "conv6", "--dataset", "digits", "--sparsity", "0.5", "--freeze-ratio", "0.7",
         "--epochs", "2", "--device", "cpu"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The trained run: its directory, config, result and the exported ticket file (and export's output)."""
    root = tmp_path_factory.mktemp("ticket")
    assert main([*TRAIN, "--run-dir", str(root / "run")]) == 0
    directory = RunDirectory(root / "run")
    ticket_path = root / "conv6.slt"
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        assert main(["export", str(directory.path), "-o", str(ticket_path)]) == 0
    result = json.loads(directory.result_path.read_text())
    return {"dir": directory, "config": directory.read_config(), "result": result, "ticket": ticket_path,
            "export_output": output.getvalue()}


def number(pattern, text):
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not in:\n{text}"
    return int(match.group(1).replace(",", ""))


def test_export_prints_the_file_sections_and_the_accounting(run):
    out, memory = run["export_output"], run["result"]["memory"]
    free = memory["free_weights"]
    assert 0 < free < memory["total_weights"]
    file_bytes = run["ticket"].stat().st_size
    assert number(r"mask\s+([\d,]+) bytes = ceil\(([\d,]+) free", out) == math.ceil(free / 8)
    assert number(r"ceil\(([\d,]+) free weights / 8\)", out) == free
    assert number(r"file\s+([\d,]+) bytes", out) == file_bytes
    assert number(r"accounting\s+([\d,]+) bits", out) == memory["ticket_bits"] == free + 128
    assert number(r"the file is ([\d,]+) bits", out) == 8 * file_bytes - memory["ticket_bits"]
    assert f"{memory['compression_vs_dense_source']:.2f}x smaller by the accounting" in out
    assert f"{memory['dense_source_ticket_bits'] / (8 * file_bytes):.2f}x by the file" in out
    assert f"{memory['compression_vs_weight_trained']:.1f}x smaller by the accounting" in out
    assert f"epoch {run['result']['best_epoch']} (best validation" in out
    # The file is the accounting's size plus a header of a few hundred bytes: no weights, no scores.
    assert math.ceil(free / 8) < file_bytes < math.ceil(free / 8) + 1024


def test_the_mask_section_is_where_the_format_page_says(run):
    blob = run["ticket"].read_bytes()
    (header_length,) = struct.unpack_from("<I", blob, 10)
    header = json.loads(blob[14 : 14 + header_length])
    (mask_length,) = struct.unpack_from("<Q", blob, 14 + header_length)
    assert mask_length == math.ceil(header["free_weights"] / 8)
    assert header["config"]["ticket"]["weight_seed"] == 0 and header["config_hash"] == run["result"]["config_hash"]
    assert len(blob) == 14 + header_length + 8 + mask_length + 8 + 4 * header["batchnorm_values"] + 32


def test_eval_of_the_file_gives_the_run_accuracy_exactly(run, capsys):
    assert main(["eval", str(run["ticket"]), "--dataset", "digits"]) == 0
    out = capsys.readouterr().out
    result = run["result"]
    recomputed = f"val {100 * result['val_accuracy']:.2f}%  test {100 * result['test_accuracy']:.2f}%"
    assert out.count(recomputed) == 2, out  # recomputed and recorded
    report = evaluate_ticket(read_ticket(run["ticket"]))
    assert (report["val_accuracy"], report["test_accuracy"]) == (result["val_accuracy"], result["test_accuracy"])


def test_rebuilt_effective_weights_are_bit_identical_to_the_training_run(run):
    state = run["dir"].store.load()
    trained, record = network_from_checkpoint(run["config"], state)
    rebuilt = rebuild_network(read_ticket(run["ticket"]))
    assert record["epoch"] == run["result"]["best_epoch"] == read_ticket(run["ticket"]).epoch
    pairs = list(zip(masked_layers(trained.model), masked_layers(rebuilt.model)))
    assert len(pairs) == 9
    for original, copy in pairs:
        assert torch.equal(original.keep_mask(), copy.keep_mask())
        assert torch.equal(original.effective_weight(), copy.effective_weight())


def test_the_library_call_writes_the_same_bytes_and_last_epoch_is_exportable(run, tmp_path):
    state = run["dir"].store.load()
    export = write_ticket(tmp_path / "again.slt", run["config"], state)
    assert (tmp_path / "again.slt").read_bytes() == run["ticket"].read_bytes()
    assert export.sizes.total == run["ticket"].stat().st_size and export.memory.free_weights == export.ticket.free_weights
    last = write_ticket(tmp_path / "last.slt", run["config"], state, which="last")
    assert last.ticket.epoch == state["epoch"] == 2
    assert last.ticket.val_accuracy == run["result"]["history"][-1]["val_accuracy"]


def test_weights_and_freeze_patterns_are_drawn_on_the_cpu(monkeypatch, run):
    devices = []
    original = seeding.make_generator

    def spy(*args, **kwargs):
        generator = original(*args, **kwargs)
        devices.append((args[0], generator.device.type))
        return generator

    monkeypatch.setattr(seeding, "make_generator", spy)
    for module in ("frozen_slt.method.initialize", "frozen_slt.method.freezing"):
        monkeypatch.setattr(f"{module}.make_generator", spy)
    first = build_network(run["config"], torch.device("cpu"))
    assert {purpose for purpose, _ in devices} == {"weights", "scores", "freeze"}
    assert {device for _, device in devices} == {"cpu"}
    assert build_network(run["config"], torch.device("cpu")).fingerprint == first.fingerprint == read_ticket(run["ticket"]).weights_fingerprint


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_cuda_rebuild_has_the_cpu_weights_and_effective_weights(run):
    ticket = read_ticket(run["ticket"])
    on_cpu, on_cuda = rebuild_network(ticket, "cpu"), rebuild_network(ticket, "cuda")
    for a, b in zip(masked_layers(on_cpu.model), masked_layers(on_cuda.model)):
        assert torch.equal(a.weight, b.weight.cpu()) and torch.equal(a.freeze_state, b.freeze_state.cpu())
        assert torch.equal(a.effective_weight(), b.effective_weight().cpu())


def random_state_network(model, dataset, scale):
    """A ticket network with random scores (and BatchNorm statistics), its threshold computed: no training."""
    config = ExperimentConfig.from_settings({"model": model, "dataset": dataset, "sparsity": 0.6, "freeze_ratio": 0.4,
                                             "scale": scale, "weight_seed": 3, "freeze_seed": 4, "device": "cpu"})
    network = build_network(config, torch.device("cpu"))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for layer in masked_layers(network.model):
            layer.score.copy_(torch.randn(layer.score.shape, generator=generator))
        for module in network.model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=generator))
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)
    update_thresholds(network.model)
    return config, network


@pytest.mark.parametrize("model, dataset, scale", [("conv2", "digits", "dynamic"), ("conv2", "digits", "static"),
                                                   ("resnet18", "digits", "none"), ("gin", "ogbn-arxiv", "dynamic")])
def test_round_trip_of_every_scale_and_of_batchnorm_statistics(model, dataset, scale):
    """Through the bytes and back: effective weights, BatchNorm statistics and outputs are identical."""
    config, network = random_state_network(model, dataset, scale)
    ticket = ticket_from_network(config, network, epoch=7, val_accuracy=0.25, test_accuracy=0.5)
    assert (ticket.batchnorm_stats.numel() > 0) == (model != "conv2")
    rebuilt = rebuild_network(decode_ticket(encode_ticket(ticket), "memory"))
    for original, copy in zip(masked_layers(network.model), masked_layers(rebuilt.model)):
        assert torch.equal(original.effective_weight(), copy.effective_weight())
    for key, value in network.model.state_dict().items():
        if key.endswith(("running_mean", "running_var")):
            assert torch.equal(value, rebuilt.model.state_dict()[key]), key
    generator = torch.Generator().manual_seed(2)
    if model == "gin":
        inputs = (torch.randn(6, 128, generator=generator), torch.tensor([[0, 1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 0]]))
    else:
        inputs = (torch.randn(5, 1, 8, 8, generator=generator),)
    expected = network.model.eval()(*inputs)
    assert torch.equal(rebuilt.model.eval()(*inputs), expected)
    assert torch.equal(dense_module(config, rebuilt)(*inputs), expected)


def test_state_the_format_cannot_hold_is_refused_not_dropped():
    config, network = random_state_network("conv2", "digits", "none")
    network.model.extra = torch.nn.Linear(2, 2)  # trained weights outside any masked layer
    with pytest.raises(TicketFileError, match="trained state a ticket file cannot hold.*extra.weight"):
        ticket_from_network(config, network, epoch=0, val_accuracy=0.0, test_accuracy=0.0)
    del network.model.extra
    network.model.register_buffer("offset", torch.ones(3))  # a buffer the architecture does not have
    with pytest.raises(TicketFileError, match="buffers differ.*offset"):
        ticket_from_network(config, network, epoch=0, val_accuracy=0.0, test_accuracy=0.0)


ISOLATED = """
import sys
sys.modules["frozen_slt"] = None  # any import of frozen_slt now fails
import torch
program = torch.export.load(sys.argv[1])
logits = program.module()(torch.load(sys.argv[2], weights_only=True))
assert not any(name.startswith("frozen_slt") for name in sys.modules if sys.modules[name] is not None)
torch.save(logits, sys.argv[3])
"""


def test_dense_module_files_give_the_masked_models_logits(run, tmp_path):
    program, state_file = tmp_path / "conv6.pt2", tmp_path / "conv6.pt"
    assert main(["export", str(run["ticket"]), "--dense-module", str(program)]) == 0
    assert main(["export", str(run["dir"].path), "--dense-module", str(state_file)]) == 0
    masked = rebuild_network(read_ticket(run["ticket"])).model.eval()
    images = torch.randn(11, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    torch.save(images, tmp_path / "images.pt")
    with torch.no_grad():
        expected = masked(images)
        plain = build_model("conv6", (1, 8, 8), 10, DENSE).eval()
        plain.load_state_dict(torch.load(state_file, weights_only=True))
        assert torch.equal(plain(images), expected)  # the same conv2d/linear calls on the same weights
    script = tmp_path / "load.py"
    script.write_text(ISOLATED)
    loaded = subprocess.run([sys.executable, "-I", str(script), str(program), str(tmp_path / "images.pt"), str(tmp_path / "out.pt")],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert loaded.returncode == 0, loaded.stderr
    # The exported graph is lowered to ATen ops (linear may become addmm/mm on a transposed weight), whose
    # summation order may differ from eager's: equal up to float rounding, not bit for bit.
    torch.testing.assert_close(torch.load(tmp_path / "out.pt", weights_only=True), expected, rtol=1e-5, atol=1e-5)
    assert expected.argmax(1).unique().numel() > 1  # not a constant function


def test_loading_never_unpickles(monkeypatch, run):
    def refuse(*args, **kwargs):
        raise AssertionError("unpickling was attempted")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    rebuild_network(read_ticket(run["ticket"]))


def bad_files(blob):
    (length,) = struct.unpack_from("<I", blob, 10)
    header = json.loads(blob[14 : 14 + length])
    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 0x10
    return {
        "truncated": (blob[: len(blob) - 100], "corrupted (SHA-256 checksum mismatch"),
        "truncated to 5 bytes": (blob[:5], "is truncated"),
        "empty": (b"", "is truncated"),
        "flipped bit": (bytes(flipped), "corrupted (SHA-256 checksum mismatch"),
        "wrong magic": (b"PK\x03\x04" + blob[4:], "not a frozen-slt ticket file (wrong magic bytes"),
        "future version": (rewrite(blob, version=FORMAT_VERSION + 1), f"format version {FORMAT_VERSION + 1}, which this frozen-slt cannot read"),
        "free count lies": (rewrite(blob, header={**header, "free_weights": header["free_weights"] + 8}), "the mask section has"),
        "bad config": (rewrite(blob, header={**header, "config": {**header["config"], "model": "lenet"}}), "unknown model 'lenet'"),
        "missing key": (rewrite(blob, header={k: v for k, v in header.items() if k != "epoch"}), "the header must be an object with keys"),
    }


@pytest.mark.parametrize("case", ["truncated", "truncated to 5 bytes", "empty", "flipped bit", "wrong magic", "future version",
                                  "free count lies", "bad config", "missing key"])
def test_bad_files_are_refused_with_one_line_and_status_2(run, tmp_path, capsys, case):
    content, needle = bad_files(run["ticket"].read_bytes())[case]
    path = tmp_path / "bad.slt"
    path.write_bytes(content)
    assert main(["eval", str(path)]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1, err
    assert main(["export", str(path), "--dense-module", str(tmp_path / "x.pt2")]) == 2
    assert needle in capsys.readouterr().err and not (tmp_path / "x.pt2").exists()


def test_a_dataset_of_another_shape_and_other_bad_requests_exit_2(run, tmp_path, capsys):
    cases = [
        (["eval", str(run["ticket"]), "--dataset", "cifar10"], "takes inputs of shape 1x8x8 with 10 classes, but dataset 'cifar10' has shape 3x32x32"),
        (["eval", str(run["ticket"]), "--dataset", "mnist"], "unknown dataset 'mnist'"),
        (["eval", str(tmp_path / "missing.slt")], "does not exist"),
        (["eval", str(run["dir"].path), "--dataset", "cifar10"], "a run directory is evaluated on its own dataset"),
        (["export", str(run["dir"].path)], "nothing to write"),
        (["export", str(run["ticket"]), "-o", str(tmp_path / "copy.slt")], "already a ticket file"),
        (["export", str(run["dir"].path), "--dense-module", str(tmp_path / "m.onnx")], "must end in .pt2"),
        (["export", str(tmp_path), "-o", str(tmp_path / "t.slt")], "is not a run directory"),
    ]
    for args, needle in cases:
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1, (args, err)
    assert not list(tmp_path.iterdir())


def test_a_weight_trained_run_has_no_ticket_but_exports_its_dense_module(tmp_path, capsys):
    run_dir = tmp_path / "baseline"
    assert main(["train", "--model", "conv2", "--dataset", "digits", "--weight-trained", "--epochs", "1", "--device", "cpu",
                 "--run-dir", str(run_dir)]) == 0
    capsys.readouterr()
    assert main(["export", str(run_dir), "-o", str(tmp_path / "t.slt")]) == 2
    err = capsys.readouterr().err
    assert "is weight-trained: it has no ticket" in err and len(err.strip().splitlines()) == 1
    assert main(["export", str(run_dir), "--dense-module", str(tmp_path / "plain.pt")]) == 0
    directory = RunDirectory(run_dir)
    trained, _ = network_from_checkpoint(directory.read_config(), directory.store.load())
    saved = torch.load(tmp_path / "plain.pt", weights_only=True)
    assert saved.keys() == trained.model.state_dict().keys()
    assert all(torch.equal(saved[key], value) for key, value in trained.model.state_dict().items())
