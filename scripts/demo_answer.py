"""A person at Airflow's Required Actions, for `make demo` (docs/approvals.md).

    python scripts/demo_answer.py DAG_ID '{"chosen_options": ["Approve"], "params_input": {"note": "..."}}'

Runs beside ``airflow dags test DAG_ID`` (same ``AIRFLOW_HOME``), which waits for the answer in a loop:
waits until the DAG's run has an unanswered human-in-the-loop request, prints it, and answers with
the request the Required Actions page sends when a person clicks (``PATCH /api/v2/dags/{dag_id}/
dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/hitlDetails``), served by Airflow's own REST API
app in this process, every caller an admin (the simple auth manager's ``simple_auth_manager_all_admins``).
Prints ``ASKED <the question>`` and ``ANSWERED <chosen options, params, who>`` and exits 0; exits 1
when no request appears within the timeout.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

TIMEOUT_SECONDS = 600


def pending_request(dag_id: str, timeout: float) -> tuple[str, str, int, dict[str, Any]] | None:
    """``(run_id, task_id, map_index, request)`` of the DAG's unanswered request, once it exists."""
    import sqlalchemy as sa
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with create_session() as session:
            row = session.execute(
                sa.select(TaskInstance.run_id, TaskInstance.task_id, TaskInstance.map_index, HITLDetail)
                .join(HITLDetail, HITLDetail.ti_id == TaskInstance.id)
                # Answered once the task waits: under dag.test() (the execution API in-process, on its
                # session) an answer recorded before the task parked stranded it (seen here, 3.3.2).
                .where(
                    TaskInstance.dag_id == dag_id,
                    TaskInstance.state == TaskInstanceState.AWAITING_INPUT,
                    HITLDetail.responded_at.is_(None),
                )
            ).first()
            if row is not None:
                detail = row[3]
                asked = {"subject": detail.subject, "body": detail.body, "options": detail.options}
                asked["params"] = detail.params
                return row[0], row[1], row[2], asked
        time.sleep(1)
    return None


def main(argv: list[str]) -> int:
    dag_id, body = argv[0], json.loads(argv[1])
    os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] = "True"
    found = pending_request(dag_id, TIMEOUT_SECONDS)
    if found is None:
        print(f"no human-in-the-loop request of {dag_id} within {TIMEOUT_SECONDS}s", file=sys.stderr)
        return 1
    run_id, task_id, map_index, asked = found
    print(f"ASKED {json.dumps(asked)}", flush=True)
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/hitlDetails"
    response = TestClient(create_app("core")).patch(path, json=body)
    if response.status_code != 200:
        print(f"PATCH {path} -> {response.status_code}: {response.text}", file=sys.stderr)
        return 1
    recorded = response.json()
    shown = {k: recorded.get(k) for k in ("chosen_options", "params_input", "responded_by")}
    print(f"ANSWERED {json.dumps(shown)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
