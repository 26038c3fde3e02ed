"""Queues, schedules, versions, retention and the enqueue check from DAGs: ``dag.test()`` against the
real worker and real Postgres (docs/operations.md). Each operation runs twice (a retry) and must
leave the same end state; bad input fails the task naming the field, nothing written."""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from airflow.sdk.exceptions import AirflowFailException
from conftest import ROOT, Worker, connection_json, unique
from dbos_orchestrator.client import DBOSClient
from dbos_orchestrator.operations.preflight import forget_targets
from fakes import FakeTI
from test_operators import states, wait_status, xcoms


@pytest.fixture(scope="module")
def dagbag(dbos_conn: str, airflow_db: object) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "tests" / "dags" / "ops"))
    assert not bag.import_errors, bag.import_errors
    return bag


def run(dagbag: Any, dag_id: str, **params: Any) -> Any:
    return dagbag.get_dag(dag_id).test(run_conf=params)


def task_log(capfd: pytest.CaptureFixture[str]) -> str:
    """What the task runs printed since the last call (``dag.test()`` logs to the process' output)."""
    out, err = capfd.readouterr()
    return out + err


# -- queues ----------------------------------------------------------------------------


def test_queue_register_list_delete_each_twice_leaves_the_same_state(dagbag: Any, client: DBOSClient) -> None:
    from dbos_airflow.operators.queues import DBOSDeleteQueueOperator, DBOSRegisterQueueOperator

    name = unique("opsq")
    dr = run(dagbag, "dbos_t_ops_queues", queue=name)
    assert states(dr) == {"register": "success", "list": "success"}
    (registered,) = xcoms(dr, "register")
    assert registered["name"] == name and registered["global_concurrency"] == 4
    assert registered["worker_concurrency"] == 2 and registered["limiter"] == {"limit": 10, "period": 1.5}
    (listed,) = xcoms(dr, "list")
    assert [q for q in listed if q["name"] == name][0]["backlog"] == {"DELAYED": 0, "ENQUEUED": 0, "PENDING": 0}
    register = dagbag.get_dag("dbos_t_ops_queues").get_task("register")
    again = DBOSRegisterQueueOperator(
        task_id="register", queue_name=name, global_concurrency=4, worker_concurrency=2, limiter=register.limiter
    ).execute({"ti": FakeTI("register")})  # a retry: the same row
    assert again == registered
    assert [q.name for q in client.list_queues(application_name=None)].count(name) == 1

    # a backlog (a delayed workflow) makes a delete refuse, naming it; force deletes; again is a no-op
    wid = client.enqueue({"queue_name": name, "workflow_name": "wf_noop", "delay_seconds": 3600}).workflow_id
    delete = DBOSDeleteQueueOperator(task_id="delete", queue_name=name)
    with pytest.raises(AirflowFailException, match=rf"queue '{name}' still holds 1 active workflow"):
        delete.execute({"ti": FakeTI("delete")})
    assert client.retrieve_queue(name) is not None
    client.cancel_workflow(wid)
    dr = run(dagbag, "dbos_t_ops_queue_delete", queue=name)
    assert xcoms(dr, "delete") == [True] and client.retrieve_queue(name) is None
    assert delete.execute({"ti": FakeTI("delete")}) is False


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"global_concurrency": -1}, "global_concurrency=-1 must be a whole number >= 1"),
        ({"worker_concurrency": "many"}, "worker_concurrency='many'"),
        ({"limiter": {"limit": 5, "period": 0}}, "limiter.period=0 must be a number of seconds > 0"),
        ({"global_concurrency": 1, "worker_concurrency": 2}, "worker_concurrency"),  # dbos' own cross-field rule
    ],
)
def test_bad_queue_settings_fail_naming_the_field_and_write_nothing(
    dbos_conn: str, client: DBOSClient, settings: dict[str, Any], field: str
) -> None:
    from dbos_airflow.operators.queues import DBOSRegisterQueueOperator

    name = unique("badq")
    with pytest.raises(AirflowFailException, match=re.escape(field)):
        DBOSRegisterQueueOperator(task_id="r", queue_name=name, **settings).execute({"ti": FakeTI("r")})
    assert client.retrieve_queue(name) is None


def test_bad_queue_limit_through_dag_test_fails_the_task(
    dagbag: Any, client: DBOSClient, capfd: pytest.CaptureFixture[str]
) -> None:
    name = unique("badq")
    capfd.readouterr()
    dr = run(dagbag, "dbos_t_ops_queues", queue=name, concurrency=-3)
    assert states(dr) == {"register": "failed", "list": "upstream_failed"}
    assert "global_concurrency=-3 must be a whole number >= 1" in task_log(capfd)
    assert client.retrieve_queue(name) is None


# -- waits: the first of several workflows, a queue's back-pressure (deferred on the shared waiter) ------


def test_wait_first_and_queue_backlog_defer_and_say_which(
    dagbag: Any, client: DBOSClient, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    import threading

    from dbos_orchestrator.waiting.waiter import running_waiters

    from dbos_airflow.exceptions import DBOSWorkflowNotFoundError
    from dbos_airflow.sensors.dbos import DBOSWaitFirstSensor
    from dbos_airflow.sensors.queues import DBOSQueueSensor

    # dag.test() has no scheduler to race (contract/deferral.py): defer after 1 s, hold the event 1 s.
    monkeypatch.setattr("dbos_airflow.operators.base.CHECK_IN_WORKER_SECONDS", 1.0)
    monkeypatch.setattr("dbos_airflow.contract.deferral.HOLD_EVENT_SECONDS", 1.0)
    queue, topic = unique("pressure"), unique("go")
    client.register_queue(queue)  # nobody polls it: what is delayed there stays
    held = [
        client.enqueue({"queue_name": queue, "workflow_name": "wf_noop", "delay_seconds": 3600}).workflow_id
        for _ in range(2)
    ]
    gated = client.enqueue({"queue_name": "q", "workflow_name": "wf_event_recv"}, topic).workflow_id
    # Each answer comes only once its trigger waits on the process's shared waiter (dag.test() runs triggers
    # inline): the trigger, not the in-worker check, sees it.
    actions = {
        "batch-of-3-": lambda: client.send(gated, "go", topic),
        f"queue {queue}": lambda: client.cancel_workflows(held),
    }
    stop = threading.Event()

    def act_once_waited_on() -> None:
        while actions and not stop.is_set():
            waited = [k for w in running_waiters().values() for k in w.batches.keys()]
            for key in [k for k in actions if any(w.startswith(k) for w in waited)]:
                actions.pop(key)()
            time.sleep(0.1)

    helper = threading.Thread(target=act_once_waited_on, daemon=True)
    helper.start()
    capfd.readouterr()
    try:
        dr = run(dagbag, "dbos_t_ops_waits", ids=[held[0], gated, held[1]], queue=queue)
    finally:
        stop.set()
        helper.join(5)
        client.cancel_workflows([*held, gated])
    text = task_log(capfd)
    assert states(dr) == {"first": "success", "first_poke": "success", "drained": "success"}, text[-3000:]
    assert actions == {}  # both waits deferred to the shared waiter
    which = {"workflow_id": gated, "index": 1, "status": "SUCCESS"}
    assert xcoms(dr, "first") == [which] and xcoms(dr, "first_poke") == [which]
    assert f"DBOS workflow {gated} (item 1 of 3) ended first: SUCCESS" in text
    assert xcoms(dr, "drained") == [{"queue_name": queue, "backlog": {"DELAYED": 0, "ENQUEUED": 0, "PENDING": 0}}]
    assert f"DBOS queue {queue} holds 2 active workflow(s) (DELAYED 2); waiting for <= 0" in text
    with pytest.raises(DBOSWorkflowNotFoundError, match="no DBOS workflow with id 'no-such-workflow'"):
        DBOSWaitFirstSensor(task_id="f", workflow_ids=[gated, "no-such-workflow"], timeout=30).execute(
            {"ti": FakeTI("f")}
        )
    with pytest.raises(AirflowFailException, match="max_backlog=-1 must be a whole number >= 0"):
        DBOSQueueSensor(task_id="s", queue_name=queue, max_backlog=-1).execute({"ti": FakeTI("s")})
    client.delete_queue(queue)


def test_queue_sensor_until_dequeued_ends_when_a_worker_starts_one_in_poke_and_deferred(client: DBOSClient) -> None:
    """docs/operations.md, "Back-pressure": with ``until_dequeued`` the sensor also ends as soon as a worker
    dequeues a workflow of the queue after the wait began, although the backlog is still above
    ``max_backlog`` (a holder runs the whole time); what started before the wait does not count."""
    import asyncio

    from dbos_airflow.sensors.queues import DBOSQueueSensor
    from dbos_airflow.triggers.dbos import DBOSQueueTrigger

    queue, topic = "q_other", unique("hold")  # polled by the tests' worker
    holder = client.enqueue({"queue_name": queue, "workflow_name": "wf_event_recv"}, topic).workflow_id
    wait_status(client, holder, {"PENDING"})
    try:
        # Poke: the holder started before the first poke, so only a new dequeue ends the wait.
        sensor = DBOSQueueSensor(task_id="s", queue_name=queue, max_backlog=0, until_dequeued=True)
        context: Any = {"ti": FakeTI("s")}
        assert not sensor.poke(context).is_done
        started = client.enqueue({"queue_name": queue, "workflow_name": "wf_noop"}).workflow_id
        wait_status(client, started, {"SUCCESS"})
        done = sensor.poke(context)
        assert done.is_done and done.xcom_value["dequeued"] >= 1, done.xcom_value
        assert done.xcom_value["backlog"]["PENDING"] >= 1  # the backlog alone would have kept it waiting

        # Deferred: the trigger on the shared waiter, waiting since now.
        async def deferred() -> dict[str, Any]:
            since = int(time.time() * 1000)
            trigger = DBOSQueueTrigger(
                workflow_id=f"queue {queue}", queue_name=queue, max_backlog=0, dequeued_since_ms=since
            )
            first = asyncio.ensure_future(trigger.run().__anext__())
            await asyncio.sleep(1.5)
            assert not first.done()  # the holder still runs and nothing started since
            await asyncio.to_thread(client.enqueue, {"queue_name": queue, "workflow_name": "wf_noop"})
            return (await asyncio.wait_for(first, 60)).payload

        event = asyncio.run(deferred())
        assert event["kind"] == "queue_below" and event["dequeued"] >= 1 and event["backlog"]["PENDING"] >= 1, event
        assert (
            DBOSQueueSensor(task_id="s", queue_name=queue, until_dequeued=True).complete(context, event)["dequeued"]
            == event["dequeued"]
        )
    finally:
        client.send(holder, "done", topic)
    wait_status(client, holder, {"SUCCESS"})


# -- schedules -------------------------------------------------------------------------


def schedule(name: str, cron: str = "0 0 1 1 *", **extra: Any) -> dict[str, Any]:
    return {"schedule_name": name, "workflow_name": "wf_scheduled", "schedule": cron, "queue_name": "q", **extra}


def names_with(client: DBOSClient, prefix: str) -> dict[str, str]:
    rows = client.list_schedules(application_name=None, schedule_name_prefix=prefix)
    return {s["schedule_name"]: s["status"] for s in rows}


def test_schedules_as_code_apply_prune_and_bad_cron(
    dagbag: Any, client: DBOSClient, capfd: pytest.CaptureFixture[str]
) -> None:
    from dbos_airflow.operators.schedules import DBOSApplySchedulesOperator

    prefix = unique("sch") + "-"
    wanted = [schedule(prefix + "a"), schedule(prefix + "b", "*/5 * * * *", cron_timezone="Europe/Paris")]
    capfd.readouterr()
    dr = run(dagbag, "dbos_t_ops_schedules", schedules=wanted, prefix=prefix)
    assert states(dr) == {"apply": "success"}
    assert f"{prefix}b: */5 * * * * (Europe/Paris) -> next run" in task_log(capfd)  # the next runs in the task log
    (done,) = xcoms(dr, "apply")
    assert done["applied"] == [prefix + "a", prefix + "b"] and done["deleted"] == []
    nxt = {s["schedule_name"]: s["next_run"] for s in done["schedules"]}
    assert nxt[prefix + "a"].startswith(f"{datetime.now(timezone.utc).year + 1}-01-01T00:00:00")
    apply = DBOSApplySchedulesOperator(task_id="apply", schedules=wanted, prune_prefix=prefix)
    assert apply.execute({"ti": FakeTI("apply")})["applied"] == done["applied"]  # a retry: the same state
    assert names_with(client, prefix) == {prefix + "a": "ACTIVE", prefix + "b": "ACTIVE"}

    # a paused schedule stays paused when applied again; dropping one from the list deletes it
    client.pause_schedule(prefix + "a")
    changed = DBOSApplySchedulesOperator(
        task_id="apply", schedules=[schedule(prefix + "a", "0 12 * * *")], prune_prefix=prefix
    ).execute({"ti": FakeTI("apply")})
    assert changed["deleted"] == [prefix + "b"] and changed["schedules"][0]["next_run"] is None
    assert names_with(client, prefix) == {prefix + "a": "PAUSED"}
    assert client.list_schedules(application_name=None, schedule_name_prefix=prefix)[0]["schedule"] == "0 12 * * *"

    capfd.readouterr()
    bad = [schedule(prefix + "c"), schedule(prefix + "d", "61 * * * *")]
    dr = run(dagbag, "dbos_t_ops_schedules", schedules=bad, prefix=prefix)
    assert states(dr) == {"apply": "failed"}
    assert "schedules[1].schedule='61 * * * *' is not a valid cron expression" in task_log(capfd)
    assert names_with(client, prefix) == {prefix + "a": "PAUSED"}  # nothing half-written: no c, a untouched
    for entry, field in [
        ({**schedule(prefix + "e"), "cron_timezone": "Mars/Olympus"}, "schedules[0].cron_timezone='Mars/Olympus'"),
        ({**schedule(prefix + "e"), "workflow_name": ""}, "schedules[0].workflow_name=''"),
        (schedule("elsewhere"), "does not start with prune_prefix"),
    ]:
        with pytest.raises(AirflowFailException, match=re.escape(field)):
            DBOSApplySchedulesOperator(task_id="apply", schedules=[entry], prune_prefix=prefix).execute(
                {"ti": FakeTI("apply")}
            )
    assert names_with(client, prefix) == {prefix + "a": "PAUSED"}


def test_pause_backfill_trigger_resume_each_once_across_retries(dagbag: Any, client: DBOSClient) -> None:
    from dbos_airflow.operators.schedules import (
        DBOSApplySchedulesOperator,
        DBOSBackfillScheduleOperator,
        DBOSTriggerScheduleOperator,
    )

    name = unique("every-minute")
    # written as the connection writes it (the app's own serializer reads the context back)
    DBOSApplySchedulesOperator(task_id="apply", schedules=[schedule(name, "* * * * *")]).execute({"ti": FakeTI()})
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    window = {
        "start": (now - timedelta(minutes=4, seconds=30)).isoformat(),
        "end": (now - timedelta(seconds=30)).isoformat(),
    }
    first = run(dagbag, "dbos_t_ops_schedule_ops", name=name, **window)
    assert set(states(first).values()) == {"success"}
    (backfilled,) = xcoms(first, "backfill")
    assert len(backfilled) == 4 and all(w.startswith(f"sched-{name}-") for w in backfilled)
    (triggered,) = xcoms(first, "trigger")
    for wid in [*backfilled, triggered]:
        assert wait_status(client, wid, {"SUCCESS"}) == "SUCCESS"
    assert names_with(client, name) == {name: "ACTIVE"}  # paused, then resumed

    # the same task instances again (their retries): the same trigger workflow, nothing backfilled twice
    ti = FakeTI("trigger", dag_id="dbos_t_ops_schedule_ops")
    ti.run_id = first.run_id
    assert DBOSTriggerScheduleOperator(task_id="trigger", schedule_name=name).execute({"ti": ti}) == triggered
    before = client.list_workflows(workflow_id_prefix=f"sched-{name}-", load_input=False, load_output=False)
    redo = DBOSBackfillScheduleOperator(task_id="backfill", schedule_name=name, **window)
    assert redo.execute({"ti": FakeTI("backfill")}) == backfilled
    after = client.list_workflows(workflow_id_prefix=f"sched-{name}-", load_input=False, load_output=False)
    assert {w.workflow_id for w in after} - {w.workflow_id for w in before} <= {
        w.workflow_id for w in after if "-trigger-" not in w.workflow_id and w.workflow_id not in backfilled
    }  # only live firings of the every-minute cron may have appeared meanwhile
    client.delete_schedule(name)


def test_backfill_into_the_future_and_unknown_schedule_fail_naming_the_field(
    dbos_conn: str, client: DBOSClient
) -> None:
    from dbos_airflow.operators.schedules import (
        DBOSApplySchedulesOperator,
        DBOSBackfillScheduleOperator,
        DBOSPauseScheduleOperator,
    )

    name = unique("future")
    DBOSApplySchedulesOperator(task_id="apply", schedules=[schedule(name, "* * * * *")]).execute({"ti": FakeTI()})
    client.pause_schedule(name)
    now = datetime.now(timezone.utc)
    future = DBOSBackfillScheduleOperator(
        task_id="b", schedule_name=name, start=now.isoformat(), end=(now + timedelta(hours=1)).isoformat()
    )
    with pytest.raises(AirflowFailException, match="end=.* is in the future"):
        future.execute({"ti": FakeTI()})
    backwards = DBOSBackfillScheduleOperator(task_id="b", schedule_name=name, start="2024-01-02", end="2024-01-01")
    with pytest.raises(AirflowFailException, match="start=2024-01-02T00:00:00[+]00:00 must be before end"):
        backwards.execute({"ti": FakeTI()})
    with pytest.raises(AirflowFailException, match=f"schedule_name='{name}-nope': no such DBOS schedule"):
        DBOSPauseScheduleOperator(task_id="p", schedule_name=name + "-nope").execute({"ti": FakeTI()})
    assert not client.list_workflows(workflow_id_prefix=f"sched-{name}-", load_input=False, load_output=False)
    client.delete_schedule(name)


# -- retention ---------------------------------------------------------------------------


def test_retention_deletes_ended_workflows_in_pages_and_leaves_active_ones(dagbag: Any, client: DBOSClient) -> None:
    from dbos_airflow.operators.retention import DBOSDeleteWorkflowsOperator

    ended = [client.enqueue({"queue_name": "q", "workflow_name": "wf_retained"}, i).workflow_id for i in range(20)]
    for wid in ended:
        assert wait_status(client, wid, {"SUCCESS"}, timeout=60) == "SUCCESS"
    delayed = client.enqueue({"queue_name": "q", "workflow_name": "wf_retained", "delay_seconds": 3600}, 99)
    time.sleep(0.01)
    dr = run(dagbag, "dbos_t_ops_retention")
    assert xcoms(dr, "purge") == [20]  # pages of 7: 7 + 7 + 6
    left = client.list_workflows(name="wf_retained", load_input=False, load_output=False)
    assert [w.workflow_id for w in left] == [delayed.workflow_id]  # never an active one
    again = DBOSDeleteWorkflowsOperator(task_id="purge", older_than=0, workflow_name="wf_retained", page_size=7)
    assert again.execute({"ti": FakeTI("purge")}) == 0  # a retry: nothing left
    client.cancel_workflow(delayed.workflow_id)
    future = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    for kwargs, field in [
        ({"older_than": future}, "is in the future"),
        ({"older_than": -5}, "older_than=-5 seconds must be >= 0"),
        ({"older_than": 0, "statuses": ["PENDING"]}, "only ended statuses can be deleted"),
        ({"older_than": 0, "page_size": 0}, "page_size=0"),
    ]:
        with pytest.raises(AirflowFailException, match=re.escape(field) if "=" in field else field):
            DBOSDeleteWorkflowsOperator(task_id="purge", workflow_name="wf_retained", **kwargs).execute(
                {"ti": FakeTI("purge")}
            )
    assert [w.workflow_id for w in client.list_workflows(name="wf_retained", load_input=False)] == [delayed.workflow_id]


# -- application versions (a system database of their own: a new version becomes the latest) ----


@pytest.fixture(scope="module")
def versions_db(postgres_server_url: str) -> Iterator[str]:
    """A system database where workers of versions ``blue`` then ``green`` launched once each."""
    name = f"dbos_airflow_versions_{secrets.token_hex(3)}_dbos_sys"
    server = sa.make_url(postgres_server_url)
    url = server.set(database=name).render_as_string(hide_password=False)
    try:
        for version in ("blue", "green"):
            worker = Worker(
                url, ROOT / "tests" / "dbos_app.py", executor_id=f"v-{version}", DBOS_TEST_APP_VERSION=version
            )
            worker.wait_ready()
            worker.stop()
        yield url
    finally:
        engine = sa.create_engine(server.set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


def test_promote_a_version_and_roll_back_from_xcom(
    dagbag: Any, versions_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dbos_airflow.operators.versions import DBOSPromoteApplicationVersionOperator

    monkeypatch.setenv("AIRFLOW_CONN_DBOS_DEFAULT", connection_json(versions_db))
    c = DBOSClient(system_database_url=versions_db, retry_connection_errors=False)
    try:
        assert c.get_latest_application_version()["version_name"] == "green"
        dr = run(dagbag, "dbos_t_ops_versions", version="blue")
        assert set(states(dr).values()) == {"success"}
        assert xcoms(dr, "promote") == [{"latest": "blue", "previous": "green"}]
        assert [v["version_name"] for v in xcoms(dr, "list")[0]][:1] == ["blue"]
        assert xcoms(dr, "rollback") == [{"latest": "green", "previous": "blue"}]
        assert c.get_latest_application_version()["version_name"] == "green"  # rolled back
        retry = DBOSPromoteApplicationVersionOperator(task_id="rollback", version_name="green")
        ti = FakeTI("rollback")
        assert retry.execute({"ti": ti}) == {"latest": "green", "previous": "blue"} and ti.xcom["previous"] == "blue"
        with pytest.raises(AirflowFailException, match="version_name='gren' is not a registered application version"):
            DBOSPromoteApplicationVersionOperator(task_id="p", version_name="gren").execute({"ti": FakeTI()})
        assert c.get_latest_application_version()["version_name"] == "green"
    finally:
        c.destroy()


# -- the newcomer's typo: fail fast on a queue no worker polls ----------------------------------


@pytest.fixture(scope="module")
def order_app(example_system_db: str) -> Iterator[str]:
    worker = Worker(example_system_db, ROOT / "examples" / "order_worker.py", executor_id="ops-orders")
    worker.wait_ready()
    yield example_system_db
    worker.stop()


def test_a_mistyped_queue_warns_at_once_naming_the_real_one_and_fail_mode_writes_nothing(
    dagbag: Any, order_app: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_DBOS_DEFAULT", connection_json(order_app))
    forget_targets()
    started = time.monotonic()
    capfd.readouterr()
    dr = run(dagbag, "dbos_t_ops_typo")
    assert time.monotonic() - started < 60  # at once: not after a wait's timeout
    assert states(dr) == {"enqueue": "success", "enqueue_strict": "failed"}
    text = task_log(capfd)
    assert "queue_name='ordres' is not a registered DBOS queue" in text and "(did you mean 'orders'?)" in text
    assert "registered queues: orders" in text and "nothing was enqueued" in text
    c = DBOSClient(system_database_url=order_app, retry_connection_errors=False)
    try:
        warned = c.list_workflows(workflow_id_prefix=f"dbos_t_ops_typo:{dr.run_id}:enqueue:", load_input=False)
        assert [w.status for w in warned] == ["ENQUEUED"]  # warn mode enqueued it: it never runs
        strict = c.list_workflows(workflow_id_prefix=f"dbos_t_ops_typo:{dr.run_id}:enqueue_strict:", load_input=False)
        assert strict == []  # fail mode: nothing written
        c.cancel_workflow(warned[0].workflow_id)
    finally:
        c.destroy()
    assert os.environ["AIRFLOW_CONN_DBOS_DEFAULT"] == connection_json(order_app)


def test_the_schedules_and_retention_example_runs_against_the_demo_app(
    airflow_db: object, order_app: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW_CONN_DBOS_DEFAULT", connection_json(order_app))
    dag = DagBag(dag_folder=str(ROOT / "dags" / "dbos_schedules_and_retention.py")).get_dag(
        "dbos_schedules_and_retention"
    )
    dr = dag.test()
    assert set(states(dr).values()) == {"success"}
    (applied,) = xcoms(dr, "apply_schedules")
    assert applied["applied"] == ["orders-nightly-report"] and applied["schedules"][0]["next_run"]
    assert [q["name"] for q in xcoms(dr, "queues")[0]] == ["orders"]
    assert xcoms(dr, "delete_old_workflows") == [0]
