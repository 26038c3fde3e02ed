"""P7: the DBOS workflow view's server-side time vs the plain dbos.DBOSClient calls it replaces.

* view of one workflow with 1,000 steps: ``workflow_detail`` (status without decoding + safe
  reads of inputs, output, events and steps) and its HTML, against
  ``list_workflows(workflow_ids=[id])`` + ``list_workflow_steps(id)`` (what a page built on the
  plain client would call, unpickling included);
* the DBOS page with 10,000 workflows in the database: one page of 50 (``list_page`` + HTML),
  against ``list_workflows(limit=50)``.

What is timed is the work the plugin's routes do (data + HTML) in this process, not HTTP or
Airflow's auth check. Portable (JSON) workflows, as dbos-airflow enqueues them.
"""

from __future__ import annotations

import time
from typing import Any

from bench.harness import Row, bench_env, median, report

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


def main() -> None:
    import dbos
    from dbos import WorkflowSerializationFormat

    from dbos_airflow.hooks.dbos import DBOSHook
    from dbos_airflow.plugin import data, render

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
                detail = data.workflow_detail(env.conn_id, "p7-steps")
                assert len(detail.steps) == STEPS
                render.page("v", render.workflow_html(detail, lambda w: w, can_act=True, task_link=None))

            filters = data.WorkflowFilters()

            def plain_list() -> None:
                assert len(client.list_workflows(limit=50, sort_desc=True)) == 50

            def ours_list() -> None:
                rows, more = data.list_page(env.conn_id, filters)
                assert len(rows) == 50 and more
                render.page("l", render.list_html(env.conn_id, rows, filters, more, "/dbos", {}))

            figures = [
                (
                    f"P7 workflow view, {STEPS:,} steps (server time)",
                    plain_view,
                    ours_view,
                    "list_workflows + list_workflow_steps",
                    "data + HTML",
                ),
                (
                    f"P7 DBOS page, 50 of {WORKFLOWS:,} workflows (server time)",
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
