"""The dependency arrows of DESIGN §2 hold in the code: ``events`` never imports ``pipeline``, ``cameras`` imports
no other domain app, and so on. Imports for type checking only (``if TYPE_CHECKING:``) carry no run-time
dependency and are not counted; imports inside functions are."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT_PACKAGES = {"hsi", "cameras", "events", "alerts", "media_serving", "pipeline", "system"}
CROSS_CUTTING = {"hsi", "system"}  # settings, API conventions, audit: used by every app
ALLOWED = {
    "cameras": set(),
    "events": {"cameras"},
    "alerts": {"events", "cameras"},
    "media_serving": {"cameras", "events"},
}


def _is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _is_dynamic_import(node: ast.AST) -> bool:
    """``importlib.import_module("x.y")`` / ``import_module("x.y")`` / ``__import__("x")`` with a literal name."""
    if not isinstance(node, ast.Call) or not node.args or not isinstance(node.args[0], ast.Constant):
        return False
    name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
    return name in {"import_module", "__import__"} and isinstance(node.args[0].value, str)


def run_time_imports(tree: ast.AST) -> set[str]:
    """Top-level package names imported anywhere in ``tree``, ``if TYPE_CHECKING:`` bodies left out."""
    found: set[str] = set()
    pending = [tree]
    while pending:
        node = pending.pop()
        if _is_type_checking_block(node):
            pending.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
        elif _is_dynamic_import(node):
            found.add(node.args[0].value.split(".")[0])
        pending.extend(ast.iter_child_nodes(node))
    return found


def imports_of_app(app: str) -> dict[str, set[str]]:
    """{module path: the other project packages it imports} for every module of ``app`` (migrations aside)."""
    result = {}
    for path in sorted((ROOT / app).rglob("*.py")):
        if "migrations" in path.parts:
            continue
        imported = run_time_imports(ast.parse(path.read_text(), filename=str(path)))
        result[str(path.relative_to(ROOT))] = (imported & PROJECT_PACKAGES) - {app} - CROSS_CUTTING
    return result


@pytest.mark.parametrize("app", sorted(ALLOWED))
def test_an_app_imports_only_the_apps_its_arrows_point_to(app):
    forbidden = {path: sorted(packages - ALLOWED[app]) for path, packages in imports_of_app(app).items()}

    assert {path: packages for path, packages in forbidden.items() if packages} == {}


def test_the_import_scan_sees_imports_inside_functions_and_skips_type_checking_blocks():
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from pipeline.models import Batch\nelse:\n    import alerts\n"
        "def f():\n    from pipeline.dispatch import enqueue\n"
        "def g():\n    return importlib.import_module('media_serving.views')\n"
    )

    assert run_time_imports(tree) == {"typing", "alerts", "pipeline", "media_serving"}
