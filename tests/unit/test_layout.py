"""The package's shape: statuses spelled once, layers that do not import upwards, small modules."""

from __future__ import annotations

import ast
from pathlib import Path

from dbos_airflow.status import DBOSWorkflowStatus

PACKAGE = Path(__file__).resolve().parents[2] / "dbos_airflow"
STATUSES = {s.value for s in DBOSWorkflowStatus}
# Modules a second front end (Prefect) reuses: no Airflow import at module level.
AIRFLOW_FREE = [
    "client.py",
    "status.py",
    "values.py",
    "waiting/events.py",
    "waiting/waiter.py",
    "waiting/probe.py",
    "waiting/feed.py",
    "utils/bulk.py",
    "ownership.py",
]


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


def test_core_modules_do_not_import_airflow() -> None:
    for name in AIRFLOW_FREE:
        tree = ast.parse((PACKAGE / name).read_text())
        imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        names = [a.name for n in imports if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in imports if isinstance(n, ast.ImportFrom)]
        assert not [m for m in names if m.split(".")[0] == "airflow"], name


def test_modules_stay_small() -> None:
    assert [p.name for p in _modules() if len(p.read_text().splitlines()) > 400] == []
