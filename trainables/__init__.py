"""Ray Tune adapters around :func:`frozen_slt.training.loop.fit` (reporting, checkpoints, resources)."""
