"""The contract under a real deployment, with faults injected by pid (README, "What happens when Airflow retries, kills or times out").

Real ``airflow api-server``, ``scheduler``, ``dag-processor`` and ``triggerer`` with a
LocalExecutor on a fresh Postgres metadata database (dbos_testkit/airflow_stack.py), a real DBOS worker
(tests/dbos_app.py) and the DAGs in tests/dags/deployment/dbos_deployment_dags.py. Faults are what an
operator of Airflow sees: kill -9 of a task process, of the triggerer, of the scheduler; a
person marking a deferred task failed through the REST API; the DBOS system database's own
Postgres server restarting (a private server, never the shared one).

Marked ``deployment``; ``make test`` runs it. Components are stopped by pid in ``finally``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest
from conftest import ROOT, Worker, unique
from dbos_testkit.airflow_stack import AirflowStack
from dbos_testkit.private_postgres import PrivatePostgres
from sweeps import leaks

if TYPE_CHECKING:
    from collections.abc import Iterator

    from dbos_testkit.tls_server import TLSServer

pytestmark = pytest.mark.deployment


# -- the DBOS system database's Postgres restarts under 200 deferred waits --------------------


@pytest.fixture(scope="module")
def private_pg() -> Iterator[PrivatePostgres]:
    with PrivatePostgres() as pg:
        yield pg


def _conn_json(system_database_url: str) -> str:
    return json.dumps({"conn_type": "dbos", "extra": {"system_database_url": system_database_url}})


async def _run_one(classpath: str, kwargs: dict[str, Any]) -> list[dict[str, Any]]:
    """Rebuild a trigger from its serialized form (as a triggerer does) and collect its events."""
    module, name = classpath.rsplit(".", 1)
    cls = getattr(__import__(module, fromlist=[name]), name)
    trigger = cls(**json.loads(json.dumps(kwargs)))
    return [event.payload async for event in trigger.run()]


# The workflows make no database write for this long after they start (a durable sleep): the
# outages below happen inside it. A DBOS worker whose workflow writes its outcome while the server
# is down leaves that workflow PENDING until the worker recovers it (a restart): dbos' behaviour,
# not the waits' (seen: 4 of 210 wf_sleep(14) stuck PENDING, their waits correctly still waiting).
QUIET = 30


def test_system_database_restart_under_200_deferred_waits(private_pg: PrivatePostgres) -> None:
    """Fast restart, then immediate stop + 5 s down, under 200 waits on one event loop.

    A wait ends right wherever it is in its life when the database goes away: waiting on the
    probe, re-reading an event value against ``expected_value``, or starting (first deferral,
    new waiter) while the server is down. No error event; the worker is never restarted.
    """
    from dbos import DBOSPortableJSONSerializer
    from dbos_orchestrator.client import DBOSClient
    from dbos_orchestrator.waiting.waiter import running_waiters

    from dbos_airflow.triggers.dbos import DBOSEventTrigger, DBOSWorkflowTrigger

    url = private_pg.url(f"outage_{unique('db').replace('-', '_')}_dbos_sys")
    worker = Worker(url, ROOT / "tests" / "dbos_app.py", executor_id="outage-worker")
    os.environ["AIRFLOW_CONN_DBOS_OUTAGE"] = _conn_json(url)
    os.environ["AIRFLOW_CONN_DBOS_OUTAGE_LATE"] = _conn_json(url)
    client = None
    try:
        worker.wait_ready()
        client = DBOSClient(system_database_url=url, serializer=DBOSPortableJSONSerializer())
        end_time = time.time() + 150
        expected: dict[str, dict[str, Any]] = {}
        serialized: list[tuple[str, dict[str, Any]]] = []

        def add(trigger: Any, event: dict[str, Any]) -> None:
            serialized.append(trigger.serialize())
            expected[trigger.workflow_id] = event

        for _ in range(80):
            wid = client.enqueue({"queue_name": "q", "workflow_name": "wf_sleep"}, QUIET).workflow_id
            add(
                DBOSWorkflowTrigger(workflow_id=wid, dbos_conn_id="dbos_outage", end_time=end_time),
                {"kind": "workflow_ended", "workflow_id": wid, "status": "SUCCESS"},
            )
        for _ in range(60):  # the exposed path: the value is re-read until it equals expected_value
            wid = client.enqueue({"queue_name": "q", "workflow_name": "wf_progress"}, "k", ["a", "b", "c"], QUIET)
            wid = wid.workflow_id
            add(
                DBOSEventTrigger(
                    workflow_id=wid,
                    dbos_conn_id="dbos_outage",
                    end_time=end_time,
                    key="k",
                    expected_value="c",
                    poll_interval=0.3,
                ),
                {"kind": "event_published", "workflow_id": wid, "key": "k", "value": "c"},
            )
        for _ in range(60):
            wid = client.enqueue({"queue_name": "q", "workflow_name": "wf_set_event_later"}, "k", "v", QUIET)
            wid = wid.workflow_id
            add(
                DBOSEventTrigger(workflow_id=wid, dbos_conn_id="dbos_outage", end_time=end_time, key="k"),
                {"kind": "event_published", "workflow_id": wid, "key": "k", "value": "v"},
            )
        late_ids = [
            client.enqueue({"queue_name": "q", "workflow_name": "wf_sleep"}, QUIET).workflow_id for _ in range(10)
        ]
        late = [
            DBOSWorkflowTrigger(workflow_id=w, dbos_conn_id="dbos_outage_late", end_time=end_time) for w in late_ids
        ]
        for trigger in late:
            expected[trigger.workflow_id] = {
                "kind": "workflow_ended",
                "workflow_id": trigger.workflow_id,
                "status": "SUCCESS",
            }

        async def scenario() -> list[list[dict[str, Any]]]:
            tasks = [asyncio.create_task(_run_one(*s)) for s in serialized]
            await asyncio.sleep(3)
            await asyncio.to_thread(private_pg.restart, True)  # fast restart
            await asyncio.sleep(3)
            await asyncio.to_thread(private_pg.stop, "immediate")
            # Triggers that start while the server is down, on a connection with no waiter yet.
            tasks += [asyncio.create_task(_run_one(*t.serialize())) for t in late]
            await asyncio.sleep(5)
            await asyncio.to_thread(private_pg.start)
            return list(await asyncio.wait_for(asyncio.gather(*tasks), 140))

        results = asyncio.run(scenario())
        events = [e for got in results for e in got]
        assert len(events) == len(results) == 210, [len(r) for r in results]
        errors = [e for e in events if e["kind"] == "error"]
        assert not errors, errors[:5]
        wrong = [(e, expected[e["workflow_id"]]) for e in events if e != expected[e["workflow_id"]]]
        if wrong:
            now = {
                r.workflow_id: r.status
                for r in client.list_workflows(
                    workflow_ids=[e["workflow_id"] for e, _ in wrong], load_input=False, load_output=False
                )
            }
            raise AssertionError(f"{len(wrong)} waits ended wrong; first: {wrong[:3]}; statuses now: {now}")
        assert worker.proc.poll() is None, "the DBOS worker died"
        assert not running_waiters() or all(w.pending == 0 for w in running_waiters().values())
    finally:
        for waiter in list(running_waiters().values()):
            waiter.stop()
        if client is not None:
            client.destroy()
        worker.stop()
        os.environ.pop("AIRFLOW_CONN_DBOS_OUTAGE", None)
        os.environ.pop("AIRFLOW_CONN_DBOS_OUTAGE_LATE", None)


def test_waiter_connections_are_bounded(private_pg: PrivatePostgres) -> None:
    """TCP keepalives, TCP user timeout and a statement timeout on the waiter's connections."""
    from dbos_orchestrator.waiting.probe import bounded_url

    url = bounded_url(private_pg.url("postgres"))
    import sqlalchemy as sa

    engine = sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SHOW statement_timeout")).scalar() == "30s"
            params = conn.connection.driver_connection.info.get_parameters()  # type: ignore[union-attr]
            assert params["keepalives"] == "1" and params["tcp_user_timeout"] == "30000", params
    finally:
        engine.dispose()
    assert bounded_url("sqlite:///x.sqlite") == "sqlite:///x.sqlite"
    kept = sa.make_url(bounded_url("postgresql://h/db?options=-c%20statement_timeout%3D5"))
    assert kept.query["options"] == "-c statement_timeout=5"


# -- a real Airflow deployment ------------------------------------------------------------------

DAGS = ROOT / "tests" / "dags" / "deployment"


@pytest.fixture(scope="module")
def stack(system_database_url: str, dbos_worker: Worker) -> Iterator[AirflowStack]:
    """api-server, scheduler, dag-processor, triggerer, LocalExecutor, fresh Postgres metadata DB."""
    env = {"AIRFLOW_CONN_DBOS_DEFAULT": _conn_json(system_database_url), "AIRFLOW__CORE__TEST_CONNECTION": "Enabled"}
    s = AirflowStack(DAGS, env=env)
    try:
        s.start()
        for dag_id in (
            "dbos_deploy_wait",
            "dbos_deploy_wait_deferrable",
            "dbos_deploy_killed",
            "dbos_deploy_killed_deferrable",
            "dbos_deploy_send",
            "dbos_deploy_tls",
        ):
            s.wait_dag(dag_id, timeout=180)
        yield s
    finally:
        s.stop()


def _wid(dag_id: str, run_id: str, task_id: str = "run") -> str:
    return f"{dag_id}:{run_id}:{task_id}:-1"


def _status(client: Any, wid: str) -> str | None:
    rows = client.list_workflows(workflow_ids=[wid], load_input=False, load_output=False)
    return rows[0].status if rows else None


def _wait_status(client: Any, wid: str, wanted: set[str], timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while (status := _status(client, wid)) not in wanted:
        if time.monotonic() > deadline:
            raise AssertionError(f"{wid} is {status}, never reached {wanted}")
        time.sleep(0.5)
    return str(status)


STEP_RAN = re.compile(r"STEP RAN (\S+) (\d+)")


def _steps_ran(worker: Worker, wid: str) -> list[str]:
    return [step for line in worker.lines for ran, step in STEP_RAN.findall(line) if ran == wid]


def _one_workflow_each_step_once(client: Any, worker: Worker, dag_id: str, run_id: str, steps: int) -> None:
    rows = client.list_workflows(workflow_id_prefix=f"{dag_id}:{run_id}:", load_input=False, load_output=False)
    assert [r.workflow_id for r in rows] == [_wid(dag_id, run_id)], "one workflow per task instance"
    assert rows[0].status == "SUCCESS"
    assert sorted(_steps_ran(worker, _wid(dag_id, run_id))) == [str(i) for i in range(steps)], "each step once"


def _running_pid(stack: AirflowStack, dag_id: str, run_id: str, task_id: str = "run") -> int:
    ti = stack.wait_ti(dag_id, run_id, task_id, {"running"}, timeout=120)
    deadline = time.monotonic() + 30
    while not ti.get("pid"):
        assert time.monotonic() < deadline, ti
        time.sleep(0.5)
        ti = stack.task_instance(dag_id, run_id, task_id)
    return int(ti["pid"])


def _wait_log(
    stack: AirflowStack, dag_id: str, run_id: str, text: str, task_id: str = "run", timeout: float = 120
) -> None:
    stack.wait_until(
        lambda: text in stack.task_log(dag_id, run_id, task_id, 1), timeout, f"{text!r} logged", interval=0.5
    )


TLS_CONN = "dbos_tls_pem"  # the connection of DAG dbos_deploy_tls (tests/dags/deployment)


def _triggerer_ports(stack: AirflowStack, port: int) -> set[int]:
    """Local ports of the triggerer's (and its trigger runner's) TCP connections to ``port``."""
    import psutil

    top = psutil.Process(stack.pid("triggerer"))
    return {
        c.laddr.port
        for proc in [top, *top.children(recursive=True)]
        for c in proc.net_connections("tcp")
        if c.raddr and c.raddr.port == port
    }


def _xcom_values(stack: AirflowStack, dag_id: str, run_id: str) -> list[str]:
    out = []
    for ti in stack.task_instances(dag_id, run_id):
        base = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/xcomEntries"
        for entry in stack.api("GET", base)["xcom_entries"]:
            out.append(json.dumps(stack.api("GET", f"{base}/{entry['key']}")))
    return out


def test_deferred_waits_over_tls_in_a_real_triggerer(stack: AirflowStack, tls: TLSServer) -> None:
    """Issue 29: an enqueue waited for deferred and a deferred event sensor (LISTEN) run in the real
    ``airflow triggerer`` over verify-full TLS with a client certificate whose key is PEM text in a
    connection made through the REST API; the triggerer's connection shows in ``pg_stat_ssl``. The key
    is then in no component or task log, XCom, Test button message (REST API) or DBOS tab/page."""
    from dbos import DBOSPortableJSONSerializer
    from dbos_orchestrator.client import DBOSClient

    dag_id = "dbos_deploy_tls"
    pem = tls.client_certificate_pem()
    conn = {"conn_type": "dbos", "host": "127.0.0.1", "port": tls.port, "login": "postgres", "schema": tls.database}
    wrong_ca = {**conn, "extra": json.dumps({**pem, "sslrootcert": tls.other.ca.read_text()})}
    stack.api("POST", "/connections", json={**conn, "connection_id": TLS_CONN, "extra": json.dumps(pem)})
    stack.api("POST", "/connections", json={**wrong_ca, "connection_id": f"{TLS_CONN}_wrong_ca"})
    run_id = stack.trigger(dag_id)
    for task_id in ("run", "event"):
        stack.wait_ti(dag_id, run_id, task_id, {"deferred"}, timeout=180)
    # The triggerer's shared waiter connects when it runs the triggers: its connections are TLS ones.
    stack.wait_until(lambda: bool(_triggerer_ports(stack, tls.port)), 60, "the triggerer connected", interval=0.5)
    ports = _triggerer_ports(stack, tls.port)
    encrypted = {port: ssl for _, ssl, _, port in tls.provider_connections()}
    assert all(encrypted.get(p) for p in ports), (ports, encrypted)
    client = DBOSClient(
        system_database_url=tls.url("postgres", **tls.client_certificate_query()),
        serializer=DBOSPortableJSONSerializer(),
    )
    try:
        for task_id in ("run", "start"):
            client.send(_wid(dag_id, run_id, task_id), "ok", "go")
    finally:
        client.destroy()
    assert stack.wait_run(dag_id, run_id, {"success"}, timeout=180) == "success", stack.task_instances(dag_id, run_id)
    for task_id in ("run", "event"):
        assert stack.task_instance(dag_id, run_id, task_id)["try_number"] == 1
        assert "Pausing task as DEFERRED" in stack.task_log(dag_id, run_id, task_id, 1), task_id

    tested = stack.api("POST", "/connections/test", json={**conn, "connection_id": "t", "extra": json.dumps(pem)})
    failed = stack.api("POST", "/connections/test", json={**wrong_ca, "connection_id": "t2"})
    assert tested["status"] and not failed["status"] and "TLS verification failed" in failed["message"], failed
    tab = stack.page(f"/dbos/ti/{dag_id}/run/-1/{quote(run_id, safe='')}")
    listing = stack.page("/dbos/workflows", conn_id=TLS_CONN)
    broken = stack.page("/dbos/workflows", conn_id=f"{TLS_CONN}_wrong_ca")
    assert tab.status_code == 200 and _wid(dag_id, run_id) in tab.text, tab.text[:2000]
    assert listing.status_code == 200 and broken.status_code >= 400 and "TLS verification failed" in broken.text
    shown = {
        "Test button": [tested["message"], failed["message"]],
        "DBOS tab/page": [tab.text, listing.text, broken.text],
        "XCom": _xcom_values(stack, dag_id, run_id),
        "log": _all_lines(stack),
    }
    assert leaks(tls.key_lines(), shown) == []


def test_killed_task_processes_reattach_and_send_once(stack: AirflowStack, client: Any, dbos_worker: Worker) -> None:
    """kill -9 of task processes after they enqueued (sync: while waiting; deferrable: before
    deferring) and of a send task after it sent: the retries re-attach, one workflow per task
    instance, each step ran once, the message delivered once."""
    destination = client.enqueue({"queue_name": "q", "workflow_name": "wf_recv_all"}, "t", 2, 20)
    runs = {
        "dbos_deploy_killed": stack.trigger("dbos_deploy_killed", {"steps": 4, "delay": 3}),
        "dbos_deploy_killed_deferrable": stack.trigger("dbos_deploy_killed_deferrable", {"steps": 4, "delay": 2}),
        "dbos_deploy_send": stack.trigger("dbos_deploy_send", {"destination": destination.workflow_id}),
    }
    sync_run = runs["dbos_deploy_killed"]
    pid = _running_pid(stack, "dbos_deploy_killed", sync_run)
    _wait_status(client, _wid("dbos_deploy_killed", sync_run), {"PENDING"})
    os.kill(pid, 9)
    deferred_run = runs["dbos_deploy_killed_deferrable"]
    _wait_log(stack, "dbos_deploy_killed_deferrable", deferred_run, "HANGING AFTER ENQUEUE")
    os.kill(_running_pid(stack, "dbos_deploy_killed_deferrable", deferred_run), 9)
    send_run = runs["dbos_deploy_send"]
    _wait_log(stack, "dbos_deploy_send", send_run, "HANGING AFTER SEND", task_id="send")
    os.kill(_running_pid(stack, "dbos_deploy_send", send_run, "send"), 9)
    for dag_id, run_id in runs.items():
        assert stack.wait_run(dag_id, run_id, {"success"}, timeout=150) == "success", stack.task_instances(
            dag_id, run_id
        )
    for dag_id in ("dbos_deploy_killed", "dbos_deploy_killed_deferrable"):
        ti = stack.task_instance(dag_id, runs[dag_id], "run")
        assert ti["try_number"] == 2, ti
        _one_workflow_each_step_once(client, dbos_worker, dag_id, runs[dag_id], steps=4)
    assert stack.task_instance("dbos_deploy_send", send_run, "send")["try_number"] == 2
    assert destination.get_result() == ["once"]


def test_triggerer_moved_and_killed_cancels_nothing(stack: AirflowStack, client: Any, dbos_worker: Worker) -> None:
    """Deferred waits survive a trigger reassignment (the old triggerer, frozen past its health
    check, comes back and calls on_kill on triggers it lost: apache/airflow PR #73454) and a
    kill -9 of the triggerer followed by a new one: same try, nothing cancelled. Then a person
    marks a deferred task failed through the REST API: its workflow is cancelled."""
    dag_id = "dbos_deploy_wait_deferrable"
    run_ids = [stack.trigger(dag_id, {"steps": 3, "delay": 15}) for _ in range(3)]
    # The victim's workflow must still run when a person kills its task, however slow the machine.
    victim = stack.trigger(dag_id, {"steps": 3, "delay": 120})
    for run_id in [*run_ids, victim]:
        stack.wait_ti(dag_id, run_id, "run", {"deferred"}, timeout=150)
    first = stack.pid("triggerer")
    stack.start_component("triggerer", name="triggerer-2")
    time.sleep(3)
    os.kill(first, signal.SIGSTOP)  # misses heartbeats: triggerer-2 takes its triggers
    try:
        time.sleep(16)
    finally:
        os.kill(first, signal.SIGCONT)
    stack.wait_until(
        lambda: any("the trigger was moved to another triggerer" in line for line in _all_lines(stack)),
        60,
        "the old triggerer's on_kill ran and cancelled nothing",
        interval=1,
    )
    # A person's kill while triggerer-2 runs the trigger: its on_kill cancels the workflow.
    assert _status(client, _wid(dag_id, victim)) in {"ENQUEUED", "PENDING"}, "ended before the kill"
    stack.set_task_state(dag_id, victim, "run", "failed")
    assert _wait_status(client, _wid(dag_id, victim), {"CANCELLED", "SUCCESS"}, timeout=60) == "CANCELLED"
    stack.kill("triggerer-2")  # kill -9, waits pending
    stack.stop_component("triggerer")
    stack.start_component("triggerer", name="triggerer-3")
    for run_id in run_ids:
        assert stack.wait_run(dag_id, run_id, {"success"}, timeout=180) == "success"
        assert stack.task_instance(dag_id, run_id, "run")["try_number"] == 1
        _one_workflow_each_step_once(client, dbos_worker, dag_id, run_id, steps=3)


def _all_lines(stack: AirflowStack) -> list[str]:
    lines = [line for c in stack.components.values() for line in c.lines]
    for path in (stack.home / "logs").rglob("*.log*"):
        lines.extend(path.read_text(errors="replace").splitlines())
    return lines


def test_scheduler_kill_and_restart_cancels_nothing(stack: AirflowStack, client: Any, dbos_worker: Worker) -> None:
    """kill -9 of the scheduler (only its own pid, as an OOM kill) and a new scheduler: the new one
    resets the orphaned try, whose supervisor SIGTERMs the task; on_kill must not cancel the
    workflow the next try re-attaches to (retries=0, retry_mode="fail": a cancel fails the run).

    The sync workflow must outlive the reset, which comes the new scheduler's start-up plus
    ``scheduler_health_check_threshold`` (10 s) plus up to ``orphaned_tasks_check_interval`` (5 s)
    after the kill: 6-18 s on a loaded machine. Its 4 steps 15 s apart leave a minute."""
    runs = {
        "dbos_deploy_wait": stack.trigger("dbos_deploy_wait", {"steps": 4, "delay": 15}),
        "dbos_deploy_wait_deferrable": stack.trigger("dbos_deploy_wait_deferrable", {"steps": 4, "delay": 5}),
    }
    _running_pid(stack, "dbos_deploy_wait", runs["dbos_deploy_wait"])
    _wait_status(client, _wid("dbos_deploy_wait", runs["dbos_deploy_wait"]), {"PENDING"})
    stack.wait_ti("dbos_deploy_wait_deferrable", runs["dbos_deploy_wait_deferrable"], "run", {"deferred"}, 120)
    os.kill(stack.pid("scheduler"), 9)
    time.sleep(2)
    stack.start_component("scheduler", name="scheduler-2")
    for dag_id, run_id in runs.items():
        assert stack.wait_run(dag_id, run_id, {"success"}, timeout=180) == "success", stack.task_instances(
            dag_id, run_id
        )
        _one_workflow_each_step_once(client, dbos_worker, dag_id, run_id, steps=4)
    sync = stack.task_instance("dbos_deploy_wait", runs["dbos_deploy_wait"], "run")
    log1 = stack.task_log("dbos_deploy_wait", runs["dbos_deploy_wait"], "run", 1)
    assert sync["try_number"] == 2, sync
    assert "left running: the task instance is" in log1 and "Airflow replaced this try" in log1, log1[-3000:]


def test_a_partition_key_in_the_rest_apis_trigger_body_is_the_workflows(stack: AirflowStack, client: Any) -> None:
    """docs/operations.md, "Partitioned DAG runs and partitioned queues": a run triggered through the REST
    API with a partition key; its workflow gets the key and runs on the partitioned queue ``q_part``."""
    dag_id, key = "dbos_deploy_partitioned", unique("region")
    stack.wait_dag(dag_id, timeout=180)
    body = {"logical_date": None, "partition_key": key}
    run_id = str(stack.api("POST", f"/dags/{dag_id}/dagRuns", json=body)["dag_run_id"])
    assert stack.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["partition_key"] == key
    assert stack.wait_run(dag_id, run_id, {"success", "failed"}, timeout=180) == "success", stack.task_instances(
        dag_id, run_id
    )
    (row,) = client.list_workflows(workflow_ids=[_wid(dag_id, run_id)], load_input=False)
    assert (row.queue_name, row.queue_partition_key, row.status, row.output) == ("q_part", key, "SUCCESS", 42)
    assert f"The workflow's queue_partition_key is the DAG run's partition key {key}" in stack.task_log(
        dag_id, run_id, "run", 1
    )
