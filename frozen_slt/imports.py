"""Code named by an import path, ``package.module:attribute``: parsing, who may name it, importing it.

A model or a dataset may be given as an import path (docs/method.md §13). Importing a module runs its
code, so an import path is imported only when the command line named it (:func:`allow`, called by the
``frozen-slt`` command and the sweep driver for their ``--model`` and ``--dataset`` flags) or when it lies
in a library the caller trusts (the model zoos of torchvision and PyTorch Geometric). A path that a file
names (a ticket, a run directory's ``config.json``, a settings or sweep file) is data: :func:`load_object`
refuses it in one line that says how to allow it.
"""

from __future__ import annotations

import importlib
import inspect
import re
from typing import Any, Callable, Mapping

from .errors import ImportPathError

_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_PATH = re.compile(rf"^({_IDENTIFIER}(?:\.{_IDENTIFIER})*):({_IDENTIFIER}(?:\.{_IDENTIFIER})*)$")

#: Import paths the command line of this process named (:func:`allow`).
_ALLOWED: set[str] = set()


def is_import_path(text: Any) -> bool:
    """Whether ``text`` is meant as an import path (it holds a colon); :func:`split` checks its form."""
    return isinstance(text, str) and ":" in text


def split(path: str, what: str) -> tuple[str, str]:
    """``"pkg.mod:obj.attr"`` → ``("pkg.mod", "obj.attr")``; ImportPathError for any other form."""
    found = _PATH.match(path) if isinstance(path, str) else None
    if found is None:
        raise ImportPathError(f"{what} {path!r} is not an import path: write package.module:callable "
                              "(dotted Python names, one colon)")
    return found.group(1), found.group(2)


def allow(path: str) -> None:
    """Let this process import ``path``: its command line named it (``--model``, ``--dataset``)."""
    _ALLOWED.add(path)


def is_allowed(path: str) -> bool:
    return path in _ALLOWED


def require_allowed(path: str, what: str, flag: str) -> None:
    """ImportPathError (one line, saying how to allow it) unless the command line named ``path``."""
    if path not in _ALLOWED:
        raise ImportPathError(
            f"{what} {path!r} is code that the command line did not name: frozen-slt imports a {what} by import path "
            f"only when the command line names it (tickets, run directories, settings and sweep files are data); "
            f"add {flag} {path} to allow it")


def load_object(path: str, what: str, flag: str, trusted: bool = False) -> Any:
    """The object ``path`` names, imported; ImportPathError (one line) when the command line did not name it
    (unless ``trusted``), when its module does not import or when it has no such attribute. ``flag`` is the
    command-line option that allows it (``--model``), for the message."""
    module_name, attribute = split(path, what)
    if not trusted:
        require_allowed(path, what, flag)
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as error:  # noqa: BLE001 - importing runs the module's code, which may raise anything
        raise ImportPathError(f"{what} {path!r}: module {module_name} cannot be imported "
                              f"({type(error).__name__}: {first_line(error)})") from None
    for name in attribute.split("."):
        if not hasattr(target, name):
            raise ImportPathError(f"{what} {path!r}: {getattr(target, '__name__', module_name)} has no attribute {name!r}")
        target = getattr(target, name)
    if not callable(target):
        raise ImportPathError(f"{what} {path!r} is {type(target).__name__}, not a callable")
    return target


def first_line(error: BaseException) -> str:
    """The first line of an exception's message, cut to 200 characters (messages of foreign code run long)."""
    text = (str(error).strip().splitlines() or [""])[0]
    return text if len(text) <= 200 else text[:197] + "..."


def parameters(function: Callable) -> tuple[dict[str, inspect.Parameter], bool]:
    """``function``'s keyword-capable parameters by name, and whether it also takes ``**kwargs``."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # a builtin without a signature: take it as accepting anything
        return {}, True
    named = {name: p for name, p in signature.parameters.items()
             if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}
    return named, any(p.kind == inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())


def check_arguments(function: Callable, arguments: Mapping[str, Any], label: str, flag: str) -> None:
    """Refuse, naming them, arguments ``function`` does not take and required ones that are missing.

    ``label`` names the callable in the message; ``flag`` is the option that gives arguments (``--model-arg``).
    """
    named, var_keyword = parameters(function)
    unknown = sorted(set(arguments) - set(named)) if not var_keyword else []
    if unknown:
        takes = ", ".join(named) or "no keyword arguments"
        raise ImportPathError(f"{label} takes no argument {', '.join(map(repr, unknown))}; it takes: {takes}")
    missing = [name for name, p in named.items() if p.default is inspect.Parameter.empty and name not in arguments]
    if missing:
        raise ImportPathError(f"{label} needs {', '.join(missing)}: give {'it' if len(missing) == 1 else 'them'} with "
                              f"{' '.join(f'{flag} {name}=VALUE' for name in missing)}")


def call(function: Callable, arguments: Mapping[str, Any], label: str, flag: str) -> Any:
    """``function(**arguments)`` after :func:`check_arguments`; anything it raises becomes one line naming it."""
    check_arguments(function, arguments, label, flag)
    try:
        return function(**arguments)
    except Exception as error:  # noqa: BLE001 - foreign code may raise anything; the user gets one line
        raise ImportPathError(f"{label} raised {type(error).__name__}: {first_line(error)}") from None
