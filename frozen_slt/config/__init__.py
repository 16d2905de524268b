"""What a run is asked to do: typed, frozen, validated configuration.

- experiment: :class:`~frozen_slt.config.experiment.ExperimentConfig`, one run's settings and its hash;
- specs: its three sections (ticket, data, training recipe) as frozen dataclasses;
- checks: the one validator toolkit, shared with the sweep specs of ``sweeps/``;
- settings: reading settings from files and ``key=value`` strings;
- recipes: the default settings of a model on a dataset (docs/method.md §9);
- points: the vocabulary of sweeps (source families, a search point → a config), without Ray;
- degenerate: what the ticket of a legal setting that leaves nothing to search is.

Everything here validates before any tensor exists; a bad value is a one-line
:class:`~frozen_slt.errors.ConfigError`.
"""
