"""The package's shape: the core reached through one module, statuses spelled only by the core,
small modules (packages/prefect-dbos/README.md, "Development")."""

from __future__ import annotations

import ast
from pathlib import Path

from prefect_dbos._core import DBOSWorkflowStatus

PACKAGE = Path(__file__).resolve().parent.parent / "prefect_dbos"


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_only_the_adapter_imports_the_core() -> None:
    """One contract, from the core: nothing but prefect_dbos/_core.py imports dbos_orchestrator (or dbos_airflow)."""
    found = [
        f"{path.name}: {name}"
        for path in _modules()
        if path.name != "_core.py"
        for name in _imports(path)
        if name.split(".")[0] in ("dbos_orchestrator", "dbos_airflow", "airflow")
    ]
    assert found == []
    assert not any(name.startswith(("dbos_airflow", "airflow")) for name in _imports(PACKAGE / "_core.py"))


def test_no_status_string_in_the_package() -> None:
    statuses = {s.value for s in DBOSWorkflowStatus}
    found = [
        f"{path.name}:{node.lineno} {node.value!r}"
        for path in _modules()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and node.value in statuses
    ]
    assert found == []


def test_modules_stay_small() -> None:
    assert [p.name for p in _modules() if len(p.read_text().splitlines()) > 400] == []
