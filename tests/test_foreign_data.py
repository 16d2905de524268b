"""Datasets by import path or library class (docs/method.md §13): tiny files in torchvision's and PyG's real on-disk
formats read by the libraries' own classes, the callable protocol, repeated channels, and what is refused."""

import os
import pickle
import re

import pytest
import torch
from fake_datasets import (
    PLANETOID_CLASSES,
    PLANETOID_FEATURES,
    PLANETOID_TEST,
    PLANETOID_TRAIN,
    write_fake_fashion_mnist,
    write_fake_planetoid,
)
from hostile import SystemCreatesFile

from frozen_slt import imports
from frozen_slt.config.experiment import ExperimentConfig
from frozen_slt.config.specs import DataSpec
from frozen_slt.data import describe_dataset, load_dataset
from frozen_slt.errors import (
    ConfigError,
    DatasetError,
    ImportPathError,
    UnknownNameError,
)

CPU = torch.device("cpu")


def test_fashion_mnist_is_read_by_torchvisions_class_with_its_shape_and_classes_from_the_files(tmp_path):
    write_fake_fashion_mnist(tmp_path, train=40, test=20)
    spec = DataSpec(data_dir=str(tmp_path))
    for name in ("torchvision.datasets:FashionMNIST", "torchvision:FashionMNIST"):
        facts = describe_dataset(name, {}, spec)
        assert (facts.input_shape, facts.num_classes, facts.input_kind) == ((1, 28, 28), 10, "image")
    data = load_dataset("torchvision.datasets:FashionMNIST", spec, CPU)
    assert data.split_sizes == {"train": 32, "val": 8, "test": 20}  # val: 20 % of train, by the split seed
    images, labels = next(data.eval_batches("test", 20))
    raw = images * data.std.view(1, 1, 1, 1) + data.mean.view(1, 1, 1, 1)  # undo the normalisation
    assert torch.equal(torch.round(raw[:, 0, 0, 0] * 255 / 20).long(), labels)  # each image still carries its label
    other = load_dataset("torchvision.datasets:FashionMNIST", DataSpec(data_dir=str(tmp_path), split_seed=1), CPU)
    assert not torch.equal(other.splits["val"][1], data.splits["val"][1])


def test_a_grey_dataset_meets_a_three_channel_model_by_repeating_its_channel(tmp_path):
    write_fake_fashion_mnist(tmp_path)
    spec = DataSpec(data_dir=str(tmp_path), input_channels=3)
    assert describe_dataset("torchvision.datasets:FashionMNIST", {}, spec).input_shape == (3, 28, 28)
    batch, _ = next(load_dataset("torchvision.datasets:FashionMNIST", spec, CPU).train_batches(4, 1))
    assert batch.shape == (4, 3, 28, 28) and torch.equal(batch[:, 0], batch[:, 2])
    digits, _ = next(load_dataset("digits", DataSpec(input_channels=3), CPU).eval_batches("val", 5))
    plain, _ = next(load_dataset("digits", DataSpec(), CPU).eval_batches("val", 5))
    assert digits.shape == (5, 3, 8, 8) and all(torch.equal(digits[:, c], plain[:, 0]) for c in range(3))


@pytest.mark.parametrize("settings, error, needle", [
    ({"dataset": "cifar10", "input_channels": 3}, DatasetError, "dataset 'cifar10' has image inputs of shape 3x32x32"),
    ({"model": "gin", "dataset": "synthetic-arxiv", "input_channels": 3}, DatasetError, "has graph inputs"),
    ({"input_channels": 1}, ConfigError, "input_channels must be an integer >= 2"),
    ({"dataset": "digits", "dataset_args": {"name": "x"}}, ConfigError, "built-in dataset 'digits' takes no arguments"),
    ({"dataset": "mnist"}, UnknownNameError, "unknown dataset 'mnist'; valid: cifar10"),
])
def test_bad_data_settings_are_refused_in_one_line(settings, error, needle):
    with pytest.raises(error) as caught:
        ExperimentConfig.from_settings(settings)
    assert needle in str(caught.value) and "\n" not in str(caught.value)


def test_planetoid_is_read_by_pygs_class_and_processed_in_a_private_folder(tmp_path):
    write_fake_planetoid(tmp_path / "data")
    (tmp_path / "data" / "Cora" / "processed").mkdir()
    marker = tmp_path / "unpickled"
    # a processed file someone else left: PyG would load it (and fall back to unpickling anything); it is never read
    torch.save({"payload": SystemCreatesFile(marker)}, tmp_path / "data" / "Cora" / "processed" / "data.pt")
    spec = DataSpec(data_dir=str(tmp_path / "data"))
    facts = describe_dataset("pyg:Planetoid", {"name": "Cora"}, spec)
    assert (facts.input_shape, facts.num_classes, facts.input_kind) == ((PLANETOID_FEATURES,), PLANETOID_CLASSES, "graph")
    graph = load_dataset("pyg:Planetoid", spec, CPU, {"name": "Cora"})
    assert graph.split_sizes == {"train": PLANETOID_TRAIN, "val": 500, "test": PLANETOID_TEST}
    assert not marker.exists()
    assert sorted(os.listdir(tmp_path / "data" / "Cora" / "processed")) == ["data.pt"]  # nothing written in --data-dir


def test_a_raw_file_whose_pickle_would_run_code_is_refused_before_it_runs(tmp_path):
    marker = tmp_path / "ran"
    write_fake_planetoid(tmp_path / "data", name="CiteSeer", graph_payload=pickle.dumps(SystemCreatesFile(marker)))
    with pytest.raises(DatasetError, match="names posix.system, which plain data never contains"):
        describe_dataset("pyg:Planetoid", {"name": "CiteSeer"}, DataSpec(data_dir=str(tmp_path / "data")))
    assert not marker.exists()


def test_missing_library_files_are_named_and_nothing_is_downloaded(tmp_path):
    with pytest.raises(DatasetError, match=r"dataset 'pyg:Planetoid' not found in .* \(missing Cora/raw/ind.cora.x"):
        describe_dataset("pyg:Planetoid", {"name": "Cora"}, DataSpec(data_dir=str(tmp_path)))
    with pytest.raises(DatasetError, match="could not be read from .*pass --download"):
        describe_dataset("torchvision:KMNIST", {}, DataSpec(data_dir=str(tmp_path)))
    with pytest.raises(DatasetError, match="give --data-dir"):
        describe_dataset("torchvision:KMNIST", {}, DataSpec())


def test_a_callable_returning_tensors_images_and_train_test_only():
    imports.allow("custom_models:small_images")
    facts = describe_dataset("custom_models:small_images", {"count": 80}, DataSpec())
    assert (facts.input_shape, facts.num_classes, facts.input_kind) == ((1, 8, 8), 4, "image")
    data = load_dataset("custom_models:small_images", DataSpec(), CPU, {"count": 80})
    assert data.split_sizes == {"train": 48, "val": 12, "test": 20}


def test_a_callable_returning_datasets_of_tokens_trains_a_token_model(tmp_path):
    from frozen_slt.training.loop import fit

    for name in ("custom_models:token_sequences", "custom_models:token_classifier"):
        imports.allow(name)
    facts = describe_dataset("custom_models:token_sequences", {}, DataSpec())
    assert (facts.input_shape, facts.num_classes, facts.input_kind) == ((6,), 2, "tokens")
    config = ExperimentConfig.from_settings({"model": "custom_models:token_classifier", "dataset": "custom_models:token_sequences",
                                             "epochs": 1, "batch_size": 8, "device": "cpu"})
    result = fit(config)
    assert result.epochs == 1 and config.data.augment  # augment is the recipe's default; such data is never augmented


def test_a_callable_returning_a_pyg_graph_with_masks():
    imports.allow("custom_models:small_graph")
    data = load_dataset("custom_models:small_graph", DataSpec(), CPU)
    assert data.split_sizes == {"train": 24, "val": 6, "test": 10}
    assert describe_dataset("custom_models:small_graph", {}, DataSpec()).input_kind == "graph"


@pytest.mark.parametrize("name, args, needle", [
    ("custom_models:a_list", {}, "returned list; it must return a dict of 'train', 'test'"),
    ("custom_models:small_images", {"size": 3}, "takes no argument 'size'; it takes: data_dir, count, channels"),
    ("torchvision.datasets:ImageFolder", {}, "frozen-slt reads torchvision classes that take train=True/False"),
    ("torchvision.datasets:utils", {}, "is module, not a callable"),
])
def test_a_dataset_callable_or_class_that_does_not_fit_the_protocol_is_refused(name, args, needle):
    imports.allow(name)
    with pytest.raises((DatasetError, ImportPathError)) as caught:
        describe_dataset(name, args, DataSpec(data_dir="/nonexistent"))
    assert needle in str(caught.value) and "\n" not in str(caught.value)


def test_a_dataset_path_the_command_line_did_not_name_is_refused():
    with pytest.raises(ImportPathError, match="add --dataset custom_models:small_graph to allow it"):
        describe_dataset("custom_models:small_graph", {}, DataSpec())


def test_library_datasets_train_export_and_evaluate_through_the_command_line(tmp_path, capsys):
    from frozen_slt.cli import main

    write_fake_planetoid(tmp_path / "graphs")
    write_fake_fashion_mnist(tmp_path / "images")
    runs = [
        ("graph", ["--model", "pyg:GraphSAGE", "--model-arg", "hidden_channels=16", "--model-arg", "num_layers=2",
                   "--dataset", "pyg:Planetoid", "--dataset-arg", "name=Cora", "--data-dir", str(tmp_path / "graphs")]),
        ("image", ["--model", "torchvision:resnet18", "--dataset", "torchvision.datasets:FashionMNIST",
                   "--input-channels", "3", "--data-dir", str(tmp_path / "images"), "--batch-size", "16"]),
    ]
    for name, args in runs:
        assert main(["train", *args, "--epochs", "1", "--freeze-ratio", "0.5", "--device", "cpu",
                     "--run-dir", str(tmp_path / name)]) == 0, capsys.readouterr().err
        # export reads the run's input shape from its data (config.json keeps --data-dir), writes both files
        assert main(["export", str(tmp_path / name), "-o", str(tmp_path / f"{name}.slt"),
                     "--dense-module", str(tmp_path / f"{name}.pt")]) == 0, capsys.readouterr().err
        capsys.readouterr()
        data_dir = args[args.index("--data-dir") + 1]  # a ticket does not carry a path from the machine it was written on
        assert main(["eval", str(tmp_path / f"{name}.slt"), "--device", "cpu", "--data-dir", data_dir]) == 0, \
            capsys.readouterr().err
        found = re.search(r"(val \S+  test \S+)  \(recorded: (val \S+  test \S+)\)", capsys.readouterr().out)
        assert found and found.group(1) == found.group(2)
