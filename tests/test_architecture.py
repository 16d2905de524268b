"""The arrows of docs/architecture.md point one way: sweeps -> trainables -> frozen_slt, and inside the
library from each subpackage only down to the ones below it.

The library is plain PyTorch: it imports neither ray, optuna nor mlflow, nor the project's own
`trainables` or `sweeps`; `trainables` never imports `sweeps`. Inside `frozen_slt`, :data:`LAYERS` says
which subpackages each may import; the few modules directly under `frozen_slt` (:data:`BASE`) import
nothing but one another. Every way of importing counts: plain and aliased imports, relative imports that
climb out of the package, importlib.import_module and __import__ (under any alias), and a dynamic import
whose name is not a literal (it cannot be checked, so it is refused). Imports under ``if TYPE_CHECKING:``
are for annotations only and do not count between subpackages.
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


def _nodes(tree: ast.AST, annotations: bool):
    """Every node of ``tree``; without ``annotations``, not those under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            checking = isinstance(child, ast.If) and getattr(child.test, "id", getattr(child.test, "attr", "")) == "TYPE_CHECKING"
            if annotations or not checking:
                stack.append(child)


def imported_modules(path: Path, root: Path = REPO, annotations: bool = True) -> set[tuple[str, ...]]:
    """The dotted parts of every module ``path`` imports, statically or through an import function (a name
    imported from a package counts as that package's module), as far as the import says."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _package_of(path, root)
    functions = _import_function_names(tree)
    modules = set()
    for node in _nodes(tree, annotations):
        if isinstance(node, ast.Import):
            modules.update(tuple(alias.name.split(".")) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            resolved = node.module.split(".") if node.level == 0 else _resolve_relative(package, node.level, node.module)
            if resolved:
                modules.update(tuple(resolved) + (alias.name,) for alias in node.names)
            else:  # `from .. import x` at the top: each name is a top-level module
                modules.update((alias.name,) for alias in node.names)
        elif isinstance(node, ast.Call) and _called_name(node) in functions and node.args:
            modules.add(tuple(_dynamic_root(node, package).split(".")))
    return modules


def imported_roots(path: Path, root: Path = REPO) -> set[str]:
    """Top-level names of every module ``path`` imports, statically or through an import function."""
    return {module[0] for module in imported_modules(path, root)}


def _dynamic_root(node: ast.Call, package: list[str]) -> str:
    name = node.args[0]
    if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
        return NOT_A_LITERAL
    if not name.value.startswith("."):
        return name.value
    anchor = next((k.value for k in node.keywords if k.arg == "package"), None)
    anchor = node.args[1] if anchor is None and len(node.args) > 1 else anchor
    if isinstance(anchor, ast.Constant) and isinstance(anchor.value, str):
        level = len(name.value) - len(name.value.lstrip("."))
        resolved = _resolve_relative(anchor.value.split("."), level, name.value.lstrip(".") or None)
        return ".".join(resolved) if resolved else NOT_A_LITERAL
    return NOT_A_LITERAL if isinstance(anchor, ast.AST) else ".".join(package)


#: The one module that imports code named at run time (a model or dataset by import path, docs/method.md §13),
#: only what the command line named or a zoo holds: its dynamic import cannot be checked here, and no other may.
DYNAMIC_IMPORTER = "frozen_slt/imports.py"


@pytest.mark.parametrize("package", sorted(RULES))
def test_imports_point_one_way(package):
    files = sorted((REPO / package).rglob("*.py"))
    assert files
    forbidden = RULES[package] | {NOT_A_LITERAL}
    offenders = {str(path.relative_to(REPO)): imported_roots(path) & (forbidden - ({NOT_A_LITERAL} if
                 str(path.relative_to(REPO)) == DYNAMIC_IMPORTER else set())) for path in files}
    assert {name: hits for name, hits in offenders.items() if hits} == {}


def test_only_the_import_path_module_imports_names_given_at_run_time():
    dynamic = {str(path.relative_to(REPO)) for path in (REPO / "frozen_slt").rglob("*.py")
               if NOT_A_LITERAL in imported_roots(path)}
    assert dynamic == {DYNAMIC_IMPORTER}


#: Inside the library: each subpackage and the subpackages it may import (besides itself and BASE), bottom up.
LAYERS = {
    "fused": set(),
    "method": {"fused"},
    "models": {"method"},
    "data": {"method"},
    "config": {"method", "models", "data"},
    "training": {"config", "method", "fused", "models", "data"},
    "ticket": {"training", "config", "method", "models", "data"},
    "cli": {"ticket", "training", "config", "method", "models", "data", "fused"},
}
#: The modules directly under frozen_slt, which any subpackage may import and which import only one another.
BASE = {"__init__", "errors", "registry", "files", "nesting", "imports"}


def library_part(module: tuple[str, ...]) -> str | None:
    """The subpackage or base module of ``frozen_slt`` a dotted module belongs to (None: outside the library)."""
    if module[0] != "frozen_slt":
        return None
    return module[1] if len(module) > 1 else "__init__"


def test_the_library_has_these_parts_and_no_others():
    parts = {path.stem if path.is_file() else path.name for path in (REPO / "frozen_slt").iterdir()
             if path.suffix == ".py" or (path / "__init__.py").is_file()}
    assert parts == set(LAYERS) | BASE


@pytest.mark.parametrize("part", sorted(LAYERS) + sorted(BASE - {"__init__"}))
def test_the_library_imports_only_the_parts_below(part):
    location = REPO / "frozen_slt" / part
    files = sorted(location.rglob("*.py")) if location.is_dir() else [location.with_suffix(".py")]
    allowed = ({part} | LAYERS[part] | BASE) if part in LAYERS else BASE
    offenders = {}
    for path in files:
        parts = {library_part(module) for module in imported_modules(path, annotations=False)} - {None}
        if parts - allowed:
            offenders[str(path.relative_to(REPO))] = sorted(parts - allowed)
    assert offenders == {}


def test_the_layering_is_checked_against_real_imports():  # the subpackages do import the ones they may
    parts = {library_part(module) for path in (REPO / "frozen_slt" / "training").rglob("*.py")
             for module in imported_modules(path, annotations=False)}
    assert {"config", "method", "fused", "models", "data", "training"} <= parts


def test_annotations_only_imports_do_not_count(tmp_path):
    sample = tmp_path / "frozen_slt" / "data" / "sample.py"
    sample.parent.mkdir(parents=True)
    sample.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..config.specs import DataSpec\n"
                      "from ..method import seeding\n")
    assert imported_modules(sample, tmp_path, annotations=False) == {("typing", "TYPE_CHECKING"),
                                                                     ("frozen_slt", "method", "seeding")}
    assert ("frozen_slt", "config", "specs", "DataSpec") in imported_modules(sample, tmp_path)


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
    probe = ("import sys, frozen_slt.cli, frozen_slt.training.loop\n"
             f"print(sorted({{name.split('.')[0] for name in sys.modules}} & set({sorted(SWEEP_TOOLS | {'trainables', 'sweeps'})!r})))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
