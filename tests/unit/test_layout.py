"""The package's shape: statuses spelled once, small modules (the layers: test_layers.py)."""

from __future__ import annotations

import ast
from pathlib import Path

from dbos_orchestrator.status import DBOSWorkflowStatus

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = [ROOT / "dbos_airflow", ROOT / "packages" / "dbos-orchestrator" / "dbos_orchestrator"]
STATUSES = {s.value for s in DBOSWorkflowStatus}


def _modules() -> list[Path]:
    return sorted(path for package in PACKAGES for path in package.rglob("*.py"))


def test_no_status_string_outside_the_status_module() -> None:
    found = []
    for path in _modules():
        if path.name == "status.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in STATUSES:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}")
    assert found == []


def test_modules_stay_small() -> None:
    assert [p.name for p in _modules() if len(p.read_text().splitlines()) > 400] == []


def test_shared_helpers_are_imported_without_path_tricks() -> None:
    """docs/architecture.md, "Tests": tests, bench and scripts import their shared helpers from the
    installed ``dbos_testkit`` package; no file edits ``sys.path`` and pytest adds no ``pythonpath``."""
    folders = ("tests", "bench", "scripts", "packages", "dags", "examples")
    found = []
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "node_modules" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.Attribute)
                    and node.attr in {"insert", "append", "extend"}
                    and isinstance(node.value, ast.Attribute)
                    and node.value.attr == "path"
                    and isinstance(node.value.value, ast.Name)
                    and node.value.value.id == "sys"
                ):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []
    for pyproject in [ROOT / "pyproject.toml", *sorted((ROOT / "packages").glob("*/pyproject.toml"))]:
        assert "pythonpath" not in pyproject.read_text(), pyproject
