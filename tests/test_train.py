"""fit(): learning on real data, exact sparsity, frozen entries honoured, exact resume from checkpoints."""

import math

import pytest
import torch

from frozen_slt.checkpoint import DirectoryStore, read_checkpoint
from frozen_slt.config import ExperimentConfig
from frozen_slt.layers import LOCKED, PRUNED, masked_layers
from frozen_slt.network import build_network
from frozen_slt.train import Reporter, fit


def digits_config(**settings):
    base = {"dataset": "digits", "model": "conv4", "epochs": 3, "sparsity": 0.5, "freeze_ratio": 0.5, "device": "cpu"}
    return ExperimentConfig.from_settings({**base, **settings})


class StopAfter(Reporter):
    """Simulates a crash right after epoch ``epoch``'s checkpoint was written."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch(self, metrics):
        if metrics["epoch"] == self.epoch:
            raise KeyboardInterrupt


def comparable(history):
    return [{key: value for key, value in entry.items() if key != "seconds"} for entry in history]


def test_frozen_ticket_learns_with_exact_sparsity_and_frozen_entries(tmp_path):
    config = digits_config()
    store = DirectoryStore(tmp_path)
    result = fit(config, store=store)
    assert result.val_accuracy > 0.5 and result.test_accuracy > 0.5  # chance is 0.1
    assert [entry["epoch"] for entry in result.history] == [0, 1, 2, 3]
    total = result.memory.total_weights
    assert result.realised_sparsity == math.floor(total * 0.5) / total
    assert result.size_bits == result.memory.free_weights + 128
    network = build_network(config, torch.device("cpu"))
    network.load_saved_state(read_checkpoint(store._epochs()[0][1])["best"]["model"])
    zeros = 0
    for layer in masked_layers(network.model):
        mask = layer.keep_mask()
        assert not mask[layer.freeze_state == PRUNED].any()
        assert mask[layer.freeze_state == LOCKED].all()
        zeros += int((~mask).sum())
    assert zeros == math.floor(total * 0.5)


def test_best_validation_epoch_is_selected_and_its_test_accuracy_reported():
    result = fit(digits_config(epochs=2))
    best = max(result.history, key=lambda entry: (entry["val_accuracy"], -entry["epoch"]))
    assert result.best_epoch == best["epoch"] and result.test_accuracy == best["test_accuracy"]
    for position, entry in enumerate(result.history):  # every epoch carries the running best so far
        so_far = max(result.history[: position + 1], key=lambda e: (e["val_accuracy"], -e["epoch"]))
        assert (entry["best_epoch"], entry["best_val_accuracy"], entry["best_test_accuracy"]) == (
            so_far["epoch"], so_far["val_accuracy"], so_far["test_accuracy"])


def test_dense_source_and_weight_trained_baseline():
    dense = fit(digits_config(freeze_ratio=0.0, epochs=1))
    assert dense.family == "dense" and dense.size_bits == dense.memory.total_weights + 64
    baseline = fit(digits_config(weight_trained=True, freeze_ratio=0.0, epochs=2))
    assert baseline.family == "weight_trained" and baseline.realised_sparsity == 0.0
    assert baseline.size_bits == 32 * baseline.memory.total_weights
    assert baseline.val_accuracy > 0.5


def test_resume_after_a_crash_is_bit_identical(tmp_path):
    config = digits_config(epochs=3)
    whole_store = DirectoryStore(tmp_path / "whole")
    whole = fit(config, store=whole_store)
    store = DirectoryStore(tmp_path / "split")
    with pytest.raises(KeyboardInterrupt):
        fit(config, reporter=StopAfter(1), store=store)
    resumed = fit(config, store=store)
    assert comparable(resumed.history) == comparable(whole.history)
    assert (resumed.best_epoch, resumed.val_accuracy, resumed.test_accuracy) == (whole.best_epoch, whole.val_accuracy, whole.test_accuracy)
    final_whole, final_resumed = whole_store.load(), store.load()
    for key, value in final_whole["model"].items():
        assert torch.equal(value, final_resumed["model"][key]), key
    assert final_whole["optimizer"]["state"][0]["momentum_buffer"].equal(final_resumed["optimizer"]["state"][0]["momentum_buffer"])


def test_a_corrupted_latest_checkpoint_is_reported_and_the_previous_one_used(tmp_path, caplog):
    config = digits_config(epochs=3)
    whole = fit(config)
    store = DirectoryStore(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        fit(config, reporter=StopAfter(2), store=store)
    latest = tmp_path / "epoch_0002.pt"
    blob = bytearray(latest.read_bytes())
    blob[-100] ^= 0xFF
    latest.write_bytes(bytes(blob))
    resumed = fit(config, store=store)
    assert "epoch_0002.pt is corrupted" in caplog.text
    assert comparable(resumed.history) == comparable(whole.history)


def test_finished_run_resumed_does_not_train_again(tmp_path):
    config = digits_config(epochs=1)
    store = DirectoryStore(tmp_path)
    first = fit(config, store=store)

    class CountSteps(Reporter):
        steps = 0

        def on_step(self, *args):
            CountSteps.steps += 1

    again = fit(config, reporter=CountSteps(), store=store)
    assert CountSteps.steps == 0 and comparable(again.history) == comparable(first.history)


def test_checkpoint_of_another_config_is_refused(tmp_path):
    store = DirectoryStore(tmp_path)
    fit(digits_config(epochs=1), store=store)
    with pytest.raises(ValueError, match="belongs to config"):
        fit(digits_config(epochs=1, lr=0.01), store=store)
