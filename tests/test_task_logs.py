"""What a waiting task's log says (docs/architecture.md, "How waiting works": Progress): progress every ~30 s, one closing line, dbos'
initialization line at most once, and a timeout message that says which causes are ruled out.

Real DBOS worker and Postgres; the progress interval is shortened for the test.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
from dbos_orchestrator.client import DBOSClient
from fakes import FakeTI


@pytest.fixture
def fast_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dbos_airflow.hooks.dbos.PROGRESS_LOG_SECONDS", 1.0)
    monkeypatch.setattr("dbos_airflow.triggers.dbos.PROGRESS_LOG_SECONDS", 1.0)
    monkeypatch.setattr("dbos_orchestrator.waiting.progress.PROGRESS_REFRESH_SECONDS", 0.3)


def _lines(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str] | None = None) -> list[str]:
    """Log messages, from the logging records and (Airflow's task loggers) stdout."""
    out = capsys.readouterr().out.splitlines() if capsys is not None else []
    return [r.getMessage() for r in caplog.records] + [line.split("] ", 1)[-1] for line in out]


def test_sync_wait_logs_progress_and_how_it_ended(
    dbos_conn: str,
    client: DBOSClient,
    fast_progress: None,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from dbos_airflow.operators.dbos import DBOSEnqueueOperator

    caplog.set_level(logging.INFO)
    op = DBOSEnqueueOperator(
        task_id="t",
        workflow_name="wf_counted_steps",
        queue_name="q",
        workflow_args=[3, 1.0],
        wait_for_completion=True,
        poll_interval=0.2,
    )
    wid = op.execute({"ti": FakeTI()})  # type: ignore[arg-type]
    lines = _lines(caplog, capsys)
    progress = [line for line in lines if line.startswith("Waiting ")]
    assert progress and all(f"(workflow {wid})" in line for line in progress), lines
    assert any("last recorded step #" in line for line in progress), progress
    (ended,) = [line for line in lines if line.startswith("DBOS workflow ended")]
    assert ended.startswith("DBOS workflow ended SUCCESS in ") and "; result: 3 (workflow " in ended, ended
    assert sum("Initializing DBOS system database" in line for line in lines) <= 1


async def test_deferred_wait_logs_progress(
    dbos_conn: str,
    client: DBOSClient,
    fast_progress: None,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from dbos_airflow.triggers.dbos import DBOSWorkflowTrigger

    caplog.set_level(logging.INFO)
    wid = (await client.enqueue_async({"queue_name": "q", "workflow_name": "wf_counted_steps"}, 3, 1.0)).workflow_id
    trigger = DBOSWorkflowTrigger(workflow_id=wid, end_time=time.time() + 60)
    events = await asyncio.wait_for(_collect(trigger), 60)
    assert events == [{"kind": "workflow_ended", "workflow_id": wid, "status": "SUCCESS"}]
    lines = _lines(caplog, capsys)
    progress = [line for line in lines if line.startswith("Waiting ") and wid in line]
    assert any("is PENDING; last recorded step #" in line for line in progress), lines[-20:]
    assert not any("Initializing DBOS system database" in line for line in lines)


async def _collect(trigger: Any) -> list[Any]:
    return [e.payload async for e in trigger.run()]


def test_initialization_line_once_per_process(system_database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    from dbos_orchestrator.init_log import _InitializingOnce, quiet_initialization

    caplog.set_level(logging.INFO)
    _InitializingOnce.seen.clear()
    clients = [DBOSClient(system_database_url=system_database_url) for _ in range(3)]
    with quiet_initialization():
        clients.append(DBOSClient(system_database_url=system_database_url))
    for c in clients:
        c.destroy()
    assert sum("Initializing DBOS system database" in line for line in _lines(caplog)) == 1


def test_misspelled_workflow_name_timeout_says_what_the_database_rules_out(dbos_conn: str, client: DBOSClient) -> None:
    """DBOS records nothing for an unregistered name: the worker claims it (PENDING, its executor
    id) and never records a step. The message says so, instead of the queued-workflow hint."""
    from airflow.sdk.exceptions import AirflowException

    from dbos_airflow.operators.dbos import DBOSEnqueueOperator

    op = DBOSEnqueueOperator(
        task_id="t",
        workflow_name="wf_misspelled",
        queue_name="q",
        wait_for_completion=True,
        timeout=3,
        poll_interval=0.2,
    )
    with pytest.raises(AirflowException) as failed:
        op.execute({"ti": FakeTI()})  # type: ignore[arg-type]
    message = str(failed.value)
    assert message.startswith(
        "Gave up waiting: DBOS workflow is still PENDING after 3s: worker 'test-worker' "
        "claimed it but it never recorded a step. Most likely workflow 'wf_misspelled' is "
        "not registered"
    ), message


def test_timeout_messages_tell_the_causes_apart() -> None:
    from dbos_orchestrator.messages import ended_message, still_waiting_message

    base = {"workflow_id": "w", "name": "wf", "queue_name": "q", "app_version": None, "executor_id": "x"}
    queued = still_waiting_message({**base, "status": "ENQUEUED"}, 10)
    assert "no DBOS worker dequeued it from queue 'q'" in queued and "app_version: any version" in queued
    assert "not the cause yet" in queued
    running = still_waiting_message({**base, "status": "PENDING"}, 10, (4, "DBOS.recv"))
    assert "last recorded step #4 DBOS.recv: workflow 'wf' is registered and running" in running
    assert ended_message({**base, "status": "ERROR", "created_at": 1000, "updated_at": 13300}, error="E: boom") == (
        "DBOS workflow ended ERROR in 12.3 s; error: E: boom (workflow w)"
    )
    long = ended_message({**base, "status": "SUCCESS"}, result="x" * 500)
    assert len(long) < 260 and "…" in long


def test_resumed_deferred_task_does_not_repeat_the_initialization_line(
    dbos_conn: str, client: DBOSClient, caplog: pytest.LogCaptureFixture
) -> None:
    """The try's log has the line from before the deferral; execute_complete runs in a new process."""
    from dbos_orchestrator.init_log import _InitializingOnce

    from dbos_airflow.operators.dbos import DBOSEnqueueOperator

    caplog.set_level(logging.INFO)
    wid = client.enqueue({"queue_name": "q", "workflow_name": "wf_double"}, 2).workflow_id
    client.retrieve_workflow(wid).get_result()
    op = DBOSEnqueueOperator(task_id="t", workflow_name="wf_double", queue_name="q", workflow_id=wid)
    _InitializingOnce.seen.clear()  # as in a fresh task process
    event = {"kind": "workflow_ended", "workflow_id": wid, "status": "SUCCESS"}
    assert op.execute_complete({"ti": FakeTI()}, event) == wid  # type: ignore[arg-type]
    assert not any("Initializing DBOS system database" in r.getMessage() for r in caplog.records)
