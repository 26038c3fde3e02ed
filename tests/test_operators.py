"""The two-engine contract table of docs/architecture.md, row by row.

End to end: real Airflow (``dag.test()`` on the DAGs in tests/dags/operators), a real DBOS worker
process and real Postgres. Where Airflow cannot be made to do the thing on cue (kill a task
mid-wait, restart a triggerer), the operator or trigger is driven directly, still against the
real worker and database, with a faked Airflow context.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException
from conftest import ROOT, unique
from dbos import WorkflowSerializationFormat
from dbos_orchestrator.client import DBOSClient
from fakes import FakeTI


@pytest.fixture(scope="module")
def dagbag(dbos_conn: str, airflow_db: object) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "tests" / "dags" / "operators"))
    assert not bag.import_errors, bag.import_errors
    return bag


def run_dag(dagbag: Any, dag_id: str, conf: dict[str, Any] | None = None) -> Any:
    return dagbag.get_dag(dag_id).test(run_conf=conf)


def states(dr: Any) -> dict[str, str]:
    return {
        (ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"): ti.state
        for ti in dr.get_task_instances()
    }


def xcoms(dr: Any, task_id: str, key: str = "return_value") -> list[Any]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(XComModel)
            .filter_by(dag_id=dr.dag_id, run_id=dr.run_id, task_id=task_id, key=key)
            .order_by(XComModel.map_index)
            .all()
        )
        return [r.value for r in rows]


def workflows_of(client: DBOSClient, dr: Any) -> list[Any]:
    return client.list_workflows(workflow_id_prefix=f"{dr.dag_id}:{dr.run_id}:", load_input=False)


def wait_status(client: DBOSClient, wid: str, wanted: set[str], timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = client.list_workflows(workflow_ids=[wid], load_input=False, load_output=False)
        if rows and rows[0].status in wanted:
            return rows[0].status
        time.sleep(0.1)
    raise AssertionError(f"{wid} never reached {wanted}")


# -- task runs: enqueued once, id derived from the task instance -----------------------------


@pytest.mark.parametrize("dag_id", ["dbos_t_pipeline", "dbos_t_pipeline_deferrable"])
def test_pipeline_enqueue_event_send_complete(dagbag: Any, client: DBOSClient, dag_id: str) -> None:
    dr = run_dag(dagbag, dag_id)
    assert set(states(dr).values()) == {"success"}, states(dr)
    wid = f"{dag_id}:{dr.run_id}:enqueue:-1"
    assert xcoms(dr, "enqueue") == [wid] and xcoms(dr, "enqueue", "workflow_id") == [wid]
    assert [w.workflow_id for w in workflows_of(client, dr)] == [wid]  # exactly one workflow
    assert xcoms(dr, "waiting") == ["waiting"]
    assert xcoms(dr, "finished") == ["got:ok"]  # the message was received (once: recv takes one)
    assert xcoms(dr, "downstream") == ["GOT:OK"]


# -- retried / cleared after a crash: re-attached, never enqueued twice -----------------------


def test_retry_after_crash_reattaches_to_the_same_workflow(dagbag: Any, client: DBOSClient) -> None:
    dr = run_dag(dagbag, "dbos_t_reattach")
    assert states(dr) == {"enqueue": "success"}
    wid = f"dbos_t_reattach:{dr.run_id}:enqueue:-1"
    assert [w.workflow_id for w in workflows_of(client, dr)] == [wid]
    assert xcoms(dr, "enqueue", "result") == [42]


def test_same_try_on_two_workers_makes_one_workflow(dbos_conn: str, client: DBOSClient) -> None:
    from dbos_airflow.operators.dbos import DBOSEnqueueOperator

    ti = FakeTI("enqueue")
    ids = set()
    for _ in range(2):  # two operator instances, same task instance: as two workers would
        op = DBOSEnqueueOperator(task_id="enqueue", workflow_name="wf_double", queue_name="q", workflow_args=[4])
        ids.add(op.execute({"ti": ti}))  # type: ignore[arg-type]
    (wid,) = ids
    assert wid == f"unit:{ti.run_id}:enqueue:-1"
    assert len(client.list_workflows(workflow_id_prefix=f"unit:{ti.run_id}:")) == 1


# -- retried after the workflow failed: rewind from the failed step, or restart ---------------


@pytest.mark.parametrize(("mode", "a_runs"), [("resume", 1), ("restart", 2)])
def test_retry_after_failure_reruns_per_retry_mode(dagbag: Any, client: DBOSClient, mode: str, a_runs: int) -> None:
    dr = run_dag(dagbag, f"dbos_t_retry_{mode}")
    assert states(dr) == {"flaky": "success"}
    (wf,) = workflows_of(client, dr)  # the same workflow id ran again
    assert xcoms(dr, "flaky", "result") == [{"a_runs": a_runs, "b_runs": 2}]
    assert wf.status == "SUCCESS"


def test_retry_mode_fail_does_not_rerun(dbos_conn: str, client: DBOSClient) -> None:
    from dbos_airflow.operators.dbos import DBOSEnqueueOperator

    ti = FakeTI("fails")
    op = DBOSEnqueueOperator(
        task_id="fails",
        workflow_name="wf_fail",
        queue_name="q",
        workflow_args=["no rerun"],
        wait_for_completion=True,
        poll_interval=0.2,
        retry_mode="fail",
    )
    with pytest.raises(AirflowException, match="ended ERROR: AppError: no rerun"):
        op.execute({"ti": ti})  # type: ignore[arg-type]
    ti.try_number = 2
    with pytest.raises(AirflowException, match="ended ERROR"):
        op.execute({"ti": ti})  # type: ignore[arg-type]
    (wf,) = client.list_workflows(workflow_id_prefix=f"unit:{ti.run_id}:")
    assert wf.status == "ERROR" and wf.recovery_attempts <= 1


def test_succeeded_workflow_is_never_rerun(dbos_conn: str, client: DBOSClient) -> None:
    from dbos_airflow.operators.dbos import DBOSEnqueueOperator

    ti = FakeTI("ok")
    op = DBOSEnqueueOperator(
        task_id="ok",
        workflow_name="wf_flaky",
        queue_name="q",
        wait_for_completion=True,
        poll_interval=0.2,
        retry_mode="restart",
    )
    with pytest.raises(AirflowException):
        op.execute({"ti": ti})  # type: ignore[arg-type]  # step_b fails the first time
    ti.try_number = 2
    op.execute({"ti": ti})  # type: ignore[arg-type]
    first = ti.xcom["result"]
    ti.try_number = 3
    op.execute({"ti": ti})  # type: ignore[arg-type]
    assert ti.xcom["result"] == first == {"a_runs": 2, "b_runs": 2}


# -- killed / timed out: the workflow is cancelled ---------------------------------------------


def ti_state_now(monkeypatch: pytest.MonkeyPatch, state: str | None) -> None:
    """What Airflow's API says about the task instance when ``on_kill`` asks (see contract/kill.py)."""
    monkeypatch.setattr("dbos_airflow.contract.kill.current_ti_state", lambda ti, timeout=3.0: state)


def test_sync_kill_cancels_the_workflow(dbos_conn: str, client: DBOSClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from dbos_airflow.operators.dbos import DBOSEnqueueOperator

    ti_state_now(monkeypatch, "failed")  # a person marked the running task failed

    ti = FakeTI("sleep")
    op = DBOSEnqueueOperator(
        task_id="sleep",
        workflow_name="wf_sleep",
        queue_name="q",
        workflow_args=[60],
        wait_for_completion=True,
        poll_interval=0.2,
    )
    errors: list[BaseException] = []

    def run() -> None:
        try:
            op.execute({"ti": ti})  # type: ignore[arg-type]
        except BaseException as exc:  # noqa: BLE001 - inspected below
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    wid = f"unit:{ti.run_id}:sleep:-1"
    wait_status(client, wid, {"PENDING"})
    op.on_kill()
    thread.join(30)
    assert wait_status(client, wid, {"CANCELLED"}) == "CANCELLED"
    assert errors and "CANCELLED" in str(errors[0])
    op.on_kill()  # idempotent


@pytest.mark.parametrize("dag_id", ["dbos_t_run", "dbos_t_run_deferrable"])
def test_wait_timeout_fails_the_task_and_cancels(dagbag: Any, client: DBOSClient, dag_id: str) -> None:
    dr = run_dag(dagbag, dag_id, {"workflow_name": "wf_sleep", "args": [60]})
    assert states(dr) == {"run": "failed"}
    (wf,) = workflows_of(client, dr)
    assert wait_status(client, wf.workflow_id, {"CANCELLED"}) == "CANCELLED"


@pytest.mark.parametrize("state", [None, "scheduled", "queued", "running", "up_for_retry"])
def test_sync_stop_by_airflow_cancels_nothing(
    dbos_conn: str, client: DBOSClient, monkeypatch: pytest.MonkeyPatch, state: str | None
) -> None:
    """A restarted scheduler reset the try (None, then the next try), or the worker shuts down."""
    from dbos_airflow.operators.dbos import DBOSEnqueueOperator

    ti_state_now(monkeypatch, state)
    ti = FakeTI("sleep")
    op = DBOSEnqueueOperator(task_id="sleep", workflow_name="wf_sleep", queue_name="q", workflow_args=[30])
    wid = op.execute({"ti": ti})  # type: ignore[arg-type]
    op.on_kill()
    time.sleep(0.3)
    assert client.list_workflows(workflow_ids=[wid])[0].status in ("PENDING", "ENQUEUED")
    client.cancel_workflow(wid)


def test_sync_own_execution_timeout_cancels(dbos_conn: str, client: DBOSClient) -> None:
    from airflow.sdk.exceptions import AirflowTaskTimeout

    from dbos_airflow.operators.dbos import DBOSEnqueueOperator

    ti = FakeTI("sleep")
    op = DBOSEnqueueOperator(task_id="sleep", workflow_name="wf_sleep", queue_name="q", workflow_args=[30])
    op.hook.wait_for_status = lambda *a, **k: (_ for _ in ()).throw(AirflowTaskTimeout())  # type: ignore[method-assign]
    op.wait_for_completion = True
    with pytest.raises(AirflowTaskTimeout):
        op.execute({"ti": ti})  # type: ignore[arg-type]
    op.on_kill()  # what the task runner does after AirflowTaskTimeout; no state lookup
    assert wait_status(client, f"unit:{ti.run_id}:sleep:-1", {"CANCELLED"}) == "CANCELLED"


async def test_deferred_kill_cancels_and_cleanup_does_not(
    dbos_conn: str, client: DBOSClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dbos_airflow.triggers.dbos import DBOSWorkflowTrigger

    ti_state_now(monkeypatch, "failed")  # a person marked the deferred task failed

    wid = (await client.enqueue_async({"queue_name": "q", "workflow_name": "wf_sleep"}, 60)).workflow_id
    trigger = DBOSWorkflowTrigger(workflow_id=wid, cancel_on_kill=True, end_time=time.time() + 60)
    run = asyncio.create_task(trigger.run().__anext__())
    await asyncio.sleep(0.5)
    run.cancel()  # the triggerer stops (restart, redistribution): no cancel
    await trigger.cleanup()
    await asyncio.sleep(0.3)
    assert (await client.retrieve_workflow_async(wid)).workflow_id == wid
    assert client.list_workflows(workflow_ids=[wid])[0].status in ("PENDING", "ENQUEUED")

    again = DBOSWorkflowTrigger(**trigger.serialize()[1])
    again.task_instance = FakeTI("run")  # type: ignore[assignment]
    run = asyncio.create_task(again.run().__anext__())
    await asyncio.sleep(0.3)
    await again.on_kill()  # a user marks the deferred task failed
    event = await asyncio.wait_for(run, 15)
    assert event.payload == {"kind": "workflow_ended", "workflow_id": wid, "status": "CANCELLED"}
    await again.on_kill()  # idempotent


@pytest.mark.parametrize("state", ["deferred", "scheduled", "running"])
async def test_trigger_moved_to_another_triggerer_cancels_nothing(
    dbos_conn: str, client: DBOSClient, monkeypatch: pytest.MonkeyPatch, state: str
) -> None:
    """apache/airflow PR #73454: the old triggerer calls on_kill on a trigger it lost."""
    from dbos_airflow.triggers.dbos import DBOSWorkflowTrigger

    ti_state_now(monkeypatch, state)
    wid = (await client.enqueue_async({"queue_name": "q", "workflow_name": "wf_sleep"}, 30)).workflow_id
    trigger = DBOSWorkflowTrigger(workflow_id=wid, cancel_on_kill=True, end_time=time.time() + 60)
    trigger.task_instance = FakeTI("run")  # type: ignore[assignment]
    await trigger.on_kill()
    await asyncio.sleep(0.3)
    assert client.list_workflows(workflow_ids=[wid])[0].status in ("PENDING", "ENQUEUED")
    await client.cancel_workflow_async(wid)


# -- send retried: delivered exactly once ----------------------------------------------------


def test_retried_send_is_delivered_once(dagbag: Any, client: DBOSClient) -> None:
    handle = client.enqueue({"queue_name": "q", "workflow_name": "wf_recv_all"}, "t", 3, 3, 300)
    dr = run_dag(dagbag, "dbos_t_send_once", {"destination": handle.workflow_id})
    assert states(dr) == {"send": "success"}
    assert handle.get_result() == ["exactly-once"]


def test_send_to_missing_workflow_names_it(dbos_conn: str) -> None:
    from dbos_airflow.operators.dbos import DBOSSendOperator

    missing = unique("missing")
    op = DBOSSendOperator(task_id="send", destination_id=missing, message="x")
    with pytest.raises(Exception, match=missing):
        op.execute({"ti": FakeTI("send")})  # type: ignore[arg-type]


# -- triggerer restarts mid-wait: the wait resumes from serialized state -----------------------


async def test_trigger_recreated_from_kwargs_resumes_the_wait(dbos_conn: str, client: DBOSClient) -> None:
    from dbos_airflow.triggers.dbos import DBOSEventTrigger

    wid = (
        await client.enqueue_async({"queue_name": "q", "workflow_name": "wf_set_event_later"}, "k", "v", 2)
    ).workflow_id
    first = DBOSEventTrigger(workflow_id=wid, key="k", end_time=time.time() + 60)
    task = asyncio.create_task(first.run().__anext__())
    await asyncio.sleep(0.5)
    task.cancel()
    classpath, kwargs = first.serialize()
    assert classpath == "dbos_airflow.triggers.dbos.DBOSEventTrigger"
    event = await asyncio.wait_for(DBOSEventTrigger(**kwargs).run().__anext__(), 20)
    assert event.payload == {"kind": "event_published", "workflow_id": wid, "key": "k", "value": "v"}


# -- failures carry id, status and the workflow's own message ----------------------------------


def test_error_and_cancelled_fail_with_their_message(dbos_conn: str, client: DBOSClient) -> None:
    from dbos_airflow.hooks.dbos import DBOSHook
    from dbos_airflow.sensors.dbos import DBOSWorkflowSensor

    portable = DBOSHook().enqueue({"queue_name": "q", "workflow_name": "wf_fail"}, "boom happened").workflow_id
    pickled = client.enqueue(
        {"queue_name": "q", "workflow_name": "wf_fail", "serialization_type": WorkflowSerializationFormat.NATIVE},
        "boom happened",
    ).workflow_id
    for failed in (portable, pickled):  # a pickled AppError cannot be imported here: read statically
        wait_status(client, failed, {"ERROR"})
        with pytest.raises(AirflowException) as err:
            DBOSWorkflowSensor(task_id="s", workflow_id=failed).poke({})  # type: ignore[arg-type]
        assert f"DBOS workflow ended ERROR: AppError: boom happened (workflow {failed})" == str(err.value)

    sleeping = client.enqueue({"queue_name": "q", "workflow_name": "wf_sleep"}, 60).workflow_id
    wait_status(client, sleeping, {"PENDING"})
    client.cancel_workflow(sleeping)
    wait_status(client, sleeping, {"CANCELLED"})
    with pytest.raises(AirflowException, match=f"ended CANCELLED.*{sleeping}"):
        DBOSWorkflowSensor(task_id="s", workflow_id=sleeping).poke({})  # type: ignore[arg-type]
    lenient = DBOSWorkflowSensor(
        task_id="s", workflow_id=sleeping, success_statuses=("SUCCESS", "CANCELLED"), failure_statuses=("ERROR",)
    )
    assert lenient.poke({}).is_done  # type: ignore[arg-type,union-attr]


def test_max_recovery_attempts_exceeded_fails_with_its_status(
    dbos_conn: str, client: DBOSClient, system_database_url: str
) -> None:
    """A workflow that kills its worker on every run is dead-lettered by DBOS recovery."""
    from conftest import Worker

    from dbos_airflow.sensors.dbos import DBOSWorkflowSensor

    wid = client.enqueue({"queue_name": "q_crash", "workflow_name": "wf_crash"}).workflow_id
    status = "ENQUEUED"
    for _ in range(8):  # each start recovers the workflow, which kills the worker again
        crasher = Worker(
            system_database_url, ROOT / "tests" / "dbos_app.py", executor_id="crasher", DBOS_TEST_CRASH="1"
        )
        deadline = time.monotonic() + 20
        while crasher.proc.poll() is None and time.monotonic() < deadline:
            status = client.list_workflows(workflow_ids=[wid], load_input=False)[0].status
            if status == "MAX_RECOVERY_ATTEMPTS_EXCEEDED":
                break
            time.sleep(0.2)
        crasher.stop()
        if status == "MAX_RECOVERY_ATTEMPTS_EXCEEDED":
            break
    assert status == "MAX_RECOVERY_ATTEMPTS_EXCEEDED"
    with pytest.raises(AirflowException, match=f"ended MAX_RECOVERY_ATTEMPTS_EXCEEDED.*{wid}"):
        DBOSWorkflowSensor(task_id="s", workflow_id=wid).poke({})  # type: ignore[arg-type]


@pytest.mark.parametrize("dag_id", ["dbos_t_run", "dbos_t_run_deferrable"])
def test_failed_workflow_fails_the_dag(dagbag: Any, client: DBOSClient, dag_id: str) -> None:
    dr = run_dag(dagbag, dag_id, {"workflow_name": "wf_fail", "args": ["nope"]})
    assert states(dr) == {"run": "failed"}


def test_never_picked_up_explains_why(dbos_conn: str, client: DBOSClient) -> None:
    from dbos_airflow.operators.dbos import DBOSEnqueueOperator

    ti = FakeTI("lost")
    op = DBOSEnqueueOperator(
        task_id="lost",
        workflow_name="wf_double",
        queue_name="nobody_polls_this",
        workflow_args=[1],
        wait_for_completion=True,
        poll_interval=0.2,
        timeout=1,
    )
    with pytest.raises(AirflowException) as err:
        op.execute({"ti": ti})  # type: ignore[arg-type]
    message = str(err.value)
    assert "still ENQUEUED" in message and "'nobody_polls_this'" in message and "any version" in message
    assert wait_status(client, f"unit:{ti.run_id}:lost:-1", {"CANCELLED"}) == "CANCELLED"


# -- unknown status, None event, malformed event: fail closed ----------------------------------


@pytest.mark.parametrize(
    "event",
    [
        None,
        {},
        {"kind": "bogus", "workflow_id": "w"},
        {"kind": "workflow_ended", "workflow_id": "w", "status": "ALMOST_DONE"},
        {"kind": "workflow_ended", "status": "SUCCESS"},
        "SUCCESS",
    ],
)
def test_bad_trigger_events_fail_closed(dbos_conn: str, event: Any) -> None:
    from dbos_airflow.operators.dbos import DBOSEnqueueOperator
    from dbos_airflow.sensors.dbos import DBOSEventSensor, DBOSWorkflowSensor

    tasks = [
        DBOSEnqueueOperator(task_id="e", workflow_name="wf", queue_name="q"),
        DBOSWorkflowSensor(task_id="w", workflow_id="w"),
        DBOSEventSensor(task_id="v", workflow_id="w", key="k"),
    ]
    for task in tasks:
        with pytest.raises((AirflowException, ValueError)):
            task.execute_complete({"ti": FakeTI()}, event)  # type: ignore[attr-defined,arg-type]


# -- sensors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dag_id", ["dbos_t_sensors", "dbos_t_sensors_deferrable"])
def test_sensors_wait_for_a_late_event_and_completion(dagbag: Any, client: DBOSClient, dag_id: str) -> None:
    from dbos_orchestrator.waiting.waiter import running_waiters

    from dbos_airflow.contract.deferral import CHECK_IN_WORKER_SECONDS

    # Deferrable: later than the in-worker check, so that the waits really defer.
    # (20 s past the check: a DAG run starting slowly on a loaded machine still reaches its trigger first)
    delay = CHECK_IN_WORKER_SECONDS + 20 if dag_id.endswith("deferrable") else 2
    wid = client.enqueue({"queue_name": "q", "workflow_name": "wf_set_event_later"}, "k", {"n": 1}, delay).workflow_id
    probes_before = {id(w): w.probes for w in running_waiters().values()}
    dr = run_dag(dagbag, dag_id, {"workflow_id": wid, "key": "k"})
    assert states(dr) == {"workflow": "success", "event": "success"}
    assert xcoms(dr, "event") == [{"n": 1}] and xcoms(dr, "workflow") == ["set"]
    if dag_id.endswith("deferrable"):  # the waits really ran in the (inline) triggerer: a waiter probed
        # (per waiter object: one that was stopped and replaced meanwhile starts counting at 0)
        after = {id(w): w.probes for w in running_waiters().values()}
        assert any(n > probes_before.get(k, 0) for k, n in after.items()), (probes_before, after)


@pytest.mark.parametrize("dag_id", ["dbos_t_sensors", "dbos_t_sensors_deferrable"])
def test_sensors_fail_at_once_on_unknown_workflow_or_missing_event(
    dagbag: Any, client: DBOSClient, dag_id: str
) -> None:
    started = time.monotonic()
    dr = run_dag(dagbag, dag_id, {"workflow_id": unique("nobody"), "key": "k"})
    assert states(dr) == {"workflow": "failed", "event": "failed"}
    done = client.enqueue({"queue_name": "q", "workflow_name": "wf_double"}, 1)
    done.get_result()
    dr = run_dag(dagbag, dag_id, {"workflow_id": done.workflow_id, "key": "never"})
    assert states(dr) == {"workflow": "success", "event": "failed"}
    assert time.monotonic() - started < 150  # the sensors' timeout is 300 s each: nobody waited it out


# -- mapping ------------------------------------------------------------------------------------


def test_mapped_enqueue_makes_one_workflow_per_item(dagbag: Any, client: DBOSClient) -> None:
    dr = run_dag(dagbag, "dbos_t_mapped")
    assert all(s == "success" for s in states(dr).values()) and len(states(dr)) == 21
    ids = xcoms(dr, "double")
    assert len(set(ids)) == 20
    assert xcoms(dr, "double", "result") == [2 * i for i in range(20)]
    assert len(workflows_of(client, dr)) == 20
