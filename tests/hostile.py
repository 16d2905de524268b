"""Objects whose pickle runs code when loaded by a plain unpickler: for tests that loading refuses them."""

from __future__ import annotations


class CreatesFile:
    """Pickles as a call to ``open(path, "w")``: a plain ``pickle.load`` would create ``path``."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return open, (str(self.path), "w")


class EvalCreatesFile:
    """Pickles as ``builtins.eval`` of code that creates ``path``."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return eval, (f"open({str(self.path)!r}, 'w').close()",)


class SystemCreatesFile:
    """Pickles as ``os.system("touch path")`` (``posix.system`` on POSIX)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.path}",)
