"""Models by import path through the command line (docs/method.md §13): plan's totals and rules, bad input in one
line with nothing written, who may name code, and tickets that know their model (version 2) in a fresh process."""

import contextlib
import io
import json
import os
import sys
from pathlib import Path

import pytest
import torch
import torchvision
from helpers import rewrite_ticket, ticket_header
from hostile import REPOSITORY, assert_one_line_error, frozen_slt, listing

from frozen_slt import imports
from frozen_slt.cli import main
from frozen_slt.config.experiment import ExperimentConfig
from frozen_slt.errors import TicketFileError
from frozen_slt.ticket import dense_module, read_ticket, rebuild_network

TESTS = Path(__file__).resolve().parent
ENV = {"PYTHONPATH": os.pathsep.join([str(REPOSITORY), str(TESTS)])}  # custom_models and import_marker importable
VIT = ["--model", "torchvision:VisionTransformer", "--model-arg", "patch_size=4", "--model-arg", "num_layers=1",
       "--model-arg", "num_heads=2", "--model-arg", "hidden_dim=16", "--model-arg", "mlp_dim=32"]


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(args))
    return status, out.getvalue(), err.getvalue()


def plan_json(*args):
    status, out, err = run("plan", *args, "--json")
    assert status == 0, err
    return json.loads(out)


def test_plan_counts_exactly_torchvisions_resnet18_weights_for_ten_classes():
    report = plan_json("--model", "torchvision:resnet18", "--dataset", "cifar10", "--freeze-ratio", "0.7")
    plain = torchvision.models.resnet18(num_classes=10)
    expected = [(f"{name}.weight", list(m.weight.shape)) for name, m in plain.named_modules()
                if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert [(layer["name"], layer["shape"]) for layer in report["layers"]] == expected
    assert report["total_weights"] == 11_172_032 == sum(layer["weights"] for layer in report["layers"])
    rules = {p["name"]: p["rule"] for p in report["parameters"]}
    assert rules["fc.bias"] == "zero" and rules["bn1.weight"] == rules["layer4.1.bn2.bias"] == "identity"
    assert len(rules) == 1 + 2 * 20  # fc's bias and the 20 BatchNorms' weight and bias
    assert report["input_shape"] == [3, 32, 32] and report["num_classes"] == 10


def test_plan_of_the_studys_other_models():
    vit = plan_json(*VIT, "--dataset", "digits", "--input-channels", "3")  # image_size 8 filled in from the data
    assert vit["total_weights"] == 16 * 3 * 4 * 4 + 3 * 16 * 16 + 16 * 16 + 2 * 16 * 32 + 10 * 16
    assert {p["rule"] for p in vit["parameters"]} == {"zero", "identity", "token"}
    sage = plan_json("--model", "pyg:GraphSAGE", "--model-arg", "hidden_channels=256", "--model-arg", "num_layers=2",
                     "--dataset", "synthetic-arxiv")
    assert sage["total_weights"] == 2 * 256 * 128 + 2 * 40 * 256 and sage["distribution"] == "epl"
    small = plan_json("--model", "torchvision:mobilenet_v3_small", "--input-shape", "3,32,32", "--num-classes", "10")
    assert small["total_weights"] == 1_512_072 and small["dataset"] is None


def test_plans_table_lists_the_other_parameters_by_rule_and_module():
    status, out, _ = run("plan", *VIT, "--dataset", "digits", "--input-channels", "3")
    assert status == 0
    assert "token or positional embedding drawn N(0, 0.02²) from the weight seed, frozen: 2 parameters" in out
    assert "    encoder.layers.encoder_layer_0.ln_1  weight, bias  16  (LayerNorm)" in out
    assert "encoder.layers.encoder_layer_0.self_attention.in_proj_weight" in out.split("other parameters")[0]


@pytest.mark.parametrize("args, needle", [
    (["--model", "nosuch.nets:build"], "module nosuch.nets cannot be imported"),  # named on the command line: imported
    (["--model", "custom_models:not_a_module"], "returned list, not a torch.nn.Module"),
    (["--model", "custom_models:every_layer", "--model-arg", "depth=3"], "takes no argument 'depth'"),
    (["--model", "torchvision:resnet18"], "takes 3 input channels, the data has 1 (shape 1x8x8); add --input-channels 3"),
    (["--model", "pyg:GraphSAGE", "--dataset", "synthetic-arxiv"], "needs hidden_channels, num_layers"),
    (["--model", "conv6", "--model-arg", "width=3"], "built-in model 'conv6' takes no arguments"),
    (["--model", "custom_models:every_layer", "--dataset", "custom_models:a_list"], "returned list; it must return a dict"),
    (["--model-arg", "=3"], "--model-arg expects name=value"),
])
def test_bad_model_input_is_one_line_with_status_2_and_no_run_directory(tmp_path, args, needle):
    before = listing(tmp_path)
    done = frozen_slt("train", *args, "--epochs", "1", "--device", "cpu", "--out", str(tmp_path / "runs"), cwd=tmp_path,
                      env=ENV)
    assert_one_line_error(done, 2, needle)
    assert listing(tmp_path) == before


def test_a_config_file_names_a_model_by_import_path_only_with_the_command_line(tmp_path):
    config = tmp_path / "model.toml"
    config.write_text('model = "custom_models:every_layer"\n[model_args]\nwidth = 4\n')
    done = frozen_slt("train", "--config", str(config), "--epochs", "1", "--device", "cpu", "--out", "runs", cwd=tmp_path,
                      env=ENV)
    assert_one_line_error(done, 2, "add --model custom_models:every_layer to allow it")
    assert not (tmp_path / "runs").exists()
    allowed = frozen_slt("train", "--config", str(config), "--model", "custom_models:every_layer", "--epochs", "1",
                         "--device", "cpu", "--out", "runs", cwd=tmp_path, env=ENV)
    assert allowed.returncode == 0, allowed.stderr
    (record,) = [json.loads(path.read_text()) for path in (tmp_path / "runs").glob("*/config.json")]
    assert record["config"]["model_args"] == {"width": 4}


def test_model_arguments_enter_the_hash_and_builtin_configs_keep_theirs():
    builtin = ExperimentConfig.from_settings({"model": "conv2", "dataset": "digits", "sparsity": 0.5, "freeze_ratio": 0.9,
                                              "epochs": 2})
    assert builtin.config_hash() == "73def617f41e"  # the legacy run's (tests/data/legacy-73c3802)
    assert set(builtin.identity_dict()) == {"schema", "model", "dataset", "weight_trained", "ticket", "data", "train"}
    assert "input_channels" not in builtin.to_dict()["data"] and not builtin.uses_additions
    base = {"model": "torchvision:VisionTransformer", "model_args.patch_size": 4, "model_args.num_layers": 1,
            "model_args.num_heads": 2, "model_args.hidden_dim": 16, "model_args.mlp_dim": 32, "dataset": "digits",
            "input_channels": 3}
    one = ExperimentConfig.from_settings(base)
    wider = ExperimentConfig.from_settings({**base, "model_args.hidden_dim": 32})
    grey = ExperimentConfig.from_settings({**base, "input_channels": 4})
    assert len({one.config_hash(), wider.config_hash(), grey.config_hash(), builtin.config_hash()}) == 4
    assert ExperimentConfig.from_dict(one.to_dict()).config_hash() == one.config_hash()


@pytest.fixture(scope="module")
def vit_ticket(tmp_path_factory):
    """A ViT ticket (MultiheadAttention, LayerNorm, tokens) trained one epoch on digits with three channels, exported."""
    root = tmp_path_factory.mktemp("vit")
    status, _, err = run("train", *VIT, "--dataset", "digits", "--input-channels", "3", "--epochs", "1", "--sparsity",
                         "0.5", "--freeze-ratio", "0.5", "--device", "cpu", "--run-dir", str(root / "run"))
    assert status == 0, err
    status, out, err = run("export", str(root / "run"), "-o", str(root / "vit.slt"), "--dense-module", str(root / "vit.pt"))
    assert status == 0, err
    return root


def test_a_ticket_of_a_converted_model_is_version_2_and_records_its_code(vit_ticket):
    blob = (vit_ticket / "vit.slt").read_bytes()
    assert int.from_bytes(blob[8:10], "little") == 2
    header = ticket_header(blob)
    assert header["config"]["model"] == "torchvision:VisionTransformer" and header["config"]["model_args"]["patch_size"] == 4
    assert header["config"]["data"]["input_channels"] == 3 and header["input_kind"] == "image"
    source = header["model_source"]
    assert source["callable"] == "torchvision.models.vision_transformer:VisionTransformer"
    assert set(source["packages"]) == {"torch", "torchvision"}
    assert source["packages"]["torchvision"].split("+")[0] == torchvision.__version__.split("+")[0]


def test_eval_and_dense_export_rebuild_a_converted_ticket_in_a_fresh_process(vit_ticket, tmp_path):
    done = frozen_slt("eval", str(vit_ticket / "vit.slt"), "--device", "cpu", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    recorded = read_ticket(vit_ticket / "vit.slt")
    assert f"val {100 * recorded.val_accuracy:.2f}%  test {100 * recorded.test_accuracy:.2f}%  (recorded" in done.stdout
    exported = frozen_slt("export", str(vit_ticket / "vit.slt"), "--dense-module", str(tmp_path / "vit.pt2"), cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    program = torch.export.load(tmp_path / "vit.pt2").module()
    network = rebuild_network(recorded).model.eval()
    images = torch.randn(3, 3, 8, 8)
    torch.testing.assert_close(program(images), network(images), rtol=1e-5, atol=1e-5)


def test_the_dense_state_dict_loads_into_the_callables_own_module_and_computes_the_same_bits(vit_ticket):
    ticket = read_ticket(vit_ticket / "vit.slt")
    network = rebuild_network(ticket)
    plain = torchvision.models.VisionTransformer(image_size=8, patch_size=4, num_layers=1, num_heads=2, hidden_dim=16,
                                                 mlp_dim=32, num_classes=10)
    plain.load_state_dict(torch.load(vit_ticket / "vit.pt", weights_only=True))  # strict: every name, every shape
    images = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        expected = network.model.eval()(images)
        assert torch.equal(plain.eval()(images), expected)
        assert torch.equal(dense_module(ticket.config, network)(images), expected)
    assert torch.equal(plain.class_token, network.model.class_token) and torch.all(plain.encoder.ln.weight == 1)


def test_a_crafted_ticket_naming_os_system_is_refused_and_runs_nothing(vit_ticket, tmp_path):
    marker = tmp_path / "ran"
    header = ticket_header((vit_ticket / "vit.slt").read_bytes())
    header["config"].update(model="os:system", model_args={"command": f"touch {marker}"})
    crafted = tmp_path / "crafted.slt"
    crafted.write_bytes(rewrite_ticket((vit_ticket / "vit.slt").read_bytes(), header=header))
    for command in (["eval", str(crafted), "--device", "cpu"], ["export", str(crafted), "--dense-module", str(tmp_path / "out.pt")]):
        done = frozen_slt(*command, cwd=tmp_path)
        line = assert_one_line_error(done, 2, "model 'os:system' is code that the command line did not name")
        assert line.endswith("add --model os:system to allow it")
    assert not marker.exists() and not (tmp_path / "out.pt").exists()


def test_reading_a_ticket_imports_no_module_it_names(vit_ticket, tmp_path):
    marker = tmp_path / "imported"
    header = ticket_header((vit_ticket / "vit.slt").read_bytes())
    header["config"].update(model="import_marker:build", model_args={})
    crafted = tmp_path / "crafted.slt"
    crafted.write_bytes(rewrite_ticket((vit_ticket / "vit.slt").read_bytes(), header=header))
    done = frozen_slt("eval", str(crafted), "--device", "cpu", cwd=tmp_path, env={**ENV, "IMPORT_MARKER": str(marker)})
    assert_one_line_error(done, 2, "add --model import_marker:build to allow it")
    assert not marker.exists()
    named = frozen_slt("eval", str(crafted), "--model", "import_marker:build", "--device", "cpu", cwd=tmp_path,
                       env={**ENV, "IMPORT_MARKER": str(marker)})
    assert marker.exists()  # named on the command line: imported (and then refused, as its weights differ)
    assert_one_line_error(named, 2, "the random weights regenerated")
    other = frozen_slt("eval", str(crafted), "--model", "torchvision:resnet18", cwd=tmp_path)
    assert_one_line_error(other, 2, "the ticket holds model 'import_marker:build', and --model names 'torchvision:resnet18'")


def test_a_model_whose_code_changed_is_caught_by_the_fingerprint(tmp_path, monkeypatch):
    import custom_models

    imports.allow("custom_models:every_layer")
    status, _, err = run("train", "--model", "custom_models:every_layer", "--dataset", "digits", "--epochs", "1",
                         "--freeze-ratio", "0.5", "--device", "cpu", "--run-dir", str(tmp_path / "run"))
    assert status == 0, err
    assert run("export", str(tmp_path / "run"), "-o", str(tmp_path / "t.slt"))[0] == 0
    ticket = read_ticket(tmp_path / "t.slt")
    rebuild_network(ticket)  # unchanged code: rebuilt
    original = custom_models.EveryLayer.__init__

    def changed(self, in_channels, num_classes, width=8):
        original(self, in_channels, num_classes, width)
        self.head.bias = None  # the same weights, one parameter less: the code changed

    monkeypatch.setattr(custom_models.EveryLayer, "__init__", changed)
    with pytest.raises(TicketFileError, match="the model's code, or how it is drawn, changed since it was written"):
        rebuild_network(ticket)


def test_a_model_table_in_a_file_points_at_model_args(tmp_path):
    config = tmp_path / "model.toml"
    config.write_text('[model]\nwidth = 4\n')
    status, _, err = run("train", "--config", str(config), "--epochs", "1", "--out", str(tmp_path / "runs"))
    assert status == 2 and "unknown section [model]" in err and "the model's arguments go in [model_args]" in err


def test_a_sweep_file_names_a_model_by_import_path_only_with_the_drivers_flag(tmp_path):
    sys.path.insert(0, str(REPOSITORY))
    from frozen_slt.errors import SweepConfigError
    from sweeps.pareto import build_parser, spec_from_args

    sweep = tmp_path / "mine.toml"
    sweep.write_text('[experiment]\nmodel = "custom_models:every_layer"\ndataset = "digits"\nepochs = 1\n'
                     '[experiment.model_args]\nwidth = 4\n')
    with pytest.raises(SweepConfigError, match="add --model custom_models:every_layer to allow it"):
        spec_from_args(build_parser().parse_args(["--config", str(sweep)]))
    spec = spec_from_args(build_parser().parse_args(["--config", str(sweep), "--model", "custom_models:every_layer"]))
    assert spec.base_config().model_args == {"width": 4}
    assert spec.base_config().identity_dict()["model_args"] == {"width": 4}
