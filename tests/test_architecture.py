"""Layering rules of design.md: the library is plain PyTorch and never imports ray, optuna or mlflow."""

import ast
from pathlib import Path

FORBIDDEN = {"ray", "optuna", "mlflow"}
LIBRARY = Path(__file__).resolve().parents[1] / "frozen_slt"


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in ("import_module", "__import__"):
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                roots.add(node.args[0].value.split(".")[0])
    return roots


def test_library_never_imports_sweep_tools():
    files = sorted(LIBRARY.rglob("*.py"))
    assert len(files) > 10
    offenders = {str(path.relative_to(LIBRARY)): imported_roots(path) & FORBIDDEN for path in files}
    assert {name: hits for name, hits in offenders.items() if hits} == {}


def test_the_checker_catches_an_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import os\nfrom ray import tune\nimport importlib\nimportlib.import_module('mlflow.tracking')\n")
    assert imported_roots(sample) & FORBIDDEN == {"ray", "mlflow"}
