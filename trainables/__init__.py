"""Ray Tune adapters around :func:`frozen_slt.train.fit` (reporting, checkpoints, resources)."""
