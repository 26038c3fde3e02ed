"""Deferring only when the answer is not known yet (docs/architecture.md, "Deferring").

A deferrable task checks in the worker first and completes there when the workflow has ended
(or the awaited event is present) — the same result, XCom and failure as after a deferral —
and a trigger holds its event until ``not_before``. Real DBOS worker and Postgres; the
operators run with a faked Airflow context, so that a deferral is seen as ``TaskDeferred``.
The same rules under a real scheduler: tests/stack/test_deferral_race.py.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from airflow.sdk.exceptions import TaskDeferred
from conftest import unique
from dbos_orchestrator.client import DBOSClient
from test_operators import FakeTI

from dbos_airflow.contract.deferral import CHECK_IN_WORKER_SECONDS, HOLD_EVENT_SECONDS, check_in_worker
from dbos_airflow.exceptions import DBOSWorkflowFailedError


def enqueue_op(**kwargs: Any) -> Any:
    from dbos_airflow.operators.dbos import DBOSEnqueueOperator

    return DBOSEnqueueOperator(
        task_id="run", queue_name="q", wait_for_completion=True, deferrable=True, poll_interval=0.2, **kwargs
    )


def ended(client: DBOSClient, name: str, *args: Any) -> str:
    handle = client.enqueue({"queue_name": "q", "workflow_name": name}, *args)
    try:
        handle.get_result()
    except Exception:  # noqa: BLE001 - a failing workflow is what some tests want
        pass
    return handle.workflow_id


def test_a_workflow_that_ends_within_the_check_completes_in_the_worker(dbos_conn: str) -> None:
    ti = FakeTI("run")
    started = time.monotonic()
    wid = enqueue_op(workflow_name="wf_double", workflow_args=[21]).execute({"ti": ti})
    assert time.monotonic() - started < CHECK_IN_WORKER_SECONDS  # it ended, no need to wait the check out
    assert wid == f"unit:{ti.run_id}:run:-1"
    assert ti.xcom["workflow_id"] == wid and ti.xcom["result"] == 42


def test_a_reattach_to_an_ended_workflow_completes_in_the_worker(dbos_conn: str, client: DBOSClient) -> None:
    wid = ended(client, "wf_double", 4)
    ti = FakeTI("run", try_number=2)
    assert enqueue_op(workflow_name="wf_double", workflow_id=wid).execute({"ti": ti}) == wid
    assert ti.xcom["result"] == 8


def test_a_reattach_to_a_failed_workflow_fails_in_the_worker_as_after_a_deferral(
    dbos_conn: str, client: DBOSClient
) -> None:
    wid = ended(client, "wf_fail", "boom")
    op = enqueue_op(workflow_name="wf_fail", workflow_id=wid, retry_mode="fail")
    with pytest.raises(DBOSWorkflowFailedError) as err:
        op.execute({"ti": FakeTI("run", try_number=2)})
    after_deferral = enqueue_op(workflow_name="wf_fail", workflow_id=wid, retry_mode="fail")
    event = {"kind": "workflow_ended", "workflow_id": wid, "status": "ERROR"}
    with pytest.raises(DBOSWorkflowFailedError) as deferred_err:
        after_deferral.execute_complete({"ti": FakeTI("run", try_number=2)}, event)
    assert str(err.value) == str(deferred_err.value) and "boom" in str(err.value)


def test_a_workflow_still_running_after_the_check_defers_with_a_held_trigger(dbos_conn: str) -> None:
    op = enqueue_op(workflow_name="wf_sleep", workflow_args=[60], timeout=120)
    started, wall = time.monotonic(), time.time()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({"ti": FakeTI("run")})
    assert CHECK_IN_WORKER_SECONDS <= time.monotonic() - started < CHECK_IN_WORKER_SECONDS + 3
    trigger = deferred.value.trigger
    assert trigger.not_before == pytest.approx(time.time() + HOLD_EVENT_SECONDS, abs=1.0)
    assert trigger.end_time == pytest.approx(wall + 120, abs=1.0)  # the deadline counts from the start
    op.hook.cancel_workflow(trigger.workflow_id)


def test_a_timeout_shorter_than_the_check_gives_up_in_the_worker(dbos_conn: str, client: DBOSClient) -> None:
    from airflow.sdk.exceptions import AirflowException

    op = enqueue_op(workflow_name="wf_sleep", workflow_args=[60], timeout=1)
    ti = FakeTI("run")
    with pytest.raises(AirflowException, match="still PENDING|still ENQUEUED"):
        op.execute({"ti": ti})
    rows = client.list_workflows(workflow_ids=[ti.xcom["workflow_id"]], load_input=False, load_output=False)
    assert rows[0].status == "CANCELLED"  # cancel_on_kill: the task's own timeout cancels, as when deferred


@pytest.mark.parametrize("sensor", ["workflow", "event"])
def test_sensors_with_the_answer_present_complete_in_the_worker(
    dbos_conn: str, client: DBOSClient, sensor: str
) -> None:
    from dbos_airflow.sensors.dbos import DBOSEventSensor, DBOSWorkflowSensor

    wid = ended(client, "wf_set_event_later", "k", {"n": 1}, 0)
    if sensor == "workflow":
        op: Any = DBOSWorkflowSensor(task_id="s", workflow_id=wid, deferrable=True, poke_interval=0.3)
        expected: Any = "set"
    else:
        op = DBOSEventSensor(task_id="s", workflow_id=wid, key="k", deferrable=True, poke_interval=0.3)
        expected = {"n": 1}
    assert op.execute({"ti": FakeTI("s")}) == expected


def test_an_event_published_during_the_check_completes_the_sensor_in_the_worker(
    dbos_conn: str, client: DBOSClient
) -> None:
    from dbos_airflow.sensors.dbos import DBOSEventSensor

    wid = client.enqueue({"queue_name": "q", "workflow_name": "wf_set_event_later"}, "k", "v", 1.5).workflow_id
    op = DBOSEventSensor(task_id="s", workflow_id=wid, key="k", deferrable=True, poke_interval=0.3)
    assert op.execute({"ti": FakeTI("s")}) == "v"


def test_a_sensor_whose_event_is_not_there_defers_with_a_held_trigger(dbos_conn: str, client: DBOSClient) -> None:
    from dbos_airflow.sensors.dbos import DBOSEventSensor

    wid = client.enqueue({"queue_name": "q", "workflow_name": "wf_sleep"}, 60).workflow_id
    op = DBOSEventSensor(task_id="s", workflow_id=wid, key="k", deferrable=True, poke_interval=0.3, timeout=90)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({"ti": FakeTI("s")})
    assert deferred.value.trigger.not_before == pytest.approx(time.time() + HOLD_EVENT_SECONDS, abs=1.0)
    client.cancel_workflow(wid)


async def collect(classpath: str, kwargs: dict[str, Any]) -> tuple[list[dict[str, Any]], float]:
    """Rebuild a trigger from its stored form, as a triggerer does; its events and how long they took."""
    module, name = classpath.rsplit(".", 1)
    cls = getattr(__import__(module, fromlist=[name]), name)
    started = time.monotonic()
    events = [e.payload async for e in cls(**json.loads(json.dumps(kwargs))).run()]
    return events, time.monotonic() - started


def test_a_trigger_holds_its_event_until_not_before(dbos_conn: str, client: DBOSClient) -> None:
    from dbos_airflow.triggers.dbos import DBOSEventTrigger, DBOSWorkflowTrigger

    wid = ended(client, "wf_set_event_later", "k", 1, 0)
    for make in (
        lambda: DBOSWorkflowTrigger(workflow_id=wid, dbos_conn_id=dbos_conn, not_before=time.time() + 2),
        lambda: DBOSEventTrigger(workflow_id=wid, key="k", dbos_conn_id=dbos_conn, not_before=time.time() + 2),
    ):
        events, took = asyncio.run(collect(*make().serialize()))
        assert len(events) == 1 and events[0]["workflow_id"] == wid
        assert took >= 1.9, took


def test_triggers_stored_before_not_before_existed_resume_and_fire_at_once(dbos_conn: str, client: DBOSClient) -> None:
    """A task deferred by an older version resumes after the upgrade: its stored kwargs lack ``not_before``."""
    wid = ended(client, "wf_double", 3)
    stored = {"workflow_id": wid, "dbos_conn_id": dbos_conn, "end_time": None, "cancel_on_kill": True}
    events, took = asyncio.run(collect("dbos_airflow.triggers.dbos.DBOSWorkflowTrigger", stored))
    assert events == [{"kind": "workflow_ended", "workflow_id": wid, "status": "SUCCESS"}] and took < 1.5
    missing = unique("nobody")
    stored = {**stored, "workflow_id": missing, "key": "k", "expected_value": None, "poll_interval": 1.0}
    events, _ = asyncio.run(collect("dbos_airflow.triggers.dbos.DBOSEventTrigger", stored))
    assert events == [{"kind": "not_found", "workflow_id": missing, "key": "k"}]


def test_check_in_worker_stops_at_the_first_answer_and_lets_errors_through() -> None:
    calls: list[float] = []

    def third_time() -> str | None:
        calls.append(time.monotonic())
        return "done" if len(calls) == 3 else None

    assert check_in_worker(third_time, seconds=5) == "done" and len(calls) == 3
    assert calls[1] - calls[0] == pytest.approx(0.1, abs=0.08)  # quick first re-checks
    assert check_in_worker(lambda: None, seconds=0) is None  # checks once even with no budget
    with pytest.raises(ZeroDivisionError):
        check_in_worker(lambda: 1 // 0, seconds=5)
