"""The sync twins do what their async tasks do, in a sync flow (packages/prefect-dbos/README.md, "Tasks")."""

from __future__ import annotations

from typing import Any

from conftest import QUEUE
from prefect import flow

from prefect_dbos import (
    cancel_workflow,
    enqueue_workflow,
    enqueue_workflows,
    fork_workflow,
    get_workflow_event,
    get_workflow_status,
    resume_workflow,
    send_message,
    wait_for_first_workflow,
    wait_for_workflow,
    wait_for_workflow_event,
)


def test_the_sync_twins(database: Any) -> None:
    @flow
    def sync_flow() -> dict[str, Any]:
        wid = enqueue_workflow(database, QUEUE, "wf_event_recv", ["topic"])
        waiting = wait_for_workflow_event(database, wid, "status", timeout=60)
        cancel_workflow(database, wid)
        cancelled = get_workflow_status(database, wid)["status"]
        resume_workflow(database, wid)
        send_message(database, wid, "go", topic="topic")
        result = wait_for_workflow(database, wid)
        done = get_workflow_event(database, wid, "status")
        fork_id = fork_workflow(database, wid, 1)
        ids = enqueue_workflows(database, QUEUE, "wf_double", [[1], [2]])
        bulk = [wait_for_workflow(database, i) for i in ids]
        first = wait_for_first_workflow(database, ids, timeout=60)
        return {
            "waiting": waiting,
            "cancelled": cancelled,
            "result": result,
            "done": done,
            "fork": fork_id,
            "bulk": bulk,
            "first": (first, ids),
        }

    out = sync_flow()
    assert out["waiting"] == "waiting" and out["cancelled"] == "CANCELLED"
    assert out["result"] == "got:go" and out["done"] == "done" and out["bulk"] == [2, 4]
    first, ids = out["first"]
    assert first["status"] == "SUCCESS" and first["workflow_id"] == ids[first["index"]]
    assert database.service().get_workflow_status_with_fork(out["fork"])["forked_from"] is not None
