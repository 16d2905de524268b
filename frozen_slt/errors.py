"""Every error the project raises on purpose, in one place.

:class:`FrozenSLTError` and its subclasses are bad input: the message names the problem and what is
allowed, and the command-line entry points print it as one line and exit with status 2.
:class:`TrainingDivergedError` and :class:`WriteFailedError` are not bad input (the run itself failed,
or the system could not store its files) and exit with status 1, also as one line.
"""


def with_article(word: str) -> str:
    """``"an image"``, ``"a graph"``, ``"an int"``: a noun that a message builds from a value, with its article."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


class FrozenSLTError(ValueError):
    """Bad input: the message names the problem and what is allowed."""


class ConfigError(FrozenSLTError):
    """A configuration value that is not allowed; the message names the field and what is allowed."""


class InfeasibleSettingError(FrozenSLTError):
    """A ticket setting that violates a bound of docs/method.md §2 (or a ratio outside [0, 1])."""


class AllocationError(FrozenSLTError):
    """An allocation rule produced a per-layer fraction outside [0, 1] by more than float noise."""


class UnknownNameError(FrozenSLTError):
    """A name that is not in a registry; the message lists the valid names."""


class ImportPathError(FrozenSLTError):
    """Code named by an import path (a model or a dataset) that does not import, is not what was expected, or
    that a file names without the command line naming it too (docs/method.md §13)."""


class ModelDatasetMismatchError(FrozenSLTError):
    """A model asked to run on inputs it was not built for."""


class DatasetError(FrozenSLTError):
    """A dataset that is missing, incomplete or corrupt; the message says what was expected where."""


class CorruptCheckpointError(FrozenSLTError):
    """A checkpoint file that is truncated, altered or not a checkpoint at all."""


class RunDirectoryError(FrozenSLTError):
    """A run directory that does not belong to the requested config, or is not a run directory."""


class TicketFileError(FrozenSLTError):
    """A ticket file that is missing, truncated, altered, of another format or version, or that cannot be
    rebuilt here (its regenerated random weights differ from the ones it was taken from)."""


class OutputPathError(FrozenSLTError):
    """An output path the user named that cannot be written as a regular file in an existing folder."""


class SweepConfigError(FrozenSLTError):
    """A sweep configuration value that is not allowed."""


class SweepError(FrozenSLTError):
    """A sweep that cannot start as asked (cluster, resources, state)."""


class TrainingDivergedError(RuntimeError):
    """Training produced NaN or infinite values (loss, scores, threshold or weights), or a mask that its
    sparsity does not allow: the run cannot produce a meaningful ticket."""


class WriteFailedError(OSError):
    """Writing a file failed (disk full, file too large, I/O error); the message names the file and the
    system's reason. An ``OSError``, so code that handles those keeps handling it."""
