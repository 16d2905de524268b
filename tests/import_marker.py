"""A module whose import leaves a trace: the file named by $IMPORT_MARKER, if set. A test that must never import
it (a file naming it is data) checks that the file is absent afterwards."""

import os
from pathlib import Path

if os.environ.get("IMPORT_MARKER"):
    Path(os.environ["IMPORT_MARKER"]).touch()


def build(num_classes: int = 10):
    """A model for 3x8x8 inputs."""
    from torch import nn

    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, num_classes))
