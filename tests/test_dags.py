"""The example DAGs in dags/ parse cleanly, with no DBOS worker code and no DB access at parse time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ROOT
from dbos_testkit import local_stack

EXAMPLE_DAGS = {"dbos_run_workflow", "dbos_order_approval", "dbos_fan_out", "dbos_order_incident"}


@pytest.fixture(scope="module")
def cli_env(airflow_db: Path) -> dict[str, str]:
    # A system DB that does not exist: parsing must not touch it.
    return local_stack.airflow_env(airflow_db, "sqlite:////nonexistent/dbos.sqlite")


def _json_output(args: tuple[str, ...], env: dict[str, str]) -> list[dict[str, object]]:
    done = local_stack.airflow(*args, "--local", "-o", "json", env=env, timeout=300)
    assert done.returncode == 0, f"airflow {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    # Log lines (e.g. "[warning ] ...") may precede the JSON list of objects.
    lines = done.stdout.splitlines()
    start = max((i for i, line in enumerate(lines) if line.startswith(("[{", "[]"))), default=None)
    assert start is not None, f"no JSON in the output of airflow {' '.join(args)}:\n{done.stdout}"
    return list(json.loads("\n".join(lines[start:])))


def test_list_import_errors_is_empty_and_every_example_dag_is_found(cli_env: dict[str, str]) -> None:
    assert _json_output(("dags", "list-import-errors"), cli_env) == []
    found = {d["dag_id"] for d in _json_output(("dags", "list"), cli_env)}
    assert EXAMPLE_DAGS <= found, f"DAGs found in {ROOT / 'dags'}: {sorted(found)}"


def test_dags_folder_holds_no_dbos_worker_code() -> None:
    for path in (ROOT / "dags").glob("*.py"):
        text = path.read_text()
        assert "from dbos import" not in text and "DBOS(" not in text, f"{path} contains DBOS worker code"


def test_run_workflow_form_defaults_run_the_example_app() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(ROOT / "dags")
    assert bag.import_errors == {}
    dag = bag.get_dag("dbos_run_workflow")
    params = dag.params.dump()
    assert params["workflow_name"] == "quote_order" and params["queue_name"] == "orders"
    assert params["args"][0]["order_id"] and params["wait"] is True and params["timeout"] == 300
    for name in ("workflow_name", "queue_name", "args", "kwargs", "workflow_id", "wait", "timeout"):
        param = dag.params.get_param(name)
        assert param.schema.get("title") and param.schema.get("type") and param.description, name
    assert dag.render_template_as_native_obj


def test_run_workflow_dag_documents_its_form() -> None:
    """The DAG page's Docs explain every field of the trigger form, by the title the form shows."""
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(ROOT / "dags").get_dag("dbos_run_workflow")
    assert dag.doc_md
    for name in dag.params:
        title = dag.params.get_param(name).schema["title"]
        assert f"| {title} |" in dag.doc_md, f"doc_md does not explain the form field {title!r}"
    assert "dbos_default" in dag.doc_md and "DBOS workers" in dag.doc_md
