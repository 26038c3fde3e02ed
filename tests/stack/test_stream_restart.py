"""Deferred waits of issue 25 across triggerer restarts, under a real Airflow (api-server, scheduler,
dag-processor, triggerer, LocalExecutor, Postgres metadata DB: dbos_testkit/airflow_stack.py), the
real DBOS worker and Postgres. DAGs: tests/dags/stream_stack/dbos_stream_stack_dags.py.

Proves (docs/streams.md, "Retries"): 1,000 values written at 200/s reach the task's log in order,
none missing or doubled, although the triggerer is stopped (SIGTERM) after the first 500 were
logged and another one started: the trigger saved its offset when it was cancelled, and the new
trigger continued from it.

Proves (docs/approvals.md, "What is exactly once"): an approval waiting (deferred) for the workflow's
question survives a triggerer killed -9; the question is asked, answered through the REST API request
the Required Actions click sends, and the workflow receives one message; a clear after the answer
asks nobody and sends nothing.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, unique
from dbos_orchestrator.client import DBOSClient
from dbos_testkit.airflow_stack import AirflowStack
from dbos_testkit.notifications import messages_to

pytestmark = pytest.mark.stack

DAG_ID = "dbos_t_stream_stack"
APPROVAL_DAG = "dbos_t_approval_stack"
VALUE = re.compile(r"stream 'progress' #(\d+): ")


@pytest.fixture(scope="module")
def stack(dbos_conn: str) -> Iterator[AirflowStack]:
    s = AirflowStack(
        ROOT / "tests" / "dags" / "stream_stack",
        env={"AIRFLOW_CONN_DBOS_DEFAULT": os.environ["AIRFLOW_CONN_DBOS_DEFAULT"]},
        parallelism=4,
    )
    try:
        s.start()
        s.wait_dag(DAG_ID, timeout=180)
        s.wait_dag(APPROVAL_DAG, timeout=180)
        yield s
    finally:
        s.stop()


def logged_offsets(stack: AirflowStack, run_id: str) -> list[int]:
    """The stream values in try 1's logs: the worker's file and the triggers' files beside it."""
    base = stack.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}" / "task_id=stream"
    offsets: list[int] = []
    for path in sorted(Path(base).glob("attempt=1.log*"), key=lambda p: p.stat().st_mtime):
        offsets.extend(int(m.group(1)) for m in VALUE.finditer(path.read_text(errors="replace")))
    return offsets


def executor_events(stack: AirflowStack, dag_id: str, task_id: str) -> int:
    """How many ended processes of the task the scheduler has taken in (its "executor event" lines)."""
    mark = f"Received executor event with state success for task instance TaskInstanceKey(dag_id='{dag_id}', task_id='{task_id}'"
    return sum(mark in line for line in stack.components["scheduler"].lines)


def test_1000_values_logged_once_across_a_triggerer_restart(stack: AirflowStack, client: DBOSClient) -> None:
    wid = unique("stream-stack")
    # Nothing for 20 s (the task defers first), 500 values at 200/s, a 5 s pause, 500 more, closed.
    client.enqueue(
        {"queue_name": "q", "workflow_name": "wf_stream", "workflow_id": wid},
        "progress",
        1000,
        0.005,
        pause_at=500,
        start_after=20.0,
    )
    run_id = stack.trigger(DAG_ID, {"workflow_id": wid})
    stack.wait_ti(DAG_ID, run_id, "stream", {"deferred"}, timeout=120)
    stack.wait_until(lambda: 499 in logged_offsets(stack, run_id), 120, "the first 500 values logged", interval=0.2)
    stack.kill("triggerer", signal.SIGTERM, wait=30)  # a graceful stop: the trigger saves its offset
    stack.start_component("triggerer")
    assert stack.wait_run(DAG_ID, run_id, {"success", "failed"}, timeout=240) == "success", stack.recent_lines()
    offsets = logged_offsets(stack, run_id)
    assert offsets == list(range(1000)), (len(offsets), sorted(set(range(1000)) - set(offsets))[:10])
    ti = stack.task_instance(DAG_ID, run_id, "stream")
    assert ti["try_number"] == 1


def test_an_approval_across_a_triggerer_kill_and_a_clear_reaches_the_workflow_once(
    stack: AirflowStack, client: DBOSClient
) -> None:
    wid = unique("approval-stack")
    # The workflow asks only after message "go": the task defers first, then the triggerer is killed.
    client.enqueue(
        {"queue_name": "q", "workflow_name": "wf_approval", "workflow_id": wid}, "S-1", "approval", None, "go"
    )
    run_id = stack.trigger(APPROVAL_DAG, {"workflow_id": wid})
    stack.wait_ti(APPROVAL_DAG, run_id, "approve", {"deferred"}, timeout=180)
    stack.kill("triggerer")  # SIGKILL: nothing saved, nothing said
    stack.start_component("triggerer")
    client.send(wid, "ask now", "go")
    stack.wait_ti(APPROVAL_DAG, run_id, "approve", {"awaiting_input"}, timeout=240)
    # Answer once the scheduler has seen the parked try's process end (its 2nd executor event: the 1st
    # was the deferral's). Answered at once, the resumed task was failed once here before it started
    # ("TI was not in a state where it could be marked as running", previous state failed); by Airflow
    # 3.3's scheduler code, likely its "killed externally" check meeting the parked process's late event
    # (same try number). A person's answer comes later; see docs/approvals.md, "Answering by API".
    stack.wait_until(lambda: executor_events(stack, APPROVAL_DAG, "approve") >= 2, 60, "the parked try's exit seen")
    asked = stack.api("GET", f"/dags/{APPROVAL_DAG}/dagRuns/{run_id}/taskInstances/approve/-1/hitlDetails")
    assert asked["subject"] == "Ship order S-1?" and asked["options"] == ["Approve", "Reject"], asked

    # What the Required Actions page sends when a person clicks "Approve".
    stack.api(
        "PATCH",
        f"/dags/{APPROVAL_DAG}/dagRuns/{run_id}/taskInstances/approve/-1/hitlDetails",
        json={"chosen_options": ["Approve"], "params_input": {"note": "after a triggerer kill"}},
    )
    assert stack.wait_run(APPROVAL_DAG, run_id, {"success", "failed"}, timeout=240) == "success", "\n".join(
        line for line in stack.tail("scheduler", 400).splitlines() if "approve" in line or "mismatch" in line
    )
    received = client.retrieve_workflow(wid).get_result()
    assert received["chosen_options"] == ["Approve"] and received["responded_by"]["name"] == "admin", received
    answers = [m for m in messages_to(client.system_database_engine, wid) if m[0].startswith(f"{APPROVAL_DAG}:")]
    assert len(answers) == 1 and len(messages_to(client.system_database_engine, wid)) == 2  # and the gate

    # A clear after the answer: the task runs again, finds the delivered answer, asks nobody, sends nothing.
    stack.api(
        "POST",
        f"/dags/{APPROVAL_DAG}/clearTaskInstances",
        json={"dry_run": False, "dag_run_id": run_id, "task_ids": ["approve"], "only_failed": False},
    )
    stack.wait_until(
        lambda: (
            stack.task_instance(APPROVAL_DAG, run_id, "approve")["try_number"] == 2
            and stack.task_instance(APPROVAL_DAG, run_id, "approve")["state"] == "success"
        ),
        240,
        "the cleared approval task's second try",
    )
    assert "not asking again" in stack.task_log(APPROVAL_DAG, run_id, "approve", 2)
    assert len(messages_to(client.system_database_engine, wid)) == 2
