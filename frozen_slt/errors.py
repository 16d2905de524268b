"""The one base class of every user-facing error; the CLI turns it into a one-line message and exit 2."""


class FrozenSLTError(ValueError):
    """Bad input: the message names the problem and what is allowed."""
