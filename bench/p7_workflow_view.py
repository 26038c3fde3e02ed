"""P7: the DBOS workflow view's server-side time vs the plain dbos.DBOSClient calls it replaces.

* view of one workflow with 1,000 steps: ``workflow_detail`` (status without decoding + safe
  reads of inputs, output, events and steps) and its HTML, against
  ``list_workflows(workflow_ids=[id])`` + ``list_workflow_steps(id)`` (what a page built on the
  plain client would call, unpickling included);
* the DBOS page with 10,000 workflows in the database: one page of 50 (``list_page`` + HTML),
  against ``list_workflows(limit=50)``.

Two figures per page: the whole route through the plugin's FastAPI app in this process (Airflow's
auth dependency with the simple auth manager, the Airflow metadata DB lookups that link workflows
to task instances, the reads, the HTML; no network), and the data + HTML part alone. Portable
(JSON) workflows, as dbos-airflow enqueues them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.harness import Row, bench_env, median, report

os.environ.setdefault("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
STEPS = 1000
WORKFLOWS = 10_000
ROUNDS = 15
GOAL_S = 0.3


def _timed(fn: Any) -> list[float]:
    fn()  # warm: connections, imports
    out = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def _route_client() -> Any:
    """The plugin's app behind a test client, authenticated as an admin of the simple auth manager."""
    from airflow.api_fastapi.app import init_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.testclient import TestClient

    from dbos_airflow.plugin.app import create_app

    airflow = Path(sys.executable).parent / "airflow"
    done = subprocess.run([str(airflow), "db", "migrate"], env=os.environ.copy(), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    app = create_app()
    init_auth_manager(app)
    app.dependency_overrides[get_user] = lambda: SimpleAuthManagerUser(username="bench", role="admin")
    return TestClient(app)


def main() -> None:
    import dbos
    from dbos import WorkflowSerializationFormat

    from dbos_airflow.hooks.dbos import DBOSHook
    from dbos_airflow.plugin import data, records, render

    with bench_env() as env:
        client = dbos.DBOSClient(system_database_url=env.system_database_url)
        try:
            options: Any = {
                "workflow_name": "many_steps",
                "queue_name": "bench",
                "workflow_id": "p7-steps",
                "serialization_type": WorkflowSerializationFormat.PORTABLE,
            }
            client.enqueue(options, STEPS).get_result(polling_interval_sec=0.2)
            with DBOSHook(env.conn_id) as hook:
                hook.enqueue_many(
                    {"workflow_name": "noop", "queue_name": "bench_nobody"}, [[] for _ in range(WORKFLOWS)]
                )

            def plain_view() -> None:
                client.list_workflows(workflow_ids=["p7-steps"])
                assert len(client.list_workflow_steps("p7-steps")) == STEPS

            def ours_view() -> None:
                hook = data.hook_for(env.conn_id)
                status = data.status_of(hook, "p7-steps")
                assert status is not None
                detail = data.workflow_detail(hook, status)
                assert len(detail.steps) == STEPS
                render.workflow_page(detail, lambda w: w, can_act=True, task_link=None, static="/s")

            filters = records.Filters()
            http = _route_client()

            def route_view() -> None:
                r = http.get("/workflow", params={"conn_id": env.conn_id, "id": "p7-steps"})
                assert r.status_code == 200 and r.text.count('class="step"') == STEPS, r.text[-500:]

            def route_list() -> None:
                r = http.get("/workflows", params={"conn_id": env.conn_id})
                assert r.status_code == 200 and r.text.count('class="wf"') == 50, r.text[-500:]

            def plain_list() -> None:
                assert len(client.list_workflows(limit=50, sort_desc=True)) == 50

            def ours_list() -> None:
                hook = data.hook_for(env.conn_id)
                ids, more = records.page_ids(hook, filters, None)
                found = data.statuses(hook, ids)
                assert len(ids) == 50 and more
                render.list_page(
                    env.conn_id,
                    [found[w] for w in ids],
                    filters,
                    base="/dbos",
                    view_link=lambda w: w,
                    page_link=str,
                    has_next=more,
                    task_links={},
                    static="/s",
                )

            figures = [
                (
                    f"P7 workflow view, {STEPS:,} steps (route: auth + metadata DB + data + HTML)",
                    plain_view,
                    route_view,
                    "list_workflows + list_workflow_steps",
                    "GET /dbos/workflow",
                ),
                (
                    f"P7 DBOS page, 50 of {WORKFLOWS:,} workflows (route: auth + metadata DB + data + HTML)",
                    plain_list,
                    route_list,
                    "list_workflows(limit=50)",
                    "GET /dbos/workflows",
                ),
                (
                    f"P7 workflow view, {STEPS:,} steps (data + HTML only)",
                    plain_view,
                    ours_view,
                    "list_workflows + list_workflow_steps",
                    "data + HTML",
                ),
                (
                    f"P7 DBOS page, 50 of {WORKFLOWS:,} workflows (data + HTML only)",
                    plain_list,
                    ours_list,
                    "list_workflows(limit=50)",
                    "data + HTML",
                ),
            ]
            rows = []
            details: dict[str, Any] = {}
            for label, plain_fn, ours_fn, plain_what, ours_what in figures:
                plain, ours = median(_timed(plain_fn)), median(_timed(ours_fn))
                details[label] = {"plain_s": plain, "ours_s": ours}
                rows.append(
                    Row(
                        label,
                        f"{plain * 1000:.0f} ms ({plain_what})",
                        f"{ours * 1000:.0f} ms ({ours_what})",
                        f"{ours / plain:.2f}",
                        f"{ROUNDS} rounds (median)",
                        f"<= {GOAL_S} s",
                        "met" if ours <= GOAL_S else "MISSED",
                    )
                )
        finally:
            client.destroy()
    report("p7", rows, details)


if __name__ == "__main__":
    main()
