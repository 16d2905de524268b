"""Layering rules of design.md: the arrows point one way, sweeps -> trainables -> frozen_slt.

The library is plain PyTorch: it imports neither ray, optuna nor mlflow, nor the project's own
`trainables` or `sweeps`; `trainables` never imports `sweeps`. Every way of importing counts: plain and
aliased imports, relative imports that climb out of the package, importlib.import_module and
__import__ (under any alias), and a dynamic import whose name is not a literal (it cannot be checked,
so it is refused).
"""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SWEEP_TOOLS = {"ray", "optuna", "mlflow"}
RULES = {  # package -> the top-level modules it may never import
    "frozen_slt": SWEEP_TOOLS | {"trainables", "sweeps"},
    "trainables": {"sweeps"},
}
IMPORT_FUNCTIONS = {"import_module", "__import__"}
NOT_A_LITERAL = "<dynamic import of a non-literal name>"


def _module_name(path: Path, root: Path) -> list[str]:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _package_of(path: Path, root: Path) -> list[str]:
    module = _module_name(path, root)
    return module if path.name == "__init__.py" else module[:-1]


def _resolve_relative(package: list[str], level: int, module: str | None) -> list[str]:
    """The absolute dotted parts of ``from <level dots><module> import ...`` inside ``package``;
    a relative import that climbs above the top level resolves to the names it would reach from there."""
    base = package[: max(0, len(package) - (level - 1))]
    return base + (module.split(".") if module else [])


def _import_function_names(tree: ast.AST) -> set[str]:
    """Local names bound to importlib.import_module or __import__ (``from importlib import import_module as im``)."""
    names = set(IMPORT_FUNCTIONS)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in ("importlib", "builtins"):
            names.update(alias.asname or alias.name for alias in node.names if alias.name in IMPORT_FUNCTIONS)
    return names


def _called_name(node: ast.Call) -> str:
    return getattr(node.func, "id", None) or getattr(node.func, "attr", "")


def imported_roots(path: Path, root: Path = REPO) -> set[str]:
    """Top-level names of every module ``path`` imports, statically or through an import function."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _package_of(path, root)
    functions = _import_function_names(tree)
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                roots.add(node.module.split(".")[0])
                continue
            resolved = _resolve_relative(package, node.level, node.module)
            if resolved:
                roots.add(resolved[0])
            else:  # `from .. import x` at the top: each name is a top-level module
                roots.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Call) and _called_name(node) in functions and node.args:
            roots.add(_dynamic_root(node, package))
    return roots


def _dynamic_root(node: ast.Call, package: list[str]) -> str:
    name = node.args[0]
    if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
        return NOT_A_LITERAL
    if not name.value.startswith("."):
        return name.value.split(".")[0]
    anchor = next((k.value for k in node.keywords if k.arg == "package"), None)
    anchor = node.args[1] if anchor is None and len(node.args) > 1 else anchor
    if isinstance(anchor, ast.Constant) and isinstance(anchor.value, str):
        level = len(name.value) - len(name.value.lstrip("."))
        resolved = _resolve_relative(anchor.value.split("."), level, name.value.lstrip(".") or None)
        return resolved[0] if resolved else NOT_A_LITERAL
    return NOT_A_LITERAL if isinstance(anchor, ast.AST) else package[0]


@pytest.mark.parametrize("package", sorted(RULES))
def test_imports_point_one_way(package):
    files = sorted((REPO / package).rglob("*.py"))
    assert files
    forbidden = RULES[package] | {NOT_A_LITERAL}
    offenders = {str(path.relative_to(REPO)): imported_roots(path) & forbidden for path in files}
    assert {name: hits for name, hits in offenders.items() if hits} == {}


def test_sweeps_do_import_the_layers_below():  # the rules above are checked against real imports
    roots = set().union(*(imported_roots(path) for path in (REPO / "sweeps").rglob("*.py")))
    assert {"frozen_slt", "trainables", "ray", "optuna", "mlflow"} <= roots


SAMPLE = """
import os
import ray as r
from optuna import samplers as s
import importlib, importlib as il
from importlib import import_module as load
il.import_module("mlflow.tracking")
load("trainables.points")
__import__("sweeps")
importlib.import_module(name)
from ... import sweeps
from .. import trainables
from ..points import thing
from .sibling import other
importlib.import_module("..runner", package="frozen_slt.cli")
"""


@pytest.mark.parametrize("location, expected", [
    # frozen_slt/cli/sample.py: `...` climbs above the top level, `..` is frozen_slt
    ("frozen_slt/cli", {"os", "ray", "optuna", "importlib", "mlflow", "trainables", "sweeps", NOT_A_LITERAL, "frozen_slt"}),
    # trainables/sub/sample.py: `..points` is trainables.points, `from .. import trainables` reaches the root
    ("trainables/sub", {"os", "ray", "optuna", "importlib", "mlflow", "trainables", "sweeps", NOT_A_LITERAL, "frozen_slt"}),
])
def test_the_checker_sees_every_kind_of_import(tmp_path, location, expected):
    sample = tmp_path / location / "sample.py"
    sample.parent.mkdir(parents=True)
    sample.write_text(SAMPLE)
    assert imported_roots(sample, tmp_path) == expected


def test_a_relative_import_out_of_the_library_is_caught(tmp_path):
    sample = tmp_path / "frozen_slt" / "sample.py"
    sample.parent.mkdir()
    sample.write_text("from ..sweeps import runner\nfrom . import layers\n")
    assert imported_roots(sample, tmp_path) == {"sweeps", "frozen_slt"}


def test_importing_the_cli_and_the_training_loop_loads_no_sweep_tool():
    probe = ("import sys, frozen_slt.cli, frozen_slt.train\n"
             f"print(sorted({{name.split('.')[0] for name in sys.modules}} & set({sorted(SWEEP_TOOLS | {'trainables', 'sweeps'})!r})))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
