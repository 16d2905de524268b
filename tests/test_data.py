"""Datasets: the real loading code on real (digits) or real-format (CIFAR-10, ImageFolder) files."""

import pickle

import pytest
import torch

from fake_datasets import cifar_label_from_image, write_fake_cifar10, write_fake_imagenet
from frozen_slt.config import DataSpec
from frozen_slt.data import DatasetError, load_dataset
from frozen_slt.data.cifar10 import MEAN, STD

CPU = torch.device("cpu")


def all_batches(data, split, size=1000):
    images, labels = zip(*data.eval_batches(split, size))
    return torch.cat(images), torch.cat(labels)


def test_digits_splits():
    first = load_dataset("digits", DataSpec(split_seed=0), CPU)
    second = load_dataset("digits", DataSpec(split_seed=1), CPU)
    assert first.split_sizes == {"train": 1150, "val": 287, "test": 360}
    assert torch.equal(first.splits["test"][0], second.splits["test"][0])  # the test set never moves
    assert not torch.equal(first.splits["val"][0], second.splits["val"][0])
    rows = {split: {tuple(x.flatten().tolist()) for x in first.splits[split][0]} for split in ("train", "val", "test")}
    assert not (rows["train"] & rows["test"]) and not (rows["val"] & rows["test"])
    images, labels = next(first.train_batches(2000, epoch=1))
    assert images.shape == (1150, 1, 8, 8) and set(labels.tolist()) == set(range(10))
    assert abs(images.mean().item()) < 1e-4 and abs(images.std().item() - 1) < 1e-3


def test_cifar10_reads_the_real_format(tmp_path):
    write_fake_cifar10(tmp_path)
    data = load_dataset("cifar10", DataSpec(data_dir=str(tmp_path), augment=False), CPU)
    assert data.split_sizes == {"train": 80, "val": 20, "test": 20}
    images, labels = all_batches(data, "test")
    raw = (images * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)) * 255
    decoded = [cifar_label_from_image(x.round().to(torch.uint8).numpy()) for x in raw]
    assert decoded == labels.tolist()
    inner = load_dataset("cifar10", DataSpec(data_dir=str(tmp_path / "cifar-10-batches-py")), CPU)
    assert inner.split_sizes == data.split_sizes


def test_cifar10_epoch_order_and_augmentation(tmp_path):
    write_fake_cifar10(tmp_path)
    data = load_dataset("cifar10", DataSpec(data_dir=str(tmp_path), order_seed=3), CPU)
    first = list(data.train_batches(32, epoch=2))
    again = list(data.train_batches(32, epoch=2))
    other = list(data.train_batches(32, epoch=3))
    assert len(first) == data.num_train_batches(32) == 3 and first[-1][0].shape == (16, 3, 32, 32)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))
    assert not torch.equal(first[0][1], other[0][1])
    plain = load_dataset("cifar10", DataSpec(data_dir=str(tmp_path), order_seed=3, augment=False), CPU)
    unaugmented = list(plain.train_batches(32, epoch=2))
    assert all(torch.equal(a[1], b[1]) for a, b in zip(first, unaugmented))  # same order
    assert not torch.equal(first[0][0], unaugmented[0][0])  # cropped / flipped
    zero_padding = (0 - torch.tensor(MEAN) / 1) / torch.tensor(STD)
    has_padding = (first[0][0][:, 0] == zero_padding[0]).flatten(1).any(1)
    assert has_padding.any()


def test_cifar10_missing_and_corrupt(tmp_path):
    with pytest.raises(DatasetError, match="--download") as error:
        load_dataset("cifar10", DataSpec(data_dir=str(tmp_path)), CPU)
    assert "cifar-10-batches-py" in str(error.value)
    folder = write_fake_cifar10(tmp_path)
    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": 1})[:10])
    with pytest.raises(DatasetError, match="data_batch_3 is corrupt"):
        load_dataset("cifar10", DataSpec(data_dir=str(tmp_path)), CPU)


@pytest.mark.parametrize("workers", [0, 2])
def test_image_folder(tmp_path, workers):
    write_fake_imagenet(tmp_path)
    data = load_dataset("imagenet", DataSpec(data_dir=str(tmp_path), num_workers=workers), CPU)
    assert data.split_sizes == {"train": 12, "val": 3, "test": 6}
    images, labels = next(data.train_batches(4, epoch=1))
    again, _ = next(data.train_batches(4, epoch=1))
    other, _ = next(data.train_batches(4, epoch=2))
    assert images.shape == (4, 3, 224, 224) and torch.equal(images, again) and not torch.equal(images, other)
    test_images, test_labels = next(data.eval_batches("test", 6))
    assert test_labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert test_images.shape == (6, 3, 224, 224)


def test_image_folder_missing_val(tmp_path):
    write_fake_imagenet(tmp_path)
    for path in sorted((tmp_path / "val").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    (tmp_path / "val").rmdir()
    with pytest.raises(DatasetError, match="expected class folders under .*val"):
        load_dataset("imagenet", DataSpec(data_dir=str(tmp_path)), CPU)
    with pytest.raises(DatasetError, match="cannot be downloaded"):
        load_dataset("imagenet", DataSpec(data_dir=str(tmp_path), download=True), CPU)


def test_graph_dataset_is_refused_clearly():
    with pytest.raises(DatasetError, match="graph training is not available"):
        load_dataset("ogbn-arxiv", DataSpec(), CPU)
