"""`make demo`, end to end: the example worker on this session's Postgres, every example DAG via
`airflow dags test`, one table row per run; and a failing workflow makes the demo exit non-zero."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT
from dbos_orchestrator.client import DBOSClient


def _demo_script() -> object:
    """scripts/demo.py, the script `make demo` runs, loaded from its file (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("demo", ROOT / "scripts" / "demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["demo"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


demo: Any = _demo_script()


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("demo")


def test_demo_runs_every_example_dag(example_system_db: str, demo_dir: Path) -> None:
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("AIRFLOW")}
    env["DBOS_SYSTEM_DATABASE_URL"] = example_system_db
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py"), "--demo-dir", str(demo_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,  # eight DAGs on a loaded 2-core machine (CI runs suites side by side)
    )
    assert done.returncode == 0, f"demo failed:\n{done.stdout}\n{done.stderr}"
    rows = [line for line in done.stdout.splitlines() if re.match(r"\| dbos_", line)]
    assert [r.split("|")[1].strip() for r in rows] == [r.dag_id for r in demo.DEMO_RUNS]
    assert all(r.split("|")[2].strip() == "success" for r in rows), done.stdout
    assert "shipped" in done.stdout and '"parcels": 6' in done.stdout
    # The approval was asked in Required Actions and answered through Airflow's REST API (docs/approvals.md).
    assert re.search(r"Required Actions: ASKED .*Ship order B-200", done.stdout), done.stdout
    assert re.search(r"Required Actions: ANSWERED .*\"Approve\"", done.stdout), done.stdout
    # The incident DAG ran on the payload its DBOS completion watcher yielded for the failed refund.
    assert re.search(r"watcher fired: refund_order \S+ ended ERROR", done.stdout), done.stdout
    assert "INCIDENT refund_order" in done.stdout
    ids = re.findall(r"^dbos_\w+: workflow ids (.+)$", done.stdout, re.MULTILINE)
    workflow_ids = [i for line in ids for i in line.split(", ")]
    assert len(workflow_ids) == 8  # 2 x run_workflow, start_order, 3 x pack_order, pick_orders, open_incident
    client = DBOSClient(system_database_url=example_system_db, retry_connection_errors=False)
    try:
        statuses = client.list_workflows(workflow_ids=workflow_ids, load_input=False)
    finally:
        client.destroy()
    assert sorted((s.workflow_id, s.status) for s in statuses) == sorted((i, "SUCCESS") for i in workflow_ids)
    assert {s.name for s in statuses} == {
        "quote_order",
        "Warehouse.pack",
        "process_order",
        "pick_orders",
        "open_incident",
    }
    # The progress stream of pick_orders, in the task logs (docs/streams.md): each of its 4 values.
    shown = re.findall(r"stream 'progress' #(\d): \{\"order_id\": \"P-\d\"", done.stdout)
    assert sorted(set(shown)) == ["0", "1", "2", "3"], done.stdout
    assert '"done": 4' in done.stdout  # the stream sensor's result: the last value


def test_demo_exits_non_zero_with_the_workflow_error_when_a_run_fails(
    example_system_db: str, demo_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DBOS_SYSTEM_DATABASE_URL", example_system_db)
    failing = demo.DemoRun(
        "dbos_run_workflow",
        {"workflow_name": "refund_order", "args": ["R-1", 500], "timeout": None},
        "run_workflow",
        "result",
    )
    no_wait = demo.DemoRun("dbos_run_workflow", {"wait": False}, "run_workflow")
    assert demo.main(["--demo-dir", str(demo_dir)], runs=(no_wait, failing)) == 1
    out, err = capsys.readouterr()
    rows = [line.split("|") for line in out.splitlines() if line.startswith("| dbos_")]
    assert [r[2].strip() for r in rows] == ["success", "failed"], out
    # Without waiting the task returns the workflow id at once.
    assert rows[0][4].strip().startswith("dbos_run_workflow:manual__")
    assert "OrderError: refund of 500.00 for order R-1 exceeds the 100.00 limit" in err
