"""OGBN-Arxiv read by ogb's own code from ogb's on-disk layout (docs/method.md §8–9).

Layout, as ogb 1.3.6 downloads it (``DATA_DIR`` may also be the ``ogbn_arxiv`` folder itself)::

    DATA_DIR/ogbn_arxiv/raw/{edge,num-node-list,num-edge-list,node-feat,node-label}.csv.gz
    DATA_DIR/ogbn_arxiv/split/time/{train,valid,test}.csv.gz

The graph is read by ``ogb.io.read_graph_raw.read_csv_graph_raw``, the reader ogb's
``NodePropPredDataset`` runs on these files, with ogbn-arxiv's settings from ogb's ``master.csv``; the
labels and the official split (``get_idx_split``'s files) are read as ogb reads them (headerless gzip
CSV through pandas). ``NodePropPredDataset`` and ``PygNodePropPredDataset`` themselves are not used:
in ogb 1.3.6 both cache the processed graph as a pickle in the data directory and read it back with a
bare ``torch.load``, which PyTorch >= 2.6 refuses and which would otherwise unpickle whatever file sits
there; both also ask on stdin whether to re-download when ``RELEASE_v1.txt`` is missing. So nothing is
cached and nothing is written into the data directory; every load processes the raw files (tens of
seconds for the real graph).

The directed citation graph is made undirected and coalesced (PyG's ``to_undirected``), no self-loops
are added, and the raw 128-d features are used as they are. ``--download`` fetches ogb's archive with
ogb's own download helpers and unpacks it where ogb would.
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..errors import DatasetError
from .base import locate_or_download
from .graph import GraphData, import_ogb_nodeproppred

if TYPE_CHECKING:  # the configuration sits above the data; this is for the annotations only
    from ..config.specs import DataSpec

log = logging.getLogger(__name__)

NAME = "ogbn-arxiv"
FOLDER = "ogbn_arxiv"  # ogb's folder name: the dataset name with '-' replaced by '_'
RAW_FILES = tuple(f"raw/{name}.csv.gz" for name in ("edge", "num-node-list", "num-edge-list", "node-feat", "node-label"))
SPLIT_FILES = {"train": "split/time/train.csv.gz", "val": "split/time/valid.csv.gz", "test": "split/time/test.csv.gz"}
FEATURES, CLASSES = 128, 40
HOW_TO_GET = "pass --download to fetch it (needs the internet) or --data-dir to point at an existing copy"
# What reading damaged gzip CSV files can raise (pandas' parser errors are ValueErrors).
_READ_ERRORS = (OSError, EOFError, ValueError, RuntimeError, IndexError, KeyError, zlib.error)


def _root(data_dir: str | None) -> Path:
    return Path(data_dir or "data").expanduser()


def find_folder(data_dir: str | None) -> Path:
    """The dataset folder: ``data_dir/ogbn_arxiv`` or ``data_dir`` itself; DatasetError naming what is missing."""
    root = _root(data_dir)
    needed = RAW_FILES + tuple(SPLIT_FILES.values())
    for candidate in (root / FOLDER, root):
        if all((candidate / name).is_file() for name in needed):
            return candidate
    expected = root if root.name == FOLDER else root / FOLDER
    missing = ", ".join(name for name in needed if not (expected / name).is_file())
    found = f"missing: {missing}" if expected.is_dir() else "no such folder"
    raise DatasetError(f"ogbn-arxiv not found: expected {expected}/ with raw/ and split/time/ in ogb's layout ({found}); {HOW_TO_GET}")


def _master_row() -> dict[str, str]:
    """ogbn-arxiv's column of ogb's ``master.csv`` (URL, folder names, reading settings)."""
    import pandas as pd

    master = Path(import_ogb_nodeproppred().__file__).with_name("master.csv")
    return dict(pd.read_csv(master, index_col=0, keep_default_na=False)[NAME])


def _quietly(function, *args, **kwargs):
    """Run an ogb function that prints progress on stdout and stderr; its output goes to the debug log."""
    output = io.StringIO()
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
        result = function(*args, **kwargs)
    log.debug("ogb: %s", output.getvalue().strip())
    return result


def read_arxiv(folder: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """(features, directed edge_index, labels, official split) from ``folder``; DatasetError if a file is damaged."""
    import pandas as pd

    import_ogb_nodeproppred()
    from ogb.io.read_graph_raw import read_csv_graph_raw

    meta = _master_row()
    try:
        graph = _quietly(read_csv_graph_raw, str(folder / "raw"), add_inverse_edge=meta["add_inverse_edge"] == "True")[0]
        labels = pd.read_csv(folder / "raw/node-label.csv.gz", compression="gzip", header=None).values
        splits = {key: pd.read_csv(folder / path, compression="gzip", header=None).values.T[0] for key, path in SPLIT_FILES.items()}
    except _READ_ERRORS as error:
        raise DatasetError(f"ogbn-arxiv files in {folder} are damaged ({type(error).__name__}: {error}); "
                           "restore them or delete the folder and pass --download") from None
    features = graph["node_feat"]
    if features is None or features.ndim != 2 or features.shape[1] != FEATURES:
        shape = None if features is None else features.shape
        raise DatasetError(f"ogbn-arxiv in {folder}: expected {FEATURES} features per node in raw/node-feat.csv.gz, got shape {shape}")
    return (torch.from_numpy(features), torch.from_numpy(graph["edge_index"]), torch.from_numpy(labels.astype("int64")).view(-1),
            {key: torch.from_numpy(index.astype("int64")) for key, index in splits.items()})


def download(data_dir: str | None) -> None:
    """Fetch ogb's ogbn-arxiv archive into ``data_dir`` and unpack it as ``ogbn_arxiv`` (needs the internet)."""
    import_ogb_nodeproppred()
    from ogb.utils.url import download_url, extract_zip

    meta, root = _master_row(), _root(data_dir)
    log.info("downloading ogbn-arxiv into %s", root)
    try:
        archive = _quietly(download_url, meta["url"], str(root))
        _quietly(extract_zip, archive, str(root))
        Path(archive).unlink()
        target = root / FOLDER
        if target.exists():
            shutil.rmtree(target)
        (root / meta["download_name"]).rename(target)
    except (OSError, ValueError, zipfile.BadZipFile, zlib.error) as error:  # URLError is an OSError
        raise DatasetError(f"could not download ogbn-arxiv into {root} ({type(error).__name__}: {error}); "
                           "pass --data-dir to point at an existing copy") from None



def load_ogbn_arxiv_data(spec: DataSpec, device: torch.device) -> GraphData:
    """OGBN-Arxiv on ``device`` with its official split; the seeds of ``spec`` play no part."""
    folder = locate_or_download(spec.data_dir, spec.download, find_folder, download)
    features, edge_index, labels, splits = read_arxiv(folder)
    data = GraphData(NAME, features, edge_index, labels, splits, CLASSES, device, source=f"ogbn-arxiv in {folder}")
    log.info("ogbn-arxiv from %s: %d nodes, %d directed edges after symmetrising, splits %s",
             folder, data.num_nodes, data.num_edges, data.split_sizes)
    return data
