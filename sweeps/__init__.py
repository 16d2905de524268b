"""Sweeps over sparsity, freezing ratio and lock share, recorded in MLflow as Pareto fronts."""
