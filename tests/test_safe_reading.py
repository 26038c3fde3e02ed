"""No pickle is loaded inside Airflow unless the connection asks for it (README, "Security: what is and is not unpickled").

An attacker who can write one row of the DBOS system database replaces a real workflow's
output, error and event rows with a pickle whose loading creates a marker file (the SQL
UPDATEs below are that attacker). Every reading path of the provider, sync and deferrable
(``dag.test()`` runs deferred tasks through an in-process triggerer), must then fail with a
message naming the workflow, what was read, the tag and the opt-in, and the marker must never
appear. With ``allow_pickle`` on the connection, a harmless pickled value comes back as before.

Reading paths covered (see also the README's Security section):

* ``DBOSHook.get_workflow_status(load_output=True)``: test_hook_get_workflow_status_*
* ``DBOSHook.get_event`` / ``get_event_async``: test_hook_get_event_refuses_a_pickled_event
* ``DBOSWorkflowSensor`` poke: test_sync_pokes_refuse, test_reading_tasks_* (dag.test, sync and deferrable:
  an ended workflow is read by the first poke); after a deferral (``execute_complete``), output and error:
  test_deferred_sensors_refuse_what_the_trigger_saw
* ``DBOSEventSensor`` with and without ``expected_value``, poke: test_sync_pokes_refuse, test_reading_tasks_*;
  the value read in the triggerer (``DBOSEventTrigger``): test_deferred_sensors_*, test_event_trigger_*
* ``DBOSEnqueueOperator`` re-attaching with ``wait_for_completion`` (sync; deferrable: read in
  ``execute_complete``): test_sync_reattach_refuses, test_reading_tasks_*; ``retry_mode="fail"`` on an ERROR
  workflow and every failure description (``outcome.workflow_result``): test_failed_workflow_is_described_*
* the UI view (``plugin.data.workflow_detail`` and its HTML): inputs, output, error, events, every step's output
  and error: test_workflow_view_shows_trapped_rows_without_loading_them
* ``DBOSWorkflowCompletedTrigger`` (AssetWatcher) with ``include_output``: output refused, error described:
  test_completed_trigger_payloads_refuse_and_describe
* the opt-in (``allow_pickle``), hook, sensors, trigger and a deferred task: test_opt_in_*
"""

from __future__ import annotations

import asyncio
import base64
import json
import pickle
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from conftest import ROOT, unique
from dbos import DBOSPortableJSONSerializer, WorkflowSerializationFormat
from dbos_orchestrator.client import DBOSClient
from dbos_orchestrator.exceptions import DBOSUnsafeValueError
from fakes import FakeTI

from dbos_airflow.exceptions import DBOSWorkflowFailedError
from dbos_airflow.hooks.dbos import DBOSHook

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

NATIVE = WorkflowSerializationFormat.NATIVE
OPT_IN_CONN = "dbos_pickle_ok"
RUN_DEFAULTS: dict[str, Any] = {"key": "k", "expected": None, "conn": "dbos_default"}  # SAFE_PARAMS of the DAGs


class _Trap:
    """Pickles to ``open(path, "w")``: loading it creates ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def booby_trap(path: Path) -> str:
    """A stored ``py_pickle`` value (base64 text, as dbos stores it) whose loading creates ``path``."""
    return base64.b64encode(pickle.dumps(_Trap(path))).decode()


@dataclass(frozen=True)
class Rows:
    marker: Path
    trap: str
    done: str  # SUCCESS; output and event "k" replaced by the trap
    failed: str  # ERROR; error replaced by the trap
    failed_both: str  # ERROR; output and error replaced by the trap
    clean: str  # SUCCESS, pickled by the application: output "set", event "k" = {"n": 1}
    engine: sa.Engine

    def plant(self, workflow_id: str, *, output: bool = False, error: bool = False, status: str | None = None) -> None:
        """The attacker's UPDATE of a workflow's output/error (and status)."""
        sets = ["serialization = 'py_pickle'"]
        if output:
            sets.append("output = :trap")
        if error:
            sets.append("error = :trap")
        if status:
            sets.append(f"status = '{status}'")
        with self.engine.begin() as conn:
            params = {"wid": workflow_id, "trap": self.trap}
            conn.execute(
                sa.text(f"UPDATE dbos.workflow_status SET {', '.join(sets)} WHERE workflow_uuid = :wid"), params
            )
            out_sets = [s for s in sets if s.startswith(("output", "error"))]
            conn.execute(
                sa.text(f"UPDATE dbos.workflow_output SET {', '.join(out_sets)} WHERE workflow_uuid = :wid"), params
            )

    def plant_event(self, workflow_id: str, key: str) -> None:
        """The attacker's write of event ``key`` (insert, or replace the published one)."""
        with self.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO dbos.workflow_events (workflow_uuid, key, value, serialization) "
                    "VALUES (:wid, :key, :trap, 'py_pickle') ON CONFLICT (workflow_uuid, key) "
                    "DO UPDATE SET value = EXCLUDED.value, serialization = EXCLUDED.serialization"
                ),
                {"wid": workflow_id, "key": key, "trap": self.trap},
            )


def wait_status(client: DBOSClient, wid: str, wanted: set[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = client.list_workflows(workflow_ids=[wid], load_input=False, load_output=False)
        if rows and rows[0].status in wanted:
            return
        time.sleep(0.05)
    raise AssertionError(f"{wid} never reached {wanted}")


@pytest.fixture(scope="module")
def sys_client(system_database_url: str, dbos_worker: object) -> Iterator[DBOSClient]:
    c = DBOSClient(
        system_database_url=system_database_url, retry_connection_errors=False, serializer=DBOSPortableJSONSerializer()
    )
    yield c
    c.destroy()


@pytest.fixture(scope="module")
def rows(
    sys_client: DBOSClient, system_database_url: str, dbos_conn: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Rows]:
    """Real workflows run by the application with its default (pickle) serialization, then trapped."""

    def run(name: str, *args: Any) -> str:
        return sys_client.enqueue(
            {"queue_name": "q", "workflow_name": name, "serialization_type": NATIVE}, *args
        ).workflow_id

    done, clean = run("wf_set_event_later", "k", {"n": 1}, 0), run("wf_set_event_later", "k", {"n": 1}, 0)
    failed, failed_both = run("wf_fail", "boom happened"), run("wf_fail", "boom happened")
    for wid, status in ((done, "SUCCESS"), (clean, "SUCCESS"), (failed, "ERROR"), (failed_both, "ERROR")):
        wait_status(sys_client, wid, {status})
    marker = tmp_path_factory.mktemp("trap") / "PWNED"
    engine = sa.create_engine(sa.make_url(system_database_url).set(drivername="postgresql+psycopg"))
    planted = Rows(marker, booby_trap(marker), done, failed, failed_both, clean, engine)
    with engine.connect() as conn:  # the application really pickled them
        tags = (
            conn.execute(
                sa.text("SELECT serialization FROM dbos.workflow_status WHERE workflow_uuid = ANY(:ids)"),
                {"ids": [done, clean, failed]},
            )
            .scalars()
            .all()
        )
    assert set(tags) == {"py_pickle"}
    planted.plant(done, output=True)
    planted.plant_event(done, "k")
    planted.plant(failed, error=True)
    planted.plant(failed_both, output=True, error=True)
    yield planted
    engine.dispose()


@pytest.fixture(autouse=True)
def never_loaded(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "rows" in request.fixturenames:
        marker = request.getfixturevalue("rows").marker
        assert not marker.exists(), f"a booby-trapped pickle was loaded: {marker} exists"


@pytest.fixture
def opt_in_conn(system_database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = sa.make_url(system_database_url)
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{OPT_IN_CONN.upper()}",
        json.dumps(
            {
                "conn_type": "dbos",
                "host": url.host,
                "port": url.port or 5432,
                "login": url.username,
                "schema": url.database,
                "extra": {"allow_pickle": True},
            }
        ),
    )
    yield OPT_IN_CONN
    from dbos_orchestrator.waiting.waiter import running_waiters

    waiter = running_waiters().get(OPT_IN_CONN)  # the trigger's shared waiter: other tests count them
    if waiter is not None:
        waiter.stop()


def assert_refused(message: str, workflow_id: str, what: str) -> None:
    assert f"refusing to decode the {what} of DBOS workflow {workflow_id}" in message, message
    assert "stored as 'py_pickle'" in message and "allow_pickle=true" in message, message


def context(ti: FakeTI | None = None) -> Any:
    """The little of Airflow's context the operators and sensors read."""
    return {"ti": ti} if ti else {}


# -- the trap is real ---------------------------------------------------------------------------


def test_the_trap_is_armed(tmp_path: Path) -> None:
    """Loading the planted value really would run code: what the other tests prove is refused."""
    target = tmp_path / "armed"
    pickle.loads(base64.b64decode(booby_trap(target)))  # noqa: S301 - our own trap, loaded on purpose
    assert target.exists()


# -- the hook -------------------------------------------------------------------------------------


def test_hook_get_workflow_status_refuses_a_pickled_output(rows: Rows) -> None:
    with DBOSHook() as hook:
        status = hook.get_workflow_status(rows.done)  # status only: nothing decoded, nothing refused
        assert status is not None and status["status"] == "SUCCESS" and "output" not in status
        with pytest.raises(DBOSUnsafeValueError) as err:
            hook.get_workflow_status(rows.done, load_output=True)
    assert_refused(str(err.value), rows.done, "output")


def test_hook_get_event_refuses_a_pickled_event(rows: Rows) -> None:
    with DBOSHook() as hook:
        with pytest.raises(DBOSUnsafeValueError) as err:
            hook.get_event(rows.done, "k", timeout_seconds=5)
        assert_refused(str(err.value), rows.done, "event 'k'")
        with pytest.raises(DBOSUnsafeValueError) as err:
            asyncio.run(hook.get_event_async(rows.done, "k", timeout_seconds=5))
        assert_refused(str(err.value), rows.done, "event 'k'")
        assert hook.get_event(rows.done, "never", timeout_seconds=0.2) is None  # absent: nothing to decode


def test_hook_get_workflow_status_describes_a_pickled_error(rows: Rows) -> None:
    with DBOSHook() as hook:
        status = hook.get_workflow_status(rows.failed, load_output=True)
    assert status is not None and status["status"] == "ERROR" and status["output"] is None
    assert status["error"] == f"open: {rows.marker} w"  # read from the opcodes: what it would have called


# -- operators and sensors, called directly (fast) ---------------------------------------------------


def test_sync_pokes_refuse(rows: Rows) -> None:
    from dbos_airflow.sensors.dbos import DBOSEventSensor, DBOSWorkflowSensor

    cases: list[tuple[Any, str]] = [
        (DBOSWorkflowSensor(task_id="w", workflow_id=rows.done), "output"),
        (DBOSEventSensor(task_id="e", workflow_id=rows.done, key="k"), "event 'k'"),
        (DBOSEventSensor(task_id="x", workflow_id=rows.done, key="k", expected_value={"n": 1}), "event 'k'"),
        # serialization="pickle" is how a task *writes*; it is no opt-in for reading.
        (DBOSWorkflowSensor(task_id="p", workflow_id=rows.done, serialization="pickle"), "output"),
    ]
    for sensor, what in cases:
        with pytest.raises(DBOSUnsafeValueError) as err:
            sensor.poke(context())
        assert_refused(str(err.value), rows.done, what)


def test_sync_reattach_refuses(rows: Rows) -> None:
    from dbos_airflow.operators.dbos import DBOSEnqueueOperator

    op = DBOSEnqueueOperator(
        task_id="t",
        workflow_name="wf_set_event_later",
        queue_name="q",
        workflow_id=rows.done,
        wait_for_completion=True,
        poll_interval=0.2,
        timeout=10,
    )
    ti = FakeTI()
    with pytest.raises(DBOSUnsafeValueError) as err:
        op.execute(context(ti))
    assert_refused(str(err.value), rows.done, "output")
    assert ti.xcom["workflow_id"] == rows.done and "result" not in ti.xcom  # the id, never a value


def test_failed_workflow_is_described_without_loading(rows: Rows) -> None:
    """A pickled error is described from its opcodes, and a pickled output beside it is not even read."""
    from dbos_airflow.operators.dbos import DBOSEnqueueOperator
    from dbos_airflow.sensors.dbos import DBOSWorkflowSensor

    for wid in (rows.failed, rows.failed_both):
        with pytest.raises(DBOSWorkflowFailedError) as err:
            DBOSWorkflowSensor(task_id="s", workflow_id=wid).poke(context())
        assert str(err.value) == f"DBOS workflow ended ERROR: open: {rows.marker} w (workflow {wid})"
        op = DBOSEnqueueOperator(
            task_id="t",
            workflow_name="wf_fail",
            queue_name="q",
            workflow_id=wid,
            wait_for_completion=True,
            poll_interval=0.2,
            retry_mode="fail",
        )
        with pytest.raises(DBOSWorkflowFailedError, match=f"ended ERROR: open: .*\\(workflow {wid}\\)"):
            op.execute(context(FakeTI()))


def test_event_trigger_refuses_in_the_triggerer(rows: Rows) -> None:
    from dbos_airflow.triggers.dbos import DBOSEventTrigger

    async def first_event(**kwargs: Any) -> dict[str, Any]:
        trigger = DBOSEventTrigger(workflow_id=rows.done, key="k", end_time=time.time() + 20, **kwargs)
        event = await asyncio.wait_for(trigger.run().__anext__(), 20)
        return dict(event.payload)

    for kwargs in ({}, {"expected_value": {"n": 1}}):
        payload = asyncio.run(first_event(**kwargs))
        assert payload["kind"] == "error" and payload["workflow_id"] == rows.done, payload
        assert payload["message"].startswith("DBOSUnsafeValueError: ")
        assert_refused(payload["message"], rows.done, "event 'k'")


def test_workflow_view_shows_trapped_rows_without_loading_them(rows: Rows, dbos_conn: str) -> None:
    """The UI view (plugin/data.py, plugin/render.py) also reads inputs and every step's output and error."""
    from dbos_orchestrator.store.codec import Undecoded

    from dbos_airflow.plugin import data
    from dbos_airflow.plugin.render import workflow_page

    with rows.engine.begin() as conn:  # the attacker also replaces the inputs and every step's output and error
        for table in ("workflow_status", "workflow_input"):
            conn.execute(
                sa.text(f"UPDATE dbos.{table} SET inputs = :t WHERE workflow_uuid = :w"),
                {"t": rows.trap, "w": rows.done},
            )
        conn.execute(
            sa.text(
                "UPDATE dbos.operation_outputs SET output = :t, error = :t, serialization = 'py_pickle' "
                "WHERE workflow_uuid = :w"
            ),
            {"t": rows.trap, "w": rows.done},
        )
    try:
        hook = data.hook_for(dbos_conn)

        def workflow_detail(_conn: str, wid: str) -> data.WorkflowDetail:
            status = data.status_of(hook, wid)
            assert status is not None
            return data.workflow_detail(hook, status)

        for wid in (rows.done, rows.failed_both):
            detail = workflow_detail(dbos_conn, wid)
            html = workflow_page(detail, lambda w: f"/w/{w}", can_act=False, task_link=None, static="/s")
            assert isinstance(detail.output, Undecoded) and "pickled, not decoded" in html
        assert isinstance(detail.inputs, Undecoded)
        done = workflow_detail(dbos_conn, rows.done)
        assert done.steps and all(isinstance(step.output, Undecoded) for step in done.steps)
        assert all(step.error == f"open: {rows.marker} w" for step in done.steps)  # described, not loaded
        assert isinstance(done.events["k"], Undecoded)
        assert workflow_detail(dbos_conn, rows.failed).error == f"open: {rows.marker} w"
    finally:
        data.forget_hook(dbos_conn)


def test_completed_trigger_payloads_refuse_and_describe(rows: Rows, dbos_conn: str) -> None:
    """The AssetWatcher trigger with ``include_output``: completions whose output and error rows are trapped."""
    from dbos_airflow.triggers.completed import DBOSWorkflowCompletedTrigger

    name, queue = unique("trapped"), "q_safe_nobody"  # a queue no worker polls: nothing runs them

    class Store:
        data: dict[str, Any] = {}

        async def aget(self, key: str, default: Any = None) -> Any:
            return self.data.get(key, default)

        async def aset(self, key: str, value: Any) -> None:
            self.data[key] = value

    async def scenario() -> list[dict[str, Any]]:
        trigger = DBOSWorkflowCompletedTrigger(workflow_name=name, queue_name=queue, include_output=True)
        trigger.asset_state_store = Store()  # type: ignore[assignment]
        events: list[dict[str, Any]] = []

        async def consume() -> None:
            async for event in trigger.run():
                events.append(dict(event.payload))

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.5)
        with DBOSHook(dbos_conn) as hook:
            ok, failed = hook.enqueue_many({"workflow_name": name, "queue_name": queue}, [[], []])
        now = int(time.time() * 1000)
        with rows.engine.begin() as conn:  # the attacker ends both, with trapped values
            for wid, status, column in ((ok, "SUCCESS", "output"), (failed, "ERROR", "error")):
                conn.execute(
                    sa.text(
                        f"UPDATE dbos.workflow_status SET status = :s, {column} = :t, serialization = 'py_pickle', "
                        "completed_at = :now, updated_at = :now WHERE workflow_uuid = :w"
                    ),
                    {"s": status, "t": rows.trap, "now": now, "w": wid},
                )
        deadline = time.monotonic() + 30
        while len(events) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return events

    events = {e["workflow_id"]: e for e in asyncio.run(scenario())}
    assert len(events) == 2, events
    success = next(e for e in events.values() if e["status"] == "SUCCESS")
    failure = next(e for e in events.values() if e["status"] == "ERROR")
    assert success["output"] is None
    assert_refused(success["output_not_decoded"], success["workflow_id"], "output")
    assert failure["error"] == f"open: {rows.marker} w"  # described from the opcodes


# -- the real thing: dag.test(), sync and deferred ------------------------------------------------------


@pytest.fixture(scope="module")
def dagbag(dbos_conn: str, airflow_db: object) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "tests" / "dags" / "operators"))
    assert not bag.import_errors, bag.import_errors
    return bag


def run_read(dagbag: Any, dag_id: str, capfd: pytest.CaptureFixture[str], **conf: Any) -> tuple[str, str, Any]:
    """Run the DAG's one task ``read``; its state, the task log and the DAG run.

    Every param is passed: in one process, a param given to one ``dag.test()`` run stays in
    effect for later runs of the same DAG object that do not give it.
    """
    capfd.readouterr()
    dr = dagbag.get_dag(dag_id).test(run_conf={**RUN_DEFAULTS, **conf})
    (ti,) = dr.get_task_instances()
    out, err = capfd.readouterr()
    return ti.state, out + err, dr


def xcom(dr: Any, key: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(XComModel).filter_by(dag_id=dr.dag_id, run_id=dr.run_id, task_id="read", key=key).one()
        return row.value


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
@pytest.mark.parametrize(
    ("dag", "conf", "what"),
    [
        ("dbos_t_safe_workflow", {}, "output"),
        ("dbos_t_safe_event", {"key": "k"}, "event 'k'"),
        ("dbos_t_safe_event", {"key": "k", "expected": {"n": 1}}, "event 'k'"),
        ("dbos_t_safe_reattach", {}, "output"),
    ],
    ids=["workflow-sensor", "event-sensor", "event-sensor-expected", "enqueue-reattach"],
)
def test_reading_tasks_fail_with_the_clear_message(
    dagbag: Any,
    rows: Rows,
    capfd: pytest.CaptureFixture[str],
    dag: str,
    conf: dict[str, Any],
    what: str,
    deferrable: bool,
) -> None:
    """On an ended workflow the first check reads it in the worker (sensors and the re-attached enqueue alike)."""
    dag_id = f"{dag}_deferrable" if deferrable else dag
    state, log, _ = run_read(dagbag, dag_id, capfd, workflow_id=rows.done, **conf)
    assert state == "failed"
    refusal = f"refusing to decode the {what} of DBOS workflow {rows.done}: it is stored as 'py_pickle'"
    assert refusal in log, log[-3000:]


def deferred_then(action: Callable[[], None]) -> threading.Event:
    """Run ``action`` once a task is deferred (the in-process triggerer's waiter has a pending wait)."""
    from dbos_orchestrator.waiting.waiter import running_waiters

    done = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(w.pending for w in running_waiters().values()):
                action()
                done.set()
                return
            time.sleep(0.02)

    threading.Thread(target=watch, daemon=True).start()
    return done


@pytest.mark.parametrize(
    ("dag", "conf", "planted_as"),
    [
        ("dbos_t_safe_workflow_deferrable", {}, "SUCCESS"),
        ("dbos_t_safe_workflow_deferrable", {}, "ERROR"),
        ("dbos_t_safe_event_deferrable", {"key": "k"}, "event"),
        ("dbos_t_safe_event_deferrable", {"key": "k", "expected": {"n": 1}}, "event"),
    ],
    ids=["workflow-sensor-output", "workflow-sensor-error", "event-sensor", "event-sensor-expected"],
)
def test_deferred_sensors_refuse_what_the_trigger_saw(
    dagbag: Any,
    rows: Rows,
    sys_client: DBOSClient,
    capfd: pytest.CaptureFixture[str],
    dag: str,
    conf: dict[str, Any],
    planted_as: str,
) -> None:
    """The workflow is running when the sensor defers; the attacker writes while the trigger waits."""
    wid = sys_client.enqueue(
        {"queue_name": "q", "workflow_name": "wf_recv_all", "serialization_type": NATIVE}, "never", 1, 120
    ).workflow_id
    wait_status(sys_client, wid, {"PENDING"})
    if planted_as == "event":
        planted = deferred_then(lambda: rows.plant_event(wid, "k"))
    elif planted_as == "SUCCESS":
        planted = deferred_then(lambda: rows.plant(wid, output=True, status="SUCCESS"))
    else:  # a failure whose error (and output) are trapped: described, nothing loaded
        planted = deferred_then(lambda: rows.plant(wid, output=True, error=True, status="ERROR"))
    try:
        state, log, _ = run_read(dagbag, dag, capfd, workflow_id=wid, **conf)
    finally:
        sys_client.cancel_workflow(wid)
    assert planted.is_set(), "the task never deferred: the triggerer path was not exercised"
    assert state == "failed"
    if planted_as == "ERROR":
        expected = f"DBOS workflow ended ERROR: open: {rows.marker} w (workflow {wid})"
    else:
        what = "output" if planted_as == "SUCCESS" else "event 'k'"
        expected = f"refusing to decode the {what} of DBOS workflow {wid}: it is stored as 'py_pickle'"
    assert expected in log, log[-3000:]
    if planted_as == "event":  # read in the triggerer: reported through the trigger event
        assert "Waiting for DBOS workflow failed: DBOSUnsafeValueError" in log


# -- the opt-in -----------------------------------------------------------------------------------------


def test_opt_in_returns_the_real_values(rows: Rows, opt_in_conn: str) -> None:
    from airflow.sdk import PokeReturnValue

    from dbos_airflow.sensors.dbos import DBOSEventSensor, DBOSWorkflowSensor
    from dbos_airflow.triggers.dbos import DBOSEventTrigger

    with DBOSHook(opt_in_conn) as hook:
        status = hook.get_workflow_status(rows.clean, load_output=True)
        assert status is not None and status["output"] == "set" and status["error"] is None
        assert hook.get_event(rows.clean, "k", timeout_seconds=5) == {"n": 1}
    done = DBOSWorkflowSensor(task_id="w", workflow_id=rows.clean, dbos_conn_id=opt_in_conn).poke(context())
    assert isinstance(done, PokeReturnValue) and done.xcom_value == "set"
    event = DBOSEventSensor(
        task_id="e", workflow_id=rows.clean, key="k", expected_value={"n": 1}, dbos_conn_id=opt_in_conn
    ).poke(context())
    assert isinstance(event, PokeReturnValue) and event.xcom_value == {"n": 1}

    async def trigger_value() -> Any:
        trigger = DBOSEventTrigger(workflow_id=rows.clean, key="k", dbos_conn_id=opt_in_conn, end_time=time.time() + 20)
        return (await asyncio.wait_for(trigger.run().__anext__(), 20)).payload

    assert asyncio.run(trigger_value()) == {
        "kind": "event_published",
        "workflow_id": rows.clean,
        "key": "k",
        "value": {"n": 1},
    }
    # ... and the same clean workflow is refused without the opt-in.
    with DBOSHook() as hook, pytest.raises(DBOSUnsafeValueError) as err:
        hook.get_event(rows.clean, "k", timeout_seconds=5)
    assert_refused(str(err.value), rows.clean, "event 'k'")


def test_opt_in_through_a_deferred_task(
    dagbag: Any, rows: Rows, opt_in_conn: str, capfd: pytest.CaptureFixture[str]
) -> None:
    state, log, dr = run_read(
        dagbag, "dbos_t_safe_reattach_deferrable", capfd, workflow_id=rows.clean, conn=opt_in_conn
    )
    assert state == "success", log[-3000:]
    assert xcom(dr, "result") == "set"


def test_an_unknown_tag_is_refused_too(rows: Rows) -> None:
    wid = rows.failed
    with rows.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO dbos.workflow_events (workflow_uuid, key, value, serialization) "
                "VALUES (:w, 'odd', '\"x\"', 'my_format')"
            ),
            {"w": wid},
        )
    with DBOSHook() as hook, pytest.raises(DBOSUnsafeValueError) as err:
        hook.get_event(wid, "odd", timeout_seconds=1)
    assert f"the event 'odd' of DBOS workflow {wid}: it is stored as 'my_format'" in str(err.value)
