import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the fake_datasets helpers


@pytest.fixture(autouse=True)
def _keep_torch_thread_count():
    """Restore PyTorch's thread count after every test: a test that runs a benchmark sets it to one, and a
    later test comparing an in-process run with a subprocess's would then compare two thread counts,
    whose float rounding may differ."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
