"""The graph path: ogbn-arxiv through ogb's reader (a tiny copy in OGB's layout), the synthetic graph,
OGB's Evaluator, full-batch training of the three GIN families, and exact resume."""

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from graph_fixtures import CLASSES, NODES, SPLIT, write_tiny_arxiv, write_tiny_arxiv_zip

from frozen_slt.config.experiment import ExperimentConfig
from frozen_slt.config.specs import DataSpec
from frozen_slt.data import DatasetError, load_dataset
from frozen_slt.data.graph import GraphData
from frozen_slt.data.loop import loop_view
from frozen_slt.data.synthetic_graph import load_synthetic_graph
from frozen_slt.training.checkpoint import DirectoryStore
from frozen_slt.training.loop import Reporter, fit

CPU = torch.device("cpu")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def arxiv_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("ogb")
    arrays = write_tiny_arxiv(root / "ogbn_arxiv")
    return root, arrays


def edge_set(adjacency: torch.Tensor) -> list[tuple[int, int]]:
    rows, columns = adjacency.to_sparse_coo().indices().tolist()
    return list(zip(rows, columns))


# --- reading ogbn-arxiv ----------------------------------------------------------------------------

def test_ogb_layout_is_read_symmetrised_and_split_officially(arxiv_root):
    root, arrays = arxiv_root
    data = load_dataset("ogbn-arxiv", DataSpec(data_dir=str(root)), CPU)
    assert isinstance(data, GraphData) and data.input_shape == (128,) and data.num_classes == CLASSES
    torch.testing.assert_close(data.features, torch.from_numpy(arrays["features"]), rtol=0, atol=1e-6)
    for split, official in (("train", "train"), ("val", "valid"), ("test", "test")):
        assert data.rows[split].tolist() == arrays[official].tolist()
        assert data.labels[split].tolist() == arrays["labels"][arrays[official], 0].tolist()
    directed = {tuple(edge) for edge in arrays["edges"].tolist()}
    expected = sorted(directed | {(b, a) for a, b in directed})  # undirected, coalesced: each pair once per direction
    assert edge_set(data.adjacency) == expected and data.num_edges == len(expected)
    raw_loops = sum(a == b for a, b in directed)
    assert sum(a == b for a, b in expected) == raw_loops  # no self-loops added
    assert data.split_sizes == dict(zip(("train", "val", "test"), SPLIT))


def test_the_inner_folder_may_be_given_and_nothing_is_written_into_it(arxiv_root):
    root, _ = arxiv_root
    before = sorted(path.relative_to(root) for path in root.rglob("*"))
    data = load_dataset("ogbn-arxiv", DataSpec(data_dir=str(root / "ogbn_arxiv")), CPU)
    assert data.num_nodes == NODES
    assert sorted(path.relative_to(root) for path in root.rglob("*")) == before


def test_missing_incomplete_and_damaged_copies_are_refused_in_one_line(tmp_path, arxiv_root):
    with pytest.raises(DatasetError, match=r"ogbn-arxiv not found: expected .*nowhere/ogbn_arxiv/ .*no such folder.*--download"):
        load_dataset("ogbn-arxiv", DataSpec(data_dir=str(tmp_path / "nowhere")), CPU)
    shutil.copytree(arxiv_root[0] / "ogbn_arxiv", tmp_path / "ogbn_arxiv")
    (tmp_path / "ogbn_arxiv" / "split" / "time" / "valid.csv.gz").unlink()
    with pytest.raises(DatasetError, match=r"missing: split/time/valid.csv.gz\); pass --download"):
        load_dataset("ogbn-arxiv", DataSpec(data_dir=str(tmp_path)), CPU)
    write_tiny_arxiv(tmp_path / "ogbn_arxiv")
    features = tmp_path / "ogbn_arxiv" / "raw" / "node-feat.csv.gz"
    features.write_bytes(features.read_bytes()[:200])
    with pytest.raises(DatasetError, match="ogbn-arxiv files in .* are damaged") as caught:
        load_dataset("ogbn-arxiv", DataSpec(data_dir=str(tmp_path)), CPU)
    assert "\n" not in str(caught.value)


def test_labels_outside_the_classes_are_refused(tmp_path):
    write_tiny_arxiv(tmp_path / "ogbn_arxiv")
    import pandas as pd

    labels = np.full((NODES, 1), CLASSES)
    pd.DataFrame(labels).to_csv(tmp_path / "ogbn_arxiv" / "raw" / "node-label.csv.gz", header=False, index=False, compression="gzip")
    with pytest.raises(DatasetError, match="labels outside 0..39"):
        load_dataset("ogbn-arxiv", DataSpec(data_dir=str(tmp_path)), CPU)


def test_download_unpacks_ogbs_archive_where_ogb_would(tmp_path, monkeypatch):
    import ogb.utils.url

    archive = tmp_path / "served" / "arxiv.zip"
    archive.parent.mkdir()
    write_tiny_arxiv_zip(archive)

    def fake_download(url, folder, log=True):  # stands in for the network; everything after it is ogb's and ours
        assert url.endswith("/arxiv.zip")
        target = tmp_path / "data" / "arxiv.zip"
        target.parent.mkdir(exist_ok=True)
        shutil.copy(archive, target)
        return str(target)

    monkeypatch.setattr(ogb.utils.url, "download_url", fake_download)
    data = load_dataset("ogbn-arxiv", DataSpec(data_dir=str(tmp_path / "data"), download=True), CPU)
    assert data.num_nodes == NODES and (tmp_path / "data" / "ogbn_arxiv" / "raw").is_dir()
    assert not (tmp_path / "data" / "arxiv.zip").exists()


def test_ogb_is_imported_without_its_pypi_version_check(tmp_path):
    fake = tmp_path / "outdated"  # stands in for the `outdated` package: records whether ogb asked it
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "def check_outdated(package, version):\n"
        f"    open({str(tmp_path / 'asked')!r}, 'w').write(package)\n"
        "    return False, version\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}

    def run(code):
        subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=300)
        return (tmp_path / "asked").exists()

    assert run("import ogb, time; time.sleep(1)")  # the control: a plain import asks PyPI
    (tmp_path / "asked").unlink()
    assert not run("from frozen_slt.data.graph import import_ogb_nodeproppred as i; i(); import outdated, time; time.sleep(1)")


def test_cli_refuses_a_missing_copy_with_status_2_and_no_traceback(tmp_path):
    done = subprocess.run([sys.executable, "-m", "frozen_slt.cli", "train", "--model", "gin", "--dataset", "ogbn-arxiv",
                           "--data-dir", "/nonexistent", "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    # one line and nothing else: no traceback, no dependency's warning before it
    (error,) = done.stderr.splitlines()
    assert error.startswith("frozen-slt: error: ogbn-arxiv not found") and "--download" in error


def test_train_help_lists_the_graph_datasets_and_their_recipes():
    from frozen_slt.cli import build_parser

    (commands,) = [action for action in build_parser()._actions if hasattr(action, "choices") and action.choices]
    squeezed = "".join(commands.choices["train"].format_help().split())  # argparse wraps lines, also at hyphens
    assert "Datasets:digits,cifar10,imagenet,ogbn-arxiv,synthetic-arxiv;ortorchvision.datasets:NAME" in squeezed
    assert "synthetic-arxiv(optimizer=adamw,lr=0.01,weight_decay=0.0001,distribution=epl,epochs=40)" in squeezed


def test_graph_recipe_follows_the_papers_text():
    config = ExperimentConfig.from_settings({"model": "gin", "dataset": "ogbn-arxiv"})
    recipe = config.train
    assert (recipe.optimizer, recipe.lr, recipe.weight_decay, recipe.epochs, recipe.schedule) == ("adamw", 0.01, 1e-4, 400, "cosine")
    assert config.ticket.distribution == "epl"


# --- the loop's view of a graph ---------------------------------------------------------------------

def tiny_graph():
    features = torch.arange(12, dtype=torch.float32).view(6, 2)
    edge_index = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]])
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    splits = {"train": torch.tensor([0, 1]), "val": torch.tensor([2, 3]), "test": torch.tensor([4, 5])}
    return GraphData("tiny", features, edge_index, labels, splits, 3, CPU)


def test_evaluator_accuracy_equals_a_hand_computed_one():
    data = tiny_graph()
    # test nodes 4 and 5 have labels 1 and 2: one right, one wrong
    assert data.accuracy("test", torch.tensor([1, 0])) == 0.5
    assert data.accuracy("val", torch.tensor([2, 0])) == 1.0  # val nodes 2, 3: labels 2, 0


def test_one_forward_pass_serves_every_split():
    data = tiny_graph()
    calls = []
    logits = torch.tensor([[5.0, 0, 0], [0, 5, 0], [0, 0, 5], [0, 5, 0], [0, 5, 0], [0, 5, 0]])

    def forward(features, adjacency):
        calls.append((features, adjacency))
        return logits

    metrics = data.evaluate(forward, ("val", "test"), batch_size=1)
    assert len(calls) == 1 and calls[0][0] is data.features and calls[0][1] is data.adjacency
    assert list(metrics) == ["val_loss", "val_accuracy", "test_loss", "test_accuracy"]
    assert metrics["val_accuracy"] == 0.5 and metrics["test_accuracy"] == 0.5  # val: 2 right, 3 wrong; test: 4 right, 5 wrong
    right, wrong = math.log(math.exp(5) + 2) - 5, math.log(math.exp(5) + 2)  # -log softmax of the label's logit
    assert metrics["val_loss"] == pytest.approx((right + wrong) / 2, rel=1e-6)


def test_graph_stays_on_the_device_and_is_not_rebuilt_per_epoch():
    data = tiny_graph()
    first, again = next(data.train_steps(128, epoch=1)), next(data.train_steps(4, epoch=9))
    assert data.num_train_steps(128) == 1 and loop_view(data) is data
    assert all(a is b for a, b in zip(first.inputs, again.inputs)) and first.labels is again.labels and first.rows is again.rows
    assert first.inputs == (data.features, data.adjacency)


def test_inconsistent_graph_arrays_are_refused():
    features, edges = torch.zeros(4, 2), torch.tensor([[0, 1], [1, 2]])
    splits = {"train": torch.tensor([0, 1]), "val": torch.tensor([1]), "test": torch.tensor([3])}
    with pytest.raises(DatasetError, match="splits overlap"):
        GraphData("bad", features, edges, torch.zeros(4, dtype=torch.int64), splits, 2, CPU)
    with pytest.raises(DatasetError, match="edges name nodes outside 0..3"):
        GraphData("bad", features, torch.tensor([[0], [7]]), torch.zeros(4, dtype=torch.int64), {**splits, "val": torch.tensor([2])}, 2, CPU)


# --- the synthetic graph ----------------------------------------------------------------------------

def test_synthetic_graph_is_fixed_undirected_and_split_by_the_split_seed():
    first, second = load_synthetic_graph(DataSpec(), CPU), load_synthetic_graph(DataSpec(), CPU)
    other = load_synthetic_graph(DataSpec(split_seed=1, order_seed=5), CPU)
    assert first.input_shape == (128,) and first.num_classes == 40 and first.num_nodes == 3000
    assert torch.equal(first.features, second.features) and edge_set(first.adjacency) == edge_set(second.adjacency)
    assert torch.equal(first.rows["test"], other.rows["test"]) and not torch.equal(first.rows["train"], other.rows["train"])
    edges = edge_set(first.adjacency)
    assert set(edges) == {(b, a) for a, b in edges} and all(a != b for a, b in edges)
    assert 12 < first.num_edges / first.num_nodes < 16  # about OGBN-Arxiv's mean degree of 13.7
    assert first.split_sizes == {"train": 1920, "val": 480, "test": 600}


# --- training ----------------------------------------------------------------------------------------

def arxiv_config(root, **settings):
    base = {"model": "gin", "dataset": "ogbn-arxiv", "data_dir": str(root), "epochs": 3, "sparsity": 0.5, "device": "cpu"}
    return ExperimentConfig.from_settings({**base, **settings})


@pytest.mark.parametrize("settings, family", [
    ({"freeze_ratio": 0.0}, "dense"),
    ({"freeze_ratio": 0.5}, "frozen"),
    ({"weight_trained": True, "freeze_ratio": 0.0}, "weight_trained"),
])
def test_the_three_gin_families_learn_on_the_tiny_arxiv(arxiv_root, settings, family):
    result = fit(arxiv_config(arxiv_root[0], **settings))
    assert result.family == family and [entry["epoch"] for entry in result.history] == [0, 1, 2, 3]
    # 4 classes used of 40: the untrained model of epoch 0 sits near 1/40; the trained one must beat it on both
    # splits (the same run on the same machine, so no margin that rounding on another CPU kind could move)
    untrained = result.history[0]
    assert result.val_accuracy > untrained["val_accuracy"] and result.test_accuracy > untrained["test_accuracy"]
    if family != "weight_trained":
        total = result.memory.total_weights
        assert total == 378_280 and result.realised_sparsity == math.floor(total * 0.5) / total


class StopAfter(Reporter):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch(self, metrics):
        if metrics["epoch"] == self.epoch:
            raise KeyboardInterrupt


def comparable(history):
    return [{key: value for key, value in entry.items() if key != "seconds"} for entry in history]


def test_graph_resume_after_a_crash_is_bit_identical(arxiv_root, tmp_path):
    config = arxiv_config(arxiv_root[0], freeze_ratio=0.5)
    whole_store, store = DirectoryStore(tmp_path / "whole"), DirectoryStore(tmp_path / "split")
    whole = fit(config, store=whole_store)
    with pytest.raises(KeyboardInterrupt):
        fit(config, reporter=StopAfter(1), store=store)
    resumed = fit(config, store=store)
    assert comparable(resumed.history) == comparable(whole.history)
    final_whole, final_resumed = whole_store.load(), store.load()
    for key, value in final_whole["model"].items():
        assert torch.equal(value, final_resumed["model"][key]), key
    for name in ("exp_avg", "exp_avg_sq"):
        assert torch.equal(final_whole["optimizer"]["state"][0][name], final_resumed["optimizer"]["state"][0][name])
