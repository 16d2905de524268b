"""Models by import path, converted (docs/method.md §13): what each parameter becomes, exact totals against the
libraries' own modules, refusals in one line, and the masked weights served like the built-in ones."""

import copy

import pytest
import torch
import torchvision
from helpers import bits, fused_loops
from torch import nn

from frozen_slt import imports
from frozen_slt.config.experiment import ExperimentConfig
from frozen_slt.errors import (
    ImportPathError,
    ModelDatasetMismatchError,
    UnknownNameError,
)
from frozen_slt.fused.route import EAGER, FUSED, FUSED_STEP, route
from frozen_slt.method.initialize import initialize_ticket
from frozen_slt.method.layers import (
    DENSE,
    MASKED,
    MaskedParameter,
    PlainParameter,
    masked_layers,
    weight_layers,
)
from frozen_slt.models import build_model, check_fits, count_weights
from frozen_slt.models.convert import conversion_of
from frozen_slt.training.checkpoint import DirectoryStore
from frozen_slt.training.loop import Reporter, fit
from frozen_slt.training.network import build_network
from frozen_slt.training.optimizers import make_optimizer

VIT = {"patch_size": 4, "num_layers": 2, "num_heads": 2, "hidden_dim": 32, "mlp_dim": 64}
SAGE = {"hidden_channels": 256, "num_layers": 2}


def library_weights(module: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape) of the weights the converter should mask, found in the library's own module by type."""
    from torch_geometric.nn.dense.linear import Linear as GraphLinear

    out = []
    for name, child in module.named_modules():
        prefix = f"{name}." if name else ""
        if isinstance(child, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, GraphLinear)):
            out.append((prefix + "weight", tuple(child.weight.shape)))
        if isinstance(child, nn.MultiheadAttention):
            out.append((prefix + "in_proj_weight", tuple(child.in_proj_weight.shape)))
    return out


def converted_weights(model: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(name, tuple(layer.weight.shape)) for name, layer in weight_layers(model)]


@pytest.mark.parametrize("name, args, shape, classes, plain, total", [
    ("torchvision:resnet18", {}, (3, 32, 32), 10, lambda: torchvision.models.resnet18(num_classes=10), 11_172_032),
    ("torchvision:mobilenet_v3_small", {}, (3, 32, 32), 10, lambda: torchvision.models.mobilenet_v3_small(num_classes=10),
     1_512_072),
    ("torchvision:VisionTransformer", VIT, (3, 8, 8), 10,
     lambda: torchvision.models.VisionTransformer(image_size=8, num_classes=10, **VIT), 18_240),
    ("pyg:GraphSAGE", SAGE, (128,), 40, None, 86_016),
])
def test_the_masked_weights_are_exactly_the_librarys_conv_linear_and_attention_weights(name, args, shape, classes, plain,
                                                                                        total):
    with torch.device("meta"):
        masked = build_model(name, shape, classes, MASKED, args)
    if plain is None:  # GraphSAGE by hand: two SAGEConv layers 128 -> 256 -> 40, each a lin_l and a lin_r
        from torch_geometric.nn.models import GraphSAGE

        plain = lambda: GraphSAGE(128, out_channels=40, **SAGE)  # noqa: E731
        assert total == 2 * 256 * 128 + 2 * 40 * 256
    assert converted_weights(masked) == library_weights(plain())  # names and shapes kept, registration order
    assert count_weights(masked) == total
    with torch.device("meta"):
        assert converted_weights(build_model(name, shape, classes, DENSE, args)) == converted_weights(masked)


def test_every_other_parameter_gets_its_documented_rule():
    with torch.device("meta"):
        model = build_model("torchvision:VisionTransformer", (3, 8, 8), 10, MASKED, VIT)
    rules = {rule.name: rule.rule for rule in conversion_of(model).rules}
    assert rules["class_token"] == rules["encoder.pos_embedding"] == "token"
    assert rules["encoder.layers.encoder_layer_0.ln_1.weight"] == rules["encoder.ln.bias"] == "identity"
    assert rules["encoder.layers.encoder_layer_0.self_attention.in_proj_bias"] == rules["heads.head.bias"] == "zero"
    assert rules["encoder.layers.encoder_layer_0.self_attention.in_proj_weight"] == "masked"
    assert rules["encoder.layers.encoder_layer_0.self_attention.out_proj.weight"] == "masked"
    assert [name for name, _ in model.named_parameters()] == [f"{name}.score" for name, _ in weight_layers(model)]
    norm = model.encoder.ln
    assert norm.weight is None and norm.bias is None and not norm.elementwise_affine


def test_batchnorm_becomes_non_affine_and_keeps_its_running_statistics():
    model = build_model("torchvision:resnet18", (3, 32, 32), 10, MASKED)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(not m.affine and m.weight is None and m.track_running_stats for m in norms)
    assert "bn1.running_mean" in model.state_dict() and "bn1.weight" not in model.state_dict()
    assert torch.equal(model.fc.bias, torch.zeros(10)) and "fc.bias" not in model.state_dict()


def test_only_scores_are_trained_in_a_ticket_and_only_weights_in_the_baseline():
    config = ExperimentConfig.from_settings({"model": "custom_models:every_layer", "dataset": "digits", "device": "cpu"})
    imports.allow("custom_models:every_layer")
    ticket = build_network(config, torch.device("cpu"))
    layers = masked_layers(ticket.model)
    assert len(layers) == 7 and all(isinstance(layer, MaskedParameter) for layer in layers)
    assert {id(p) for p in make_optimizer(config, ticket.model).param_groups[0]["params"]} == {id(l.score) for l in layers}
    baseline = build_network(config.with_overrides({"weight_trained": True}), torch.device("cpu"))
    holders = [m for m in baseline.model.modules() if isinstance(m, PlainParameter)]
    assert [id(p) for p in baseline.model.parameters()] == [id(h.weight) for h in holders] and len(holders) == 7


def test_each_kind_of_layer_is_masked_under_its_own_name_and_drawn_from_the_seeds():
    imports.allow("custom_models:every_layer")
    config = ExperimentConfig.from_settings({"model": "custom_models:every_layer", "dataset": "digits", "device": "cpu",
                                             "sparsity": 0.5, "freeze_ratio": 0.4})
    network = build_network(config, torch.device("cpu"))
    names = [name for name, _ in weight_layers(network.model)]
    assert names == ["conv2.weight", "conv1.weight", "conv3.weight", "attention.in_proj_weight",
                     "attention.out_proj.weight", "graph_linear.weight", "head.weight"]
    for layer in masked_layers(network.model):  # kaiming_uniform (docs/method.md §5)
        fan_in = layer.weight[0].numel()
        assert 0 < layer.weight.abs().max() <= (6 / fan_in) ** 0.5
    again = build_network(config, torch.device("cpu"))
    assert again.fingerprint == network.fingerprint
    assert torch.equal(again.model.position.weight, network.model.position.weight)  # an embedding, drawn N(0, 1)
    assert 0.5 < network.model.position.weight.std() < 1.5 and network.model.class_token.abs().max() < 0.2
    other = build_network(config.with_overrides({"weight_seed": 1}), torch.device("cpu"))
    assert not torch.equal(other.model.class_token, network.model.class_token)
    logits = network.model.eval()(torch.randn(2, 1, 8, 8))
    assert logits.shape == (2, 10)


@pytest.mark.parametrize("name, needle", [
    ("custom_models:with_prelu", "parameter 2.weight of PReLU (shape 1) has no conversion rule"),
    ("custom_models:tied", "parameter 3.weight of Linear (shape 10x10) is the same tensor as 2.weight"),
    ("custom_models:transposed", "parameter 0.weight of ConvTranspose2d (shape 1x4x3x3) has no conversion rule"),
    ("custom_models:lazy", "parameter 1.weight of LazyLinear (shape ?) is not initialised"),
    ("custom_models:not_a_module", "returned list, not a torch.nn.Module"),
    ("custom_models:raises", "raised ValueError: this model cannot be built"),
])
def test_a_model_the_converter_cannot_hold_is_refused_in_one_line(name, needle):
    imports.allow(name)
    with pytest.raises(ImportPathError) as caught:
        check_fits(name, {}, (1, 8, 8), 10, "image")
    assert needle in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("name, args, shape, needle", [
    ("torchvision:resnet18", {}, (1, 8, 8), "takes 3 input channels, the data has 1 (shape 1x8x8); add --input-channels 3"),
    ("torchvision:VisionTransformer", {**VIT, "image_size": 16}, (3, 8, 8),
     "does not run on image inputs of shape 3x8x8 (AssertionError: Wrong image height! Expected 16 but got 8!)"),
    ("custom_models:mlp", {}, (1, 8, 8), "does not run on image inputs of shape 1x8x8"),
    ("custom_models:every_layer", {}, (1, 8, 8), "maps 2 inputs of shape 1x8x8 to an output of shape 2x10, not (2, 7)"),
])
def test_a_model_that_does_not_fit_the_data_is_refused_in_one_line(name, args, shape, needle):
    imports.allow(name)
    classes = 7 if name == "custom_models:every_layer" else 10
    with pytest.raises(ModelDatasetMismatchError) as caught:
        check_fits(name, args if classes == 10 else {"num_classes": 10}, shape, classes, "image")
    assert needle in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("name, args, error, needle", [
    ("torchvision:resnet18", {"weights": "DEFAULT"}, ImportPathError, "weights would load trained weights"),
    ("torchvision:resnet18", {"depth": 3}, ImportPathError, "raised TypeError"),
    ("torchvision:resnet99", {}, ImportPathError, "torchvision.models has no classification model 'resnet99'"),
    ("pyg:GraphSAGE", {}, ImportPathError, "needs hidden_channels, num_layers: give them with --model-arg"),
    ("pyg:GraphSAGE", {"hidden": 3, **SAGE}, ImportPathError, "raised TypeError"),
    ("custom_models:every_layer", {"depth": 3}, ImportPathError, "takes no argument 'depth'; it takes: in_channels"),
    ("nosuch_package.nets:build", {}, ImportPathError, "module nosuch_package.nets cannot be imported (ModuleNotFoundError"),
    ("custom_models:missing", {}, ImportPathError, "custom_models has no attribute 'missing'"),
    ("custom_models:VIT", {}, ImportPathError, "has no attribute 'VIT'"),
    ("lenet", {}, UnknownNameError, "unknown model 'lenet'; valid: conv2"),
    ("a b:c", {}, ImportPathError, "is not an import path"),
])
def test_bad_names_and_arguments_are_refused_in_one_line(name, args, error, needle):
    if ":" in name and not name.startswith(("torchvision", "pyg")):
        imports.allow(name)
    with pytest.raises(error) as caught:
        check_fits(name, args, (3, 32, 32) if "GraphSAGE" not in name else (128,), 10,
                   "image" if "GraphSAGE" not in name else "graph")
    assert needle in str(caught.value) and "\n" not in str(caught.value)


def test_a_path_the_command_line_did_not_name_is_never_imported(tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    monkeypatch.setenv("IMPORT_MARKER", str(marker))
    with pytest.raises(ImportPathError, match="add --model import_marker:build to allow it"):
        build_model("import_marker:build", (1, 8, 8), 10)
    assert not marker.exists()


def test_the_fused_cpu_path_serves_converted_layers():
    imports.allow("custom_models:every_layer")
    config = ExperimentConfig.from_settings({"model": "custom_models:every_layer", "dataset": "digits", "device": "cpu",
                                             "sparsity": 0.5, "freeze_ratio": 0.4})
    network = build_network(config, torch.device("cpu"))
    layers = masked_layers(network.model)
    assert {route(layer).path for layer in layers} == {FUSED}
    optimizer = make_optimizer(config, network.model)
    if optimizer.blocker is None:  # this CPU's SGD kernel rounds in a way the fused step reproduces
        assert {route(layer).path for layer in layers} == {FUSED_STEP}
    with fused_loops(False):
        assert {route(layer).path for layer in layers} == {EAGER}


class _Stop(Reporter):
    def __init__(self, after):
        self.after = after

    def on_epoch(self, metrics):
        if metrics["epoch"] == self.after:
            raise KeyboardInterrupt


@pytest.mark.parametrize("model, args", [("custom_models:every_layer", {}), ("torchvision:VisionTransformer", VIT)])
def test_a_converted_run_gives_the_same_bits_fused_or_eager_and_resumed(tmp_path, model, args):
    imports.allow(model)
    settings = {"model": model, "dataset": "digits", "device": "cpu", "epochs": 2, "sparsity": 0.5, "freeze_ratio": 0.5,
                "input_channels": 3 if model.startswith("torchvision") else None,
                **{f"model_args.{key}": value for key, value in args.items()}}
    config = ExperimentConfig.from_settings(settings)
    with fused_loops(True):
        fused = fit(config, store=DirectoryStore(tmp_path / "fused"))
        with pytest.raises(KeyboardInterrupt):
            fit(config, _Stop(1), DirectoryStore(tmp_path / "resumed"))
        resumed = fit(config, store=DirectoryStore(tmp_path / "resumed"))
    with fused_loops(False):
        eager = fit(config, store=DirectoryStore(tmp_path / "eager"))
    strip = lambda result: [{k: v for k, v in epoch.items() if k != "seconds"} for epoch in result.history]  # noqa: E731
    assert strip(fused) == strip(eager) == strip(resumed)
    states = [DirectoryStore(tmp_path / kind).load()["model"] for kind in ("fused", "eager", "resumed")]
    for key in states[0]:
        assert all(torch.equal(bits(states[0][key]) if states[0][key].is_floating_point() else states[0][key],
                               bits(s[key]) if s[key].is_floating_point() else s[key]) for s in states[1:]), key


def test_a_copy_of_a_converted_model_is_its_own():
    model = build_model("torchvision:resnet18", (3, 32, 32), 10, MASKED)
    initialize_ticket(model, ExperimentConfig().ticket)
    copied = copy.deepcopy(model)
    assert torch.equal(copied.conv1.weight, model.conv1.weight)
    with torch.no_grad():
        copied.get_submodule("conv1")._modules["weight"].score.mul_(-1)
    assert copied.conv1._modules["weight"] is not model.conv1._modules["weight"]


@pytest.mark.parametrize("distribution", ["erk", "epl", "igq", "uniform"])
def test_the_allocation_rules_cover_every_converted_weight(distribution):
    from frozen_slt.method.freezing import plan_freeze_counts
    from frozen_slt.method.initialize import freeze_plan

    config = ExperimentConfig.from_settings({"sparsity": 0.6, "freeze_ratio": 0.5, "distribution": distribution})
    with torch.device("meta"):
        model = build_model("torchvision:VisionTransformer", (3, 8, 8), 10, MASKED, VIT)
    plain = torchvision.models.VisionTransformer(image_size=8, num_classes=10, **VIT)
    expected = plan_freeze_counts(library_weights(plain), config.ticket.prune_ratio, config.ticket.lock_ratio, distribution)
    assert freeze_plan(model, config.ticket) == expected  # the rule over the library's own weights, layer by layer
    assert len(expected) == 10 and sum(c.pruned + c.locked for c in expected) > 0


def test_the_weight_trained_baseline_of_a_converted_model_exports_its_trained_weights(tmp_path):
    from frozen_slt.ticket import dense_module, network_from_checkpoint

    imports.allow("custom_models:every_layer")
    config = ExperimentConfig.from_settings({"model": "custom_models:every_layer", "dataset": "digits", "device": "cpu",
                                             "epochs": 1, "weight_trained": True})
    fit(config, store=DirectoryStore(tmp_path))
    network, _ = network_from_checkpoint(config, DirectoryStore(tmp_path).load(), "last")
    plain = dense_module(config, network)
    assert type(plain).__name__ == "EveryLayer" and plain.conv2.weight.requires_grad
    trained = network.model.conv2._modules["weight"].weight
    assert torch.equal(plain.conv2.weight, trained) and not torch.equal(trained, build_network(config, torch.device("cpu"))
                                                                          .model.conv2._modules["weight"].weight)
    images = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(plain(images), network.model.eval()(images))
