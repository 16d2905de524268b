"""Architectures: exact masked-weight totals (docs/method.md §8), one definition for both layer kinds, fit checks."""

import pytest
import torch
from torch import nn

from frozen_slt.method.layers import DENSE, MASKED, weight_layers
from frozen_slt.models import (
    MODELS,
    ModelDatasetMismatchError,
    build_model,
    check_model_fits,
    count_weights,
)
from frozen_slt.registry import UnknownNameError

TOTALS = [
    ("conv2", (3, 32, 32), 10, 4_300_992),
    ("conv4", (3, 32, 32), 10, 2_425_024),
    ("conv6", (3, 32, 32), 10, 2_261_184),
    ("conv8", (3, 32, 32), 10, 5_275_840),
    ("resnet18", (3, 32, 32), 10, 11_164_352),
    ("resnet50", (3, 224, 224), 1000, 25_502_912),
    ("gin", (128,), 40, 378_280),
]


def resnet34_cifar_by_hand():
    stem = 3 * 64 * 9
    total, channels = stem, 64
    for width, depth in zip((64, 128, 256, 512), (3, 4, 6, 3)):
        for index in range(depth):
            total += channels * width * 9 + width * width * 9
            if channels != width:
                total += channels * width  # 1x1 shortcut
            channels = width
    return total + 512 * 10


def build_on_meta(name, shape, classes, kind):
    with torch.device("meta"):
        return build_model(name, shape, classes, kind)


@pytest.mark.parametrize("name, shape, classes, total", TOTALS + [("resnet34", (3, 32, 32), 10, resnet34_cifar_by_hand())])
def test_exact_totals_for_both_kinds(name, shape, classes, total):
    masked, dense = build_on_meta(name, shape, classes, MASKED), build_on_meta(name, shape, classes, DENSE)
    assert count_weights(masked) == total == count_weights(dense)
    assert [(n, tuple(m.weight.shape)) for n, m in weight_layers(masked)] == [
        (n, tuple(m.weight.shape)) for n, m in weight_layers(dense)
    ]


def test_every_registered_model_is_covered():
    assert set(MODELS) == {"conv2", "conv4", "conv6", "conv8", "resnet18", "resnet34", "resnet18-imagenet",
                           "resnet34-imagenet", "resnet50", "gin"}
    for name in ("resnet18-imagenet", "resnet34-imagenet"):
        assert count_weights(build_on_meta(name, (3, 224, 224), 1000, DENSE)) > 0


def test_conv4_on_digits_by_hand():
    # 1x8x8: convs 1->64->64 (pool: 4x4) ->128->128 (pool: 2x2); flatten 128*2*2 = 512.
    expected = 1 * 64 * 9 + 64 * 64 * 9 + 64 * 128 * 9 + 128 * 128 * 9 + 512 * 256 + 256 * 256 + 256 * 10
    assert count_weights(build_model("conv4", (1, 8, 8), 10, DENSE)) == expected


@pytest.mark.parametrize("name, shape", [("conv6", (2, 1, 8, 8)), ("resnet18", (2, 3, 32, 32)), ("resnet18-imagenet", (1, 3, 64, 64))])
def test_forward_shapes(name, shape):
    model = build_model(name, shape[1:], 7, DENSE)
    assert model(torch.randn(shape)).shape == (shape[0], 7)


def test_no_bias_no_affine_and_only_weight_or_score_parameters():
    for kind, allowed in ((MASKED, {"score"}), (DENSE, {"weight"})):
        model = build_model("resnet18", (3, 32, 32), 10, kind)
        assert {name.rsplit(".", 1)[-1] for name, _ in model.named_parameters()} == allowed
        norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        assert norms and all(not m.affine and m.track_running_stats for m in norms)


@pytest.mark.parametrize("name, shape, kind, needle", [
    ("resnet50", (1, 8, 8), "image", "at least 32x32"),
    ("conv8", (1, 8, 8), "image", "at least 16x16"),
    ("gin", (3, 32, 32), "image", "needs a graph dataset, got an image dataset"),
    ("conv6", (128,), "graph", "needs an image dataset, got a graph dataset"),
])
def test_models_refuse_inputs_they_do_not_fit(name, shape, kind, needle):
    with pytest.raises(ModelDatasetMismatchError, match=needle) as error:
        check_model_fits(name, shape, kind)
    assert repr(name) in str(error.value)


def test_unknown_model_lists_valid_names():
    with pytest.raises(UnknownNameError, match="unknown model 'vgg'; valid: conv2, conv4"):
        build_model("vgg", (3, 32, 32), 10)


def test_gin_first_layer_is_mean_aggregation_plus_self():
    model = build_model("gin", (3,), 2, DENSE).eval()
    x = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0], [3.0, 3.0, 3.0], [5.0, -1.0, 0.0]])
    edge_index = torch.tensor([[1, 2, 0], [0, 0, 1]])  # node 0 hears 1 and 2, node 1 hears 0; 2 and 3 hear nobody
    first = model.convs[0]
    got = first(x, edge_index)
    aggregated = torch.stack([x[0] + (x[1] + x[2]) / 2, x[1] + x[0], x[2], x[3]])
    torch.testing.assert_close(got, aggregated @ first.nn.weight.T)
    assert model(x, edge_index).shape == (4, 2)
