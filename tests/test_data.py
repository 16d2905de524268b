"""Datasets: the real loading code on real (digits) or real-format (CIFAR-10, ImageFolder) files."""

import logging
import pickle

import numpy as np
import pytest
import torch
import torchvision
from fake_datasets import (
    cifar_label_from_image,
    imagenet_label_from_image,
    write_fake_cifar10,
    write_fake_imagenet,
)
from hostile import CreatesFile, EvalCreatesFile, SystemCreatesFile

from frozen_slt.config.specs import DataSpec
from frozen_slt.data import DatasetError, load_dataset
from frozen_slt.data.cifar10 import MEAN, STD
from frozen_slt.data.tensor_images import PAD, crop_flip

CPU = torch.device("cpu")


def all_batches(data, split, size=1000):
    images, labels = zip(*data.eval_batches(split, size))
    return torch.cat(images), torch.cat(labels)


def cifar_pixels(images):
    """Un-normalise CIFAR batches back to their uint8 pixels."""
    raw = (images * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)) * 255
    return raw.round().clamp(0, 255).to(torch.uint8)


def image_keys(images):
    return {x.numpy().tobytes() for x in images}


# --- digits -------------------------------------------------------------------------------------------

def test_digits_splits():
    first = load_dataset("digits", DataSpec(split_seed=0), CPU)
    second = load_dataset("digits", DataSpec(split_seed=1), CPU)
    assert first.split_sizes == {"train": 1150, "val": 287, "test": 360}
    assert first.input_shape == (1, 8, 8) and first.num_classes == 10
    assert torch.equal(first.splits["test"][0], second.splits["test"][0])  # the test set never moves
    assert not torch.equal(first.splits["val"][0], second.splits["val"][0])
    assert not torch.equal(first.splits["train"][0], second.splits["train"][0])
    # The 1,797 digits images are pairwise distinct, so their bytes identify them.
    keys = {split: image_keys(first.splits[split][0]) for split in ("train", "val", "test")}
    assert sum(len(k) for k in keys.values()) == 1797
    assert not (keys["train"] & keys["val"]) and not (keys["train"] & keys["test"]) and not (keys["val"] & keys["test"])
    images, labels = next(first.train_batches(2000, epoch=1))
    assert images.shape == (1150, 1, 8, 8) and images.dtype == torch.float32 and labels.dtype == torch.int64
    assert set(labels.tolist()) == set(range(10))
    assert abs(images.mean().item()) < 1e-4 and abs(images.std().item() - 1) < 1e-3
    for split in ("val", "test"):
        assert set(all_batches(first, split)[1].tolist()) <= set(range(10))


def test_digits_batches_are_a_function_of_seed_and_epoch():
    data = load_dataset("digits", DataSpec(order_seed=5), CPU)
    assert data.num_train_batches(32) == 36  # 1150 = 35 * 32 + 30: the partial batch is kept
    epoch_two = list(data.train_batches(32, epoch=2))
    assert len(epoch_two) == 36 and len(epoch_two[-1][1]) == 30
    list(data.train_batches(32, epoch=7))  # an unrelated epoch in between changes nothing
    fresh = load_dataset("digits", DataSpec(order_seed=5), CPU)
    for (a, la), (b, lb) in zip(epoch_two, fresh.train_batches(32, epoch=2)):
        assert torch.equal(a, b) and torch.equal(la, lb)
    assert not torch.equal(epoch_two[0][1], next(data.train_batches(32, epoch=3))[1])
    assert torch.equal(all_batches(data, "val")[0], all_batches(data, "val")[0])


# --- CIFAR-10 -----------------------------------------------------------------------------------------

def test_cifar10_reads_the_real_format(tmp_path):
    folder = write_fake_cifar10(tmp_path)
    data = load_dataset("cifar10", DataSpec(data_dir=str(tmp_path), augment=False), CPU)
    assert data.split_sizes == {"train": 80, "val": 20, "test": 20}
    assert data.input_shape == (3, 32, 32) and data.num_classes == 10
    images, labels = all_batches(data, "test")
    assert images.dtype == torch.float32 and labels.dtype == torch.int64
    pixels = cifar_pixels(images)
    assert [cifar_label_from_image(x.numpy()) for x in pixels] == labels.tolist()
    with open(folder / "test_batch", "rb") as handle:
        raw = pickle.load(handle, encoding="bytes")
    assert torch.equal(pixels, torch.from_numpy(raw[b"data"].reshape(-1, 3, 32, 32)))  # CHW planes, file order
    train_images, train_labels = map(torch.cat, zip(*data.train_batches(1000, epoch=0)))
    val_pixels = cifar_pixels(all_batches(data, "val")[0])
    assert [cifar_label_from_image(x.numpy()) for x in cifar_pixels(train_images)] == train_labels.tolist()
    assert not image_keys(cifar_pixels(train_images)) & image_keys(val_pixels)
    inner = load_dataset("cifar10", DataSpec(data_dir=str(folder), augment=False), CPU)
    assert inner.split_sizes == data.split_sizes
    assert torch.equal(all_batches(inner, "val")[0], all_batches(data, "val")[0])
    other_split = load_dataset("cifar10", DataSpec(data_dir=str(tmp_path), split_seed=1), CPU)
    assert not torch.equal(all_batches(other_split, "val")[1], all_batches(data, "val")[1])


def _is_crop_flip_of(augmented: np.ndarray, original: np.ndarray) -> bool:
    """Whether ``augmented`` is some zero-padded crop of ``original``, flipped or not (checked by brute force)."""
    padded = np.pad(original, ((0, 0), (PAD, PAD), (PAD, PAD)))
    for row in range(2 * PAD + 1):
        for column in range(2 * PAD + 1):
            crop = padded[:, row : row + 32, column : column + 32]
            if np.array_equal(crop, augmented) or np.array_equal(crop[:, :, ::-1], augmented):
                return True
    return False


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
    assert all(torch.equal(a[1], b[1]) for a, b in zip(first, unaugmented))  # the same order
    augmented_pixels = cifar_pixels(torch.cat([batch[0] for batch in first])).numpy()
    original_pixels = cifar_pixels(torch.cat([batch[0] for batch in unaugmented])).numpy()
    assert not np.array_equal(augmented_pixels, original_pixels)
    assert all(_is_crop_flip_of(a, o) for a, o in zip(augmented_pixels, original_pixels))
    # The padding is black (raw 0), as torchvision's RandomCrop before Normalize, not the mean colour.
    black = ((0 - torch.tensor(MEAN)) / torch.tensor(STD)).view(1, 3, 1, 1)
    borders = torch.cat([batch[0] for batch in first])[:, :, :PAD, :]
    assert torch.isclose(borders, black.expand_as(borders)).all(1).any()
    assert torch.equal(torch.cat([b[0] for b in unaugmented]), torch.cat([b[0] for b in plain.train_batches(32, 2)]))


def test_crop_flip_kernel():
    images = torch.arange(2 * 3 * 4 * 5, dtype=torch.uint8).view(2, 3, 4, 5)
    same = crop_flip(images, torch.full((2, 2), PAD), torch.tensor([False, False]))
    assert torch.equal(same, images)
    flipped = crop_flip(images, torch.full((2, 2), PAD), torch.tensor([True, False]))
    assert torch.equal(flipped[0], images[0].flip(-1)) and torch.equal(flipped[1], images[1])
    shifted = crop_flip(images, torch.tensor([[PAD + 1, PAD - 2], [0, 0]]), torch.tensor([False, False]))
    assert torch.equal(shifted[0, :, :3, 2:], images[0, :, 1:, :3]) and (shifted[0, :, 3] == 0).all()
    assert (shifted[1] == 0).all()  # offset 0 with padding 4 lands entirely in the padding of a 4x5 image


def test_cifar10_missing_and_corrupt(tmp_path):
    with pytest.raises(DatasetError, match="--download") as error:
        load_dataset("cifar10", DataSpec(data_dir=str(tmp_path)), CPU)
    assert str(tmp_path / "cifar-10-batches-py") in str(error.value) and "--data-dir" in str(error.value)
    folder = write_fake_cifar10(tmp_path)
    (folder / "test_batch").unlink()
    with pytest.raises(DatasetError, match="missing: test_batch"):
        load_dataset("cifar10", DataSpec(data_dir=str(folder)), CPU)
    write_fake_cifar10(tmp_path)
    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": 1})[:10])
    with pytest.raises(DatasetError, match="data_batch_3 is corrupt"):
        load_dataset("cifar10", DataSpec(data_dir=str(tmp_path)), CPU)
    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}))
    with pytest.raises(DatasetError, match="data_batch_3 is corrupt: labels outside"):
        load_dataset("cifar10", DataSpec(data_dir=str(tmp_path)), CPU)


def test_cifar10_reads_python2_pickles_as_the_real_files_are_written(tmp_path):
    """The real batches are Python 2 pickles naming numpy 1's ``numpy.core.multiarray._reconstruct``."""
    write_fake_cifar10(tmp_path / "py3")
    write_fake_cifar10(tmp_path / "py2", python2=True)
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in (tmp_path / "py2" / "cifar-10-batches-py" / "test_batch").read_bytes()
    loaded = [load_dataset("cifar10", DataSpec(data_dir=str(tmp_path / kind), augment=False), CPU) for kind in ("py3", "py2")]
    for split in ("val", "test"):
        assert all(torch.equal(a, b) for a, b in zip(all_batches(loaded[0], split), all_batches(loaded[1], split)))


def test_cifar10_batches_pickled_with_protocol_5_load(tmp_path):
    folder = write_fake_cifar10(tmp_path)
    with open(folder / "test_batch", "rb") as handle:
        batch = pickle.load(handle, encoding="bytes")
    (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=5))
    images, labels = all_batches(load_dataset("cifar10", DataSpec(data_dir=str(tmp_path), augment=False), CPU), "test")
    assert [cifar_label_from_image(x.numpy()) for x in cifar_pixels(images)] == labels.tolist()


@pytest.mark.parametrize("hostile, name", [(EvalCreatesFile, "builtins.eval"), (SystemCreatesFile, "system"),
                                           (CreatesFile, "open")])
def test_a_crafted_cifar10_batch_runs_nothing_and_is_refused_naming_the_global(tmp_path, hostile, name):
    folder = write_fake_cifar10(tmp_path)
    marker = tmp_path / "marker"
    batch = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1], b"batch_label": hostile(marker)}
    (folder / "data_batch_2").write_bytes(pickle.dumps(batch))
    with pytest.raises(DatasetError, match=r"data_batch_2 names \S*" + name + r"\S*, which a CIFAR-10 batch never contains") as error:
        load_dataset("cifar10", DataSpec(data_dir=str(tmp_path)), CPU)
    assert "\n" not in str(error.value) and not marker.exists()


def test_cifar10_download_only_when_missing(tmp_path, monkeypatch):
    calls = []

    def fake_cifar10(root, train, download):  # stands in for torchvision: writes the extracted folder
        calls.append((root, train, download))
        write_fake_cifar10(root)

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", fake_cifar10)
    data = load_dataset("cifar10", DataSpec(data_dir=str(tmp_path), download=True), CPU)
    assert calls == [(str(tmp_path), True, True)] and data.split_sizes["train"] == 80
    load_dataset("cifar10", DataSpec(data_dir=str(tmp_path), download=True), CPU)
    assert len(calls) == 1  # present: no download

    def offline(root, train, download):
        raise OSError("no network")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(DatasetError, match="could not download CIFAR-10"):
        load_dataset("cifar10", DataSpec(data_dir=str(tmp_path / "empty"), download=True), CPU)


# --- ImageNet image folder ----------------------------------------------------------------------------

@pytest.mark.parametrize("workers", [0, 2])
def test_image_folder(tmp_path, workers, caplog):
    write_fake_imagenet(tmp_path)
    with caplog.at_level(logging.WARNING, logger="frozen_slt.data.imagenet"):
        data = load_dataset("imagenet", DataSpec(data_dir=str(tmp_path), num_workers=workers), CPU)
    assert "3 classes, not 1000" in caplog.text and data.num_classes == 1000
    assert data.split_sizes == {"train": 12, "val": 3, "test": 6}
    assert data.num_train_batches(5) == 3 and [len(b[1]) for b in data.train_batches(5, epoch=0)] == [5, 5, 2]
    images, labels = next(data.train_batches(4, epoch=1))
    again, again_labels = next(data.train_batches(4, epoch=1))
    other, _ = next(data.train_batches(4, epoch=2))
    after_other, _ = next(data.train_batches(4, epoch=1))
    assert images.shape == (4, 3, 224, 224) and images.dtype == torch.float32 and labels.dtype == torch.int64
    assert torch.equal(images, again) and torch.equal(labels, again_labels) and torch.equal(images, after_other)
    assert not torch.equal(images, other)
    assert [imagenet_label_from_image(x) for x in images] == labels.tolist()
    test_images, test_labels = next(data.eval_batches("test", 6))
    assert test_labels.tolist() == [0, 0, 1, 1, 2, 2] and test_images.shape == (6, 3, 224, 224)
    assert [imagenet_label_from_image(x) for x in test_images] == test_labels.tolist()
    val_images, _ = all_batches(data, "val")
    assert val_images.shape == (3, 3, 224, 224) and torch.equal(val_images, all_batches(data, "val")[0])


def test_image_folder_batches_do_not_depend_on_workers(tmp_path):
    write_fake_imagenet(tmp_path, per_class_train=3)
    torch.manual_seed(11)
    expected_global_draw = torch.rand(3)
    torch.manual_seed(11)
    batches = [next(load_dataset("imagenet", DataSpec(data_dir=str(tmp_path), num_workers=n), CPU).train_batches(3, 4))
               for n in (0, 2)]
    assert torch.equal(batches[0][0], batches[1][0]) and torch.equal(batches[0][1], batches[1][1])
    assert torch.equal(torch.rand(3), expected_global_draw)  # the global RNG of the training process is untouched


def test_image_folder_missing_or_wrong(tmp_path):
    write_fake_imagenet(tmp_path)
    with pytest.raises(DatasetError, match="cannot be downloaded"):
        load_dataset("imagenet", DataSpec(data_dir=str(tmp_path), download=True), CPU)
    (tmp_path / "val" / "n00000002" / "img_0.png").rename(tmp_path / "val" / "n00000001" / "moved.png")
    (tmp_path / "val" / "n00000002" / "img_1.png").unlink()
    (tmp_path / "val" / "n00000002").rmdir()
    with pytest.raises(DatasetError, match="same class folders"):
        load_dataset("imagenet", DataSpec(data_dir=str(tmp_path)), CPU)
    for path in sorted((tmp_path / "val").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    with pytest.raises(DatasetError, match="val folder .* holds no images"):
        load_dataset("imagenet", DataSpec(data_dir=str(tmp_path)), CPU)
    (tmp_path / "val").rmdir()
    with pytest.raises(DatasetError, match="expected class folders under .*val"):
        load_dataset("imagenet", DataSpec(data_dir=str(tmp_path)), CPU)


def test_image_files_that_cannot_be_read_are_refused_when_the_folder_is_scanned(tmp_path):
    write_fake_imagenet(tmp_path)
    (tmp_path / "train" / "n00000001" / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    (tmp_path / "train" / "n00000002" / "empty.png").write_bytes(b"")
    with pytest.raises(DatasetError) as caught:
        load_dataset("imagenet", DataSpec(data_dir=str(tmp_path)), CPU)
    message = str(caught.value)
    assert "n00000001/dangling.png in " in message and "cannot be read: a link to nothing (and 1 more)" in message


@pytest.mark.parametrize("workers", [0, 1])
def test_an_image_that_does_not_decode_is_one_line_naming_it_from_a_worker_too(tmp_path, workers):
    write_fake_imagenet(tmp_path)
    broken = tmp_path / "val" / "n00000001" / "img_0.png"  # the official val folder: the test split
    broken.write_bytes(broken.read_bytes()[:60])  # a truncated PNG: the scan finds a readable file
    data = load_dataset("imagenet", DataSpec(data_dir=str(tmp_path), num_workers=workers), CPU)
    assert len(all_batches(data, "val")[1]) == 3  # the other splits still load
    with pytest.raises(DatasetError) as caught:
        list(data.eval_batches("test", 2))
    message = str(caught.value)
    assert message.startswith(f"image {broken} cannot be decoded (") and "\n" not in message


# --- the registry -------------------------------------------------------------------------------------

def test_bad_split_and_batch_size():
    data = load_dataset("digits", DataSpec(), CPU)
    with pytest.raises(ValueError, match="valid: val, test"):
        next(data.eval_batches("train", 10))
    with pytest.raises(ValueError, match="batch_size"):
        data.num_train_batches(0)
