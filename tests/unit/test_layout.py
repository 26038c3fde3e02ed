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
    """One concept per module, under ~400 lines: past 410 it is split."""
    assert [p.name for p in _modules() if len(p.read_text().splitlines()) > 410] == []


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


# Where a newcomer looks for a module's unit tests: <tests>/<folder>/test_<module>.py (test_package.py
# for a package's __init__.py), the source tree mirrored.
MIRRORS = {
    ROOT / "dbos_airflow": ROOT / "tests" / "unit",
    ROOT / "packages" / "dbos-orchestrator" / "dbos_orchestrator": ROOT / "packages" / "dbos-orchestrator" / "tests",
}
# Modules with logic and no unit test file yet: what they do needs a DBOS worker, Postgres or a running
# Airflow, so the named suite is where their behaviour is tested today. A ratchet: a module leaves this
# list when it gets its unit test file (test_no_module_is_exempt_without_need fails until it does), and a
# new module with logic cannot join it silently.
TESTED_ELSEWHERE = {
    "packages/dbos-orchestrator/dbos_orchestrator/batches.py": "tests/test_batch_waits.py",
    "dbos_airflow/contract/streams.py": "tests/integration/test_streams.py",
    "dbos_airflow/operators/streams.py": "tests/integration/test_streams.py",
    "dbos_airflow/plugin/streams.py": "tests/integration/test_streams.py",
    "dbos_airflow/sensors/streams.py": "tests/integration/test_streams.py",
    "dbos_airflow/triggers/follow.py": "tests/integration/test_streams.py",
    "dbos_airflow/triggers/streams.py": "tests/integration/test_streams.py",
    "packages/dbos-orchestrator/dbos_orchestrator/store/streams.py": "tests/integration/test_streams.py",
    "packages/dbos-orchestrator/dbos_orchestrator/waiting/streams.py": "tests/integration/test_streams.py",
    "dbos_airflow/operators/lineage.py": "tests/integration/test_lineage.py",
    "dbos_airflow/operators/queues.py": "tests/integration/test_operations.py",
    "dbos_airflow/operators/retention.py": "tests/integration/test_operations.py",
    "dbos_airflow/operators/schedules.py": "tests/integration/test_operations.py",
    "dbos_airflow/operators/versions.py": "tests/integration/test_operations.py",
    "dbos_airflow/sensors/queues.py": "tests/integration/test_operations.py",
    "packages/dbos-orchestrator/dbos_orchestrator/operations/queues.py": "tests/integration/test_operations.py",
    "packages/dbos-orchestrator/dbos_orchestrator/operations/retention.py": "tests/integration/test_operations.py",
    "packages/dbos-orchestrator/dbos_orchestrator/operations/schedules.py": "tests/integration/test_operations.py",
    "packages/dbos-orchestrator/dbos_orchestrator/operations/versions.py": "tests/integration/test_operations.py",
    "dbos_airflow/__init__.py": "tests/test_provider.py",
    "dbos_airflow/get_provider_info.py": "tests/test_provider.py",
    "dbos_airflow/hooks/dbos.py": "tests/test_hook.py",
    "dbos_airflow/operators/batch.py": "tests/test_batch_waits.py",
    "dbos_airflow/operators/bulk.py": "tests/test_bulk.py",
    "dbos_airflow/operators/dbos.py": "tests/test_operators.py",
    "dbos_airflow/operators/lifecycle.py": "tests/test_operators.py",
    "dbos_airflow/operators/manage.py": "tests/test_manage.py",
    "dbos_airflow/plugin/__init__.py": "tests/browser/test_ui_workflow_view.py",
    "dbos_airflow/plugin/actions.py": "tests/browser/test_ui_access.py",
    "dbos_airflow/plugin/app.py": "tests/browser/test_ui_workflow_view.py",
    "dbos_airflow/plugin/data.py": "tests/browser/test_ui_workflow_view.py",
    "dbos_airflow/plugin/records.py": "tests/browser/test_ui_workflow_view.py",
    "dbos_airflow/plugin/render.py": "tests/browser/test_ui_workflow_view.py",
    "dbos_airflow/sensors/dbos.py": "tests/test_operators.py",
    "dbos_airflow/triggers/completed.py": "tests/test_completed_trigger.py",
    "dbos_airflow/triggers/dbos.py": "tests/test_triggers.py",
    "dbos_airflow/triggers/delivery.py": "tests/test_completed_trigger.py",
    "packages/dbos-orchestrator/dbos_orchestrator/client.py": "tests/test_client.py",
    "packages/dbos-orchestrator/dbos_orchestrator/service.py": "tests/test_hook.py",
    "packages/dbos-orchestrator/dbos_orchestrator/store/bulk.py": "tests/test_bulk.py",
    "packages/dbos-orchestrator/dbos_orchestrator/store/steps.py": "tests/test_manage.py",
    "packages/dbos-orchestrator/dbos_orchestrator/store/values.py": "tests/test_safe_reading.py",
    "packages/dbos-orchestrator/dbos_orchestrator/waiting/feed.py": "tests/test_completed_trigger.py",
    "packages/dbos-orchestrator/dbos_orchestrator/waiting/probe.py": "tests/test_waiter.py",
    "packages/dbos-orchestrator/dbos_orchestrator/waiting/waiter.py": "tests/test_waiter.py",
}


def _has_logic(path: Path) -> bool:
    """A module defines a function or method (declarations alone: names, constants, exception classes, do not count)."""
    return any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) for n in ast.walk(ast.parse(path.read_text())))


def _unit_test_file(module: Path) -> Path:
    for source, tests in MIRRORS.items():
        if source in module.parents:
            relative = module.relative_to(source)
            name = "test_package.py" if relative.name == "__init__.py" else f"test_{relative.stem}.py"
            return tests / relative.parent / name
    raise AssertionError(module)


def _modules_with_logic() -> list[Path]:
    return sorted(p for source in MIRRORS for p in source.rglob("*.py") if _has_logic(p))


def test_every_module_with_logic_has_its_unit_test_file() -> None:
    """A newcomer who changes contract/kill.py opens tests/unit/contract/test_kill.py and finds its tests."""
    missing = [
        f"{module.relative_to(ROOT)}: {_unit_test_file(module).relative_to(ROOT)}"
        for module in _modules_with_logic()
        if not _unit_test_file(module).exists() and str(module.relative_to(ROOT)) not in TESTED_ELSEWHERE
    ]
    assert missing == []


def test_no_module_is_exempt_without_need() -> None:
    with_logic = {str(p.relative_to(ROOT)) for p in _modules_with_logic()}
    for module, suite in TESTED_ELSEWHERE.items():
        assert module in with_logic, f"{module}: gone or without logic; drop it from TESTED_ELSEWHERE"
        assert not _unit_test_file(ROOT / module).exists(), f"{module} has its unit test file now; drop it"
        assert (ROOT / suite).is_file(), f"{module}: {suite} does not exist"


# Unit test files that are not one module's: every trigger's stored rows in one table; the operations'
# shared argument rules (packages/dbos-orchestrator/tests/operations/test_rules.py).
UNMIRRORED = {"test_stored_triggers.py", "test_rules.py"}


def test_unit_test_files_name_a_module() -> None:
    """The mirror holds only mirrors: a test_<name>.py in a folder of tests/unit/ (or the core's tests) names a
    module of the same folder in the source; the whole-tree rules (layers, layout) sit at the top."""
    strays = []
    for source, tests in MIRRORS.items():
        for path in sorted(tests.rglob("test_*.py")):
            folder = path.parent.relative_to(tests)
            if folder == Path("."):
                continue  # whole-tree rules, and top-level modules' files, are checked by name below
            module = path.name.removeprefix("test_")
            expected = source / folder / ("__init__.py" if module == "package.py" else module)
            if not expected.exists() and path.name not in UNMIRRORED:
                strays.append(str(path.relative_to(ROOT)))
    assert strays == []
