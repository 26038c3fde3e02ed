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


# The adapter, and modules written in the final layout (they import dbos_orchestrator directly;
# _core.py is being removed).
CORE_IMPORTERS = {"_core.py", "approvals.py"}


def test_only_the_adapter_imports_the_core() -> None:
    """One contract, from the core: nothing but prefect_dbos/_core.py imports dbos_orchestrator (or dbos_airflow)."""
    found = [
        f"{path.name}: {name}"
        for path in _modules()
        for name in _imports(path)
        if name.split(".")[0] in ("dbos_airflow", "airflow")
        or (name.split(".")[0] == "dbos_orchestrator" and path.name not in CORE_IMPORTERS)
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


def test_the_p11_figure_measures_in_this_venv() -> None:
    """bench/p11_prefect.py (``python -m bench p11``) runs its measuring here, in the Prefect venv: the
    module and bench/harness.py import without Airflow, and its rows judge the goals."""
    import subprocess
    import sys

    check = """
import sys
from bench import p11_prefect as p11
assert "airflow" not in sys.modules and "dbos_airflow" not in sys.modules
fast = [0.01 * i for i in range(1, 101)]
side = {"statements_per_s": 10.0, "server_xacts_per_s_net": 10.0, "baseline_xacts_per_s": 50.0}
for name in ("stamp_to_returned", "commit_lag", "committed_to_returned", "committed_to_seen",
             "seen_to_body_returned", "body_to_task_returned"):
    side[name] = fast
data = {"enqueue_and_wait_s": {"floor": [0.1] * 3, "dbos": [0.3] * 3}, "spread_s": 20, "runs": 3,
        "plain": {**side, "statements_per_s": 1000.0}, "ours": side}
rows = p11.rows_of(data)
assert [r.met for r in rows] == ["met", "met", "", "MISSED", ""], [r.met for r in rows]
data["ours_quiet"] = {**side, "stamp_to_returned": [0.01] * 100}
assert [r.met for r in p11.rows_of(data)][5:] == ["met"], [r.met for r in p11.rows_of(data)]
data["enqueue_and_wait_s"]["dbos"] = [0.5] * 3
assert p11.rows_of(data)[0].met == "MISSED"
"""
    root = PACKAGE.parent.parent.parent
    done = subprocess.run([sys.executable, "-c", check], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
