"""The package's shape: statuses spelled once, small modules (the layers: test_layers.py)."""

from __future__ import annotations

import ast
from pathlib import Path

from dbos_airflow.status import DBOSWorkflowStatus

PACKAGE = Path(__file__).resolve().parents[2] / "dbos_airflow"
STATUSES = {s.value for s in DBOSWorkflowStatus}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_status_string_outside_the_status_module() -> None:
    found = []
    for path in _modules():
        if path.name == "status.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in STATUSES:
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.value!r}")
    assert found == []


def test_modules_stay_small() -> None:
    assert [p.name for p in _modules() if len(p.read_text().splitlines()) > 400] == []
