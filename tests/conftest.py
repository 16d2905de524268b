import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the helper modules (helpers, hostile, sweep_runs, ...)



@pytest.fixture(autouse=True)
def _keep_torch_thread_count():
    """Restore PyTorch's thread count after every test: a test that runs a benchmark sets it to one, and a
    later test comparing an in-process run with a subprocess's would then compare two thread counts,
    whose float rounding may differ."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _forget_allowed_import_paths():
    """A test that lets this process import a path (as ``--model`` does) lets only itself: the next test starts
    with the allow-list it had."""
    from frozen_slt import imports

    allowed = set(imports._ALLOWED)
    yield
    imports._ALLOWED.clear()
    imports._ALLOWED.update(allowed)


@pytest.fixture
def marked_env(tmp_path):
    """ENV with a unique mark every Ray process of the sweep inherits, the system temp dir in tmp_path, and
    Ray's own temp dir short (its socket paths must stay under 108 characters) and private to the test."""
    from ray_processes import (
        MARK,  # here, not at the top: most tests need neither psutil nor MLflow
    )
    from sweep_runs import ENV

    ray_tmp = tempfile.mkdtemp(prefix="rt-")
    (tmp_path / "tmp").mkdir()
    yield {**ENV, MARK: uuid.uuid4().hex, "TMPDIR": str(tmp_path / "tmp"), "RAY_TMPDIR": ray_tmp}
    shutil.rmtree(ray_tmp, ignore_errors=True)
