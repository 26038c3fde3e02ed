"""A DBOS application written in TypeScript, driven from Airflow (README, "Applications in other languages").

A real TypeScript DBOS worker (examples/ts_worker, ``@dbos-inc/dbos-sdk`` as pinned in its
package-lock.json, built by ``make ts-app``) runs as a process against the shared Postgres on a
fresh system database of its own, which it creates and migrates; Airflow reaches it through the
connection ``dbos_ts`` and runs the DAGs of tests/dags/typescript_app/dbos_ts_dags.py with ``dag.test()``. What
the README says holds across languages, and what it says does not, is checked here against the
SDK rather than assumed: every claim of that section has a test below.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import subprocess
import time
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from conftest import ROOT, Worker, connection_json
from dbos_orchestrator.exceptions import DBOSUnsafeValueError
from dbos_testkit.child_process import ChildProcess
from test_completed_trigger import MemoryStateStore, Run, trigger
from test_operators import states, xcoms

from dbos_airflow.contract.deferral import CHECK_IN_WORKER_SECONDS
from dbos_airflow.hooks.dbos import DBOSHook

if TYPE_CHECKING:
    from collections.abc import Iterator

TS_APP = ROOT / "examples" / "ts_worker"
MAIN_JS = TS_APP / "dist" / "main.js"
QUEUE = "ts_q"
APP_VERSION = "ts-test"
CONN = "dbos_ts"
# Migration versions of the pinned SDKs (`SELECT version FROM dbos.dbos_migrations`).
TS_SCHEMA_VERSION = 123  # @dbos-inc/dbos-sdk 5.3.0
PY_SCHEMA_VERSION = 125  # dbos 3.4.0: 124 and 125 only add two indexes on application_versions
NEED_NODE = "Node.js >= 20 with npm (https://nodejs.org or NodeSource; Debian 12's own nodejs is 18, too old)"


class TSWorker(ChildProcess):
    """The TypeScript example app (``node examples/ts_worker/dist/main.js``), started at once."""

    def __init__(self, system_database_url: str, executor_id: str = "ts-worker") -> None:
        node = shutil.which("node")
        if node is None:
            pytest.fail(f"node not found: the TypeScript app tests need {NEED_NODE}", pytrace=False)
        env = {**os.environ, "DBOS_SYSTEM_DATABASE_URL": system_database_url, "DBOS_EXECUTOR_ID": executor_id}
        super().__init__(f"TS worker {executor_id}", [node, str(MAIN_JS)], env)
        try:
            self.wait_for("WORKER READY", 60)
        except RuntimeError:
            self.stop()
            raise


@pytest.fixture(scope="module")
def ts_built() -> None:
    """``make ts-app``: installs (npm ci) and compiles the app when its sources changed; fails, never skips."""
    if shutil.which("make") is None or shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail(f"make, node or npm not found: the TypeScript app tests need {NEED_NODE}", pytrace=False)
    done = subprocess.run(["make", "-s", "ts-app"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    if done.returncode != 0 or not MAIN_JS.exists():
        pytest.fail(f"`make ts-app` failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}", pytrace=False)


def fresh_database(server_url: str) -> tuple[str, sa.Engine]:
    name = f"dbos_airflow_ts_{secrets.token_hex(4)}_dbos_sys"
    server = sa.make_url(server_url)
    admin = sa.create_engine(server.set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    return server.set(database=name).render_as_string(hide_password=False), admin


def drop_database(url: str, admin: sa.Engine) -> None:
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{sa.make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


def schema_version(url: str) -> int:
    engine = sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT version FROM dbos.dbos_migrations")).scalar_one())
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def ts_database_url(postgres_server_url: str) -> Iterator[str]:
    """This module's own fresh system database (created here, migrated by the TypeScript app, dropped)."""
    url, admin = fresh_database(postgres_server_url)
    yield url
    drop_database(url, admin)


@pytest.fixture(scope="module")
def ts_worker(ts_built: None, ts_database_url: str) -> Iterator[TSWorker]:
    worker = TSWorker(ts_database_url)
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def ts_conn(ts_database_url: str, ts_worker: TSWorker) -> Iterator[str]:
    """``AIRFLOW_CONN_DBOS_TS`` (JSON form) pointing at the TypeScript app's system database."""
    os.environ["AIRFLOW_CONN_DBOS_TS"] = connection_json(ts_database_url)
    yield CONN
    os.environ.pop("AIRFLOW_CONN_DBOS_TS", None)


@pytest.fixture(scope="module")
def dagbag(ts_conn: str, airflow_db: object) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "tests" / "dags" / "typescript_app"))
    assert not bag.import_errors, bag.import_errors
    return bag


@pytest.fixture
def hook(ts_conn: str) -> Iterator[DBOSHook]:
    h = DBOSHook(ts_conn)
    yield h
    h.close()


def run_dag(dagbag: Any, dag_id: str) -> Any:
    return dagbag.get_dag(dag_id).test()


def ended(hook: DBOSHook, name: str, *args: Any, class_name: str | None = None, **kwargs: Any) -> dict[str, Any]:
    """Enqueue on the TypeScript app's queue, wait until it ends; its status with output and error."""
    options: dict[str, Any] = {"workflow_name": name, "queue_name": QUEUE}
    if class_name:
        options["workflow_class_name"] = class_name
    wid = hook.enqueue(options, *args, **kwargs).workflow_id  # type: ignore[arg-type]
    hook.wait_for_status(wid, timeout=30, poll_interval=0.2)
    status = hook.get_workflow_status(wid, load_output=True)
    assert status is not None
    return status


def task_log(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> str:
    """What ``dag.test()`` logged: the logging records and Airflow's task loggers (stdout)."""
    return "\n".join([r.getMessage() for r in caplog.records] + capsys.readouterr().out.splitlines())


# -- what holds: portable arguments, outputs, events, messages, errors as name + message -------


def test_enqueue_and_wait_returns_the_typescript_output(dagbag: Any) -> None:
    """README, "Applications in other languages": portable arguments in, the output back as JSON."""
    dr = run_dag(dagbag, "dbos_ts_quote")
    assert states(dr) == {"quote": "success", "invoice": "success"}
    wid = f"dbos_ts_quote:{dr.run_id}:quote:-1"
    assert xcoms(dr, "quote") == [wid]
    assert xcoms(dr, "quote", "result") == [{"order_id": "T-1", "items": 2, "subtotal": 11.5, "lang": "typescript"}]
    assert xcoms(dr, "invoice") == ["T-1: 11.50 (typescript)"]


def test_deferrable_enqueue_waits_for_the_typescript_workflow_in_the_triggerer(dagbag: Any) -> None:
    """README, "Applications in other languages" and "Deferrable tasks defer only when they must":
    the workflow sleeps longer than the in-worker check, so the wait really runs in a trigger."""
    from dbos_orchestrator.waiting.waiter import running_waiters

    def probes() -> int:
        waiter = running_waiters().get(CONN)
        return waiter.probes if waiter is not None else 0

    before, started = probes(), time.monotonic()
    dr = run_dag(dagbag, "dbos_ts_sleep_deferrable")
    assert states(dr) == {"sleep": "success"}
    assert xcoms(dr, "sleep", "result") == ["slept 8s in TypeScript"]
    assert time.monotonic() - started > CHECK_IN_WORKER_SECONDS
    assert probes() > before  # the (inline) triggerer's shared waiter polled for it: a trigger ran


def test_event_sensor_and_send_reach_the_typescript_workflow(dagbag: Any, hook: DBOSHook) -> None:
    """README, "Applications in other languages": events set in TypeScript, a message sent from Airflow."""
    dr = run_dag(dagbag, "dbos_ts_approval")
    assert set(states(dr).values()) == {"success"}, states(dr)
    wid = f"dbos_ts_approval:{dr.run_id}:start:-1"
    assert xcoms(dr, "asked") == ["waiting"]
    assert xcoms(dr, "done") == [{"got": {"approved": True, "by": "airflow"}, "by": "typescript"}]
    assert hook.get_event(wid, "status", timeout_seconds=0) == "done"


def test_a_thrown_typescript_error_fails_the_task_with_its_name_and_message(
    dagbag: Any, hook: DBOSHook, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """README, "Applications in other languages": `throw new OrderRejectedError(...)` in TypeScript."""
    caplog.set_level(logging.INFO)
    dr = run_dag(dagbag, "dbos_ts_reject")
    assert states(dr) == {"reject": "failed"}
    wid = f"dbos_ts_reject:{dr.run_id}:reject:-1"
    expected = f"DBOS workflow ended ERROR: OrderRejectedError: out of stock: widget (workflow {wid})"
    assert expected in task_log(caplog, capsys)
    status = hook.get_workflow_status(wid, load_output=True)
    assert status is not None and status["error"] == "OrderRejectedError: out of stock: widget"


def test_hook_reads_typescript_events_and_outputs(hook: DBOSHook) -> None:
    """README, "Applications in other languages": ``DBOSHook.get_event`` and ``get_workflow_status``."""
    status = ended(hook, "ts_publish", "shipment", {"parcels": [1, 2], "carrier": "ups", "insured": None})
    assert status["status"] == "SUCCESS" and status["output"] == "published" and status["error"] is None
    assert status["app_version"] == APP_VERSION and status["queue_name"] == QUEUE
    assert hook.get_event(status["workflow_id"], "shipment", timeout_seconds=5) == {
        "parcels": [1, 2],
        "carrier": "ups",
        "insured": None,
    }
    failed = ended(hook, "ts_reject", "no stock")
    assert failed["status"] == "ERROR" and failed["output"] is None
    assert failed["error"] == "OrderRejectedError: no stock"


async def test_completion_trigger_payloads_of_typescript_workflows(hook: DBOSHook) -> None:
    """README, "DAGs that start when DBOS workflows end", for a TypeScript app's workflows."""
    run = Run(
        trigger(
            MemoryStateStore(),
            dbos_conn_id=CONN,
            workflow_name=["ts_double", "ts_reject"],
            queue_name=QUEUE,
            include_output=True,
        )
    )
    try:
        import asyncio

        await asyncio.sleep(0.5)
        ok = (await hook.enqueue_async({"workflow_name": "ts_double", "queue_name": QUEUE}, 21)).workflow_id
        bad = (await hook.enqueue_async({"workflow_name": "ts_reject", "queue_name": QUEUE}, "late")).workflow_id
        events = {e["workflow_id"]: e for e in await run.until(2)}
    finally:
        await run.stop()
    assert set(events) == {ok, bad}
    for wid, status, name in ((ok, "SUCCESS", "ts_double"), (bad, "ERROR", "ts_reject")):
        event = events[wid]
        assert (event["name"], event["status"], event["queue_name"]) == (name, status, QUEUE)
        assert event["class_name"] is None and event["app_version"] == APP_VERSION
        assert event["completion_key"] == f"{wid}@{event['completed_at_ms']}"
    assert events[ok]["output"] == 42 and events[ok].get("error") is None
    assert events[bad]["error"] == "OrderRejectedError: late" and events[bad].get("output") is None


# -- what does not hold, checked ----------------------------------------------------------------


def test_keyword_arguments_are_dropped_by_the_typescript_sdk(dagbag: Any, hook: DBOSHook) -> None:
    """README, "Applications in other languages": TypeScript takes positional arguments only; the
    keyword arguments are stored (``namedArgs``) but never reach the function, and nothing fails."""
    dr = run_dag(dagbag, "dbos_ts_kwargs")
    assert states(dr) == {"echo": "success"}
    assert xcoms(dr, "echo", "result") == [{"args": [1, "a"]}]
    wid = f"dbos_ts_kwargs:{dr.run_id}:echo:-1"
    assert hook.value_reader().inputs(wid) == {"args": [1, "a"], "kwargs": {"k": 2}}


def test_pickled_arguments_fail_the_typescript_workflow(
    dagbag: Any, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """README, "Applications in other languages": ``serialization="pickle"`` cannot reach TypeScript.

    The SDK fails the workflow and stores its own error in SuperJSON under the row's ``py_pickle``
    tag; the task still fails with that error's name and message, read as JSON (nothing unpickled).
    """
    caplog.set_level(logging.INFO)
    dr = run_dag(dagbag, "dbos_ts_pickle")
    assert states(dr) == {"pickled": "failed"}
    wid = f"dbos_ts_pickle:{dr.run_id}:pickled:-1"
    expected = (
        f"DBOS workflow ended ERROR: TypeError: Value deserialization type py_pickle is not available (workflow {wid})"
    )
    assert expected in task_log(caplog, capsys)


def test_class_workflows_need_a_class_method_registration_name(
    dagbag: Any,
    hook: DBOSHook,
    ts_worker: TSWorker,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """README, "Applications in other languages": the provider enqueues ``Class.method``; TypeScript
    registers a class workflow under the bare method name unless told otherwise, and that one is
    never picked up (it stays PENDING, and the TypeScript worker logs that it cannot find it)."""
    caplog.set_level(logging.INFO)
    dr = run_dag(dagbag, "dbos_ts_class")
    assert states(dr) == {"refund": "success", "charge": "failed"}
    assert xcoms(dr, "refund", "result") == ["refunded 5"]
    charge = f"dbos_ts_class:{dr.run_id}:charge:-1"
    assert "still PENDING" in task_log(caplog, capsys)
    status = hook.get_workflow_status(charge)
    assert status is not None and (status["name"], status["class_name"]) == ("Billing.charge", "Billing")
    assert status["status"] == "CANCELLED"  # the task's own timeout cancelled it (cancel_on_kill)
    told = [line for line in ts_worker.lines if "Billing.charge" in line]
    assert any("Cannot find workflow function" in line for line in told), ts_worker.lines[-20:]


def test_typescript_child_workflows_are_superjson_unless_declared_portable(hook: DBOSHook, ts_worker: TSWorker) -> None:
    """README, "Applications in other languages": a child a TypeScript workflow starts is stored in
    the SDK's default SuperJSON (refused, with a hint) unless registered ``serialization: 'portable'``."""
    parent = ended(hook, "ts_parent", 4)
    default_child, portable_child = parent["output"]["children"]
    assert hook.get_workflow_status(portable_child, load_output=True)["output"] == {"doubled": 8}  # type: ignore[index]
    with pytest.raises(DBOSUnsafeValueError, match=r"stored as 'js_superjson'.*serialization: 'portable'"):
        hook.get_workflow_status(default_child, load_output=True)
    assert hook.get_workflow_status(default_child)["status"] == "SUCCESS"  # type: ignore[index]


def test_python_and_typescript_migrations_share_one_database(ts_built: None, postgres_server_url: str) -> None:
    """README, "Applications in other languages": the SDKs' schema versions differ (123 and 125) and
    both launch on a database the other migrated; DBOS Python adds its two indexes, TypeScript
    leaves the newer version alone, and both keep running workflows there."""
    from dbos import DBOSPortableJSONSerializer
    from dbos_orchestrator.client import DBOSClient

    url, admin = fresh_database(postgres_server_url)
    started: list[ChildProcess] = []
    client = DBOSClient(system_database_url=url, retry_connection_errors=False, serializer=DBOSPortableJSONSerializer())
    try:
        started.append(TSWorker(url, "ts-first"))
        assert schema_version(url) == TS_SCHEMA_VERSION
        python = Worker(url, ROOT / "tests" / "dbos_app.py", "py-after-ts")
        started.append(python)
        python.wait_ready()
        assert schema_version(url) == PY_SCHEMA_VERSION
        assert client.enqueue({"workflow_name": "ts_double", "queue_name": QUEUE}, 5).get_result() == 10
        assert client.enqueue({"workflow_name": "wf_double", "queue_name": "q"}, 6).get_result() == 12
        started.pop(0).stop()
        started.append(TSWorker(url, "ts-again"))  # launches on the database Python migrated
        assert schema_version(url) == PY_SCHEMA_VERSION
        assert client.enqueue({"workflow_name": "ts_double", "queue_name": QUEUE}, 7).get_result() == 14
    finally:
        for worker in started:
            worker.stop()
        client.destroy()
        drop_database(url, admin)
