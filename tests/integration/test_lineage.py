"""OpenLineage events of DBOS tasks (docs/observability.md): a real DAG run by ``dag.test()`` in a child
process with the OpenLineage provider's file transport, the emitted events parsed; the workflows carry
the task's parent run; without the provider nothing of it is imported or written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conftest import ROOT

if TYPE_CHECKING:
    from conftest import Worker

HERE = Path(__file__).resolve().parent


def _run(dag_id: str, mode: str, env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(HERE / "lineage_run.py"), dag_id, mode],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    line = next((x for x in done.stdout.splitlines() if x.startswith("RUN ")), None)
    assert line is not None, done.stdout[-3000:] + done.stderr[-3000:]
    result: dict[str, Any] = json.loads(line[4:])
    assert result["state"] == "success", done.stdout[-3000:] + done.stderr[-3000:]
    return result


def _attributes(hook_conn: str, workflow_id: str) -> dict[str, Any]:
    from dbos_airflow.hooks.dbos import DBOSHook

    hook = DBOSHook(hook_conn)
    try:
        return dict(hook.get_client().list_workflows(workflow_ids=[workflow_id])[0].attributes or {})
    finally:
        hook.close()


def test_events_name_the_workflows_and_the_workflows_name_the_run(
    airflow_db: Path, traced_worker: Worker, traced_system_database_url: str, tmp_path: Path
) -> None:
    events_file = tmp_path / "ol.jsonl"
    transport = {"type": "file", "log_file_path": str(events_file), "append": True}
    run = _run(
        "dbos_t_lineage",
        "with",
        {
            "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport),
            "AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD": "True",
            "AIRFLOW__OPENLINEAGE__NAMESPACE": "dbos-tests",
        },
    )
    events = [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]
    complete = {e["job"]["name"]: e for e in events if e.get("eventType") == "COMPLETE" and "run" in e}

    single = complete["dbos_t_lineage.enqueue"]
    workflow_id = f"dbos_t_lineage:{run['run_id']}:enqueue:-1"
    facet = single["run"]["facets"]["dbos_workflow"]
    assert facet["workflowIds"] == [workflow_id] and facet["workflowCount"] == 1
    assert (facet["workflowName"], facet["queueName"], facet["status"]) == ("wf_double", "q", "SUCCESS")
    assert facet["namespace"].startswith("postgres://") and "@" not in facet["namespace"]
    assert facet["namespace"].endswith("/" + traced_system_database_url.rsplit("/", 1)[1])
    assert single["run"]["facets"]["externalQuery"]["externalQueryId"] == workflow_id
    assert [(d["namespace"], d["name"]) for d in single["inputs"]] == [("file", "/lineage/in.csv")]
    assert [(d["namespace"], d["name"]) for d in single["outputs"]] == [("file", "/lineage/out.csv")]
    parent = _attributes("dbos_otel", workflow_id)["openlineage"]["parent"]
    assert parent["run"]["runId"] == single["run"]["runId"]
    assert parent["job"] == {"namespace": "dbos-tests", "name": "dbos_t_lineage.enqueue"}

    bulk = complete["dbos_t_lineage.bulk"]["run"]["facets"]["dbos_workflow"]
    prefix = f"dbos_t_lineage:{run['run_id']}:bulk:-1:"
    assert bulk["workflowCount"] == 12 and bulk["workflowIds"] == [f"{prefix}{i}" for i in range(10)]
    assert bulk["status"] == {"SUCCESS": 10}
    assert not any("password" in line.lower() for line in events_file.read_text().splitlines())

    # Asset events of the tasks' outlets name their workflows (Airflow's own lineage).
    assets = run["assets"]
    assert assets["file:///lineage/out.csv"] == {
        "dbos_workflow_ids": [workflow_id],
        "dbos_workflow_count": 1,
        "dbos_status": "SUCCESS",
    }
    batch = assets["file:///lineage/batch.csv"]
    assert batch["dbos_workflow_count"] == 12 and batch["dbos_status"] == {"SUCCESS": 12}
    assert batch["dbos_workflow_ids"] == [f"{prefix}{i}" for i in range(10)]


def test_without_the_provider_nothing_is_imported_nor_stored(airflow_db: Path, traced_worker: Worker) -> None:
    run = _run("dbos_t_lineage", "without", {})
    assert run["openlineage_modules"] == []
    attributes = _attributes("dbos_otel", f"dbos_t_lineage:{run['run_id']}:enqueue:-1")
    assert "openlineage" not in attributes and "airflow" in attributes
