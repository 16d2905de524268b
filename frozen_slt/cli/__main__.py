"""``python -m frozen_slt.cli``: the same as the ``frozen-slt`` command."""

import sys

from . import main

sys.exit(main())
