"""Workflow streams in task logs (docs/streams.md): the safe stream reader, the shared waiter's
stream waits, and DBOSStreamSensor under ``dag.test()`` in a worker (poke) and deferred, against
the real DBOS worker (tests/dbos_app.py ``wf_stream``) and Postgres.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

import pytest
from conftest import unique
from dbos_orchestrator.client import DBOSClient

VALUE_LINE = re.compile(r"stream '([^']+)' #(\d+): (.*)$")


def _lines(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> list[str]:
    out = capsys.readouterr().out.splitlines()
    return [r.getMessage() for r in caplog.records] + [line.split("] ", 1)[-1] for line in out]


def _logged_offsets(lines: list[str], key: str) -> list[int]:
    found = []
    for line in lines:
        m = VALUE_LINE.search(line)
        if m and m.group(1) == key:
            found.append(int(m.group(2)))
    return found


def _start(client: DBOSClient, key: str, n: int, delay: float, **kw: Any) -> str:
    wid = unique("stream")
    client.enqueue({"queue_name": "q", "workflow_name": "wf_stream", "workflow_id": wid}, key, n, delay, **kw)
    return wid


def _reader(dbos_conn: str) -> Any:
    from dbos_airflow.hooks.dbos import DBOSHook

    return DBOSHook(dbos_conn).value_reader()


# -- the reader ----------------------------------------------------------------------------------


def test_reader_pages_values_closes_and_refuses_pickles(dbos_conn: str, client: DBOSClient) -> None:
    from dbos_orchestrator.exceptions import DBOSOptionsError, DBOSUnsafeValueError

    wid = _start(client, "k", 5, 0.0)
    client.retrieve_workflow(wid).get_result()
    reader = _reader(dbos_conn)
    page = reader.stream_page(wid, "k", 0)
    assert page.values == [{"i": i} for i in range(5)] and page.closed and page.next_offset == 6
    tail = reader.stream_page(wid, "k", 3, limit=1)
    assert tail.values == [{"i": 3}] and not tail.closed and tail.status.value == "SUCCESS"
    summary = reader.stream_summaries(wid)
    assert [(s.key, s.count, s.closed) for s in summary] == [("k", 5, True)]
    assert reader.stream_values_for_display(wid, "k", last=2) == [(3, {"i": 3}), (4, {"i": 4})]
    with pytest.raises(DBOSOptionsError, match="offset must be >= 0"):
        reader.stream_page(wid, "k", -1)
    with pytest.raises(DBOSOptionsError, match="key"):
        reader.stream_page(wid, "", 0)
    missing = reader.stream_page("no-such-workflow", "k", 0)
    assert missing.status is None and missing.ended

    pickled = unique("pickled")
    client.enqueue({"queue_name": "q", "workflow_name": "wf_stream_pickled", "workflow_id": pickled}, "p")
    client.retrieve_workflow(pickled).get_result()
    with pytest.raises(
        DBOSUnsafeValueError, match=rf"stream 'p' value at offset 0 of DBOS workflow {pickled}.*py_pickle"
    ):
        reader.stream_page(pickled, "p", 0)
    shown = reader.stream_values_for_display(pickled, "p")
    assert len(shown) == 1 and str(shown[0][1]) == "pickled, not decoded"


async def test_waiter_wakes_stream_waits_on_notify_in_one_statement(dbos_conn: str, client: DBOSClient) -> None:
    """Many idle stream waits cost a bounded number of statements; a write wakes its wait at once."""
    from dbos_airflow.hooks.dbos import DBOSHook

    hook = DBOSHook(dbos_conn)
    waiter = await hook.get_waiter_async()
    slow = unique("sleeper")
    client.enqueue({"queue_name": "q", "workflow_name": "wf_sleep", "workflow_id": slow}, 30.0)
    watchers = [asyncio.ensure_future(waiter.streams.observe(slow, f"k{i}", 0)) for i in range(50)]
    await asyncio.sleep(0.3)
    before = waiter.streams.probes
    await asyncio.sleep(2.0)
    per_second = (waiter.streams.probes - before) / 2.0
    assert per_second <= 3, per_second  # 50 idle waits: one statement per 0.5 s fallback, not per wait
    wid = _start(client, "live", 1, 0.0, close=False)
    started = time.monotonic()
    obs = await waiter.streams.observe(wid, "live", 0, deadline=time.time() + 20)
    assert (obs.value_present or obs.status is not None) and time.monotonic() - started < 10
    client.cancel_workflow(slow)
    done = await asyncio.wait_for(asyncio.gather(*watchers), 10)  # the workflow stopped: every wait ends
    assert {str(o.status) for o in done} == {"CANCELLED"} and not any(o.value_present for o in done)
    await hook.__aexit__()


# -- the sensor under dag.test() -------------------------------------------------------------------


@pytest.fixture(scope="module")
def dagbag(dbos_conn: str, airflow_db: object) -> Any:
    from airflow.dag_processing.dagbag import DagBag
    from conftest import ROOT

    bag = DagBag(dag_folder=str(ROOT / "tests" / "dags" / "streams"))
    assert not bag.import_errors, bag.import_errors
    return bag


def _xcom(dr: Any) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(dag_id=dr.dag_id, run_id=dr.run_id, task_id="stream", key="return_value")
            .one()
        )
        return row.value


@pytest.fixture
def quick_deferral(monkeypatch: pytest.MonkeyPatch) -> None:
    """dag.test() has no scheduler to race (contract/deferral.py): defer after 1 s, hold 1 s."""
    monkeypatch.setattr("dbos_airflow.operators.base.CHECK_IN_WORKER_SECONDS", 1.0)
    monkeypatch.setattr("dbos_airflow.contract.deferral.HOLD_EVENT_SECONDS", 1.0)


@pytest.mark.parametrize("deferrable", [False, True], ids=["worker", "deferred"])
def test_1000_values_at_200_per_s_reach_the_log_in_order_once(
    dbos_conn: str,
    client: DBOSClient,
    dagbag: Any,
    quick_deferral: None,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    deferrable: bool,
) -> None:
    caplog.set_level(logging.INFO)
    # Deferred: nothing is written before the trigger follows the stream (message "go", sent when its
    # follower starts), whatever the machine's load: every value is read by the trigger, none in the worker.
    wid = _start(client, "progress", 1000, 0.005, gate_at=0 if deferrable else -1)
    dag_id = "dbos_t_stream_deferred" if deferrable else "dbos_t_stream_worker"
    if deferrable:
        from dbos_airflow.triggers.follow import StreamFollower

        follower_start = StreamFollower.start
        opened: list[str] = []

        async def start_then_open(self: Any) -> None:
            await follower_start(self)
            if not opened:
                opened.append(wid)
                await asyncio.to_thread(client.send, wid, "go", "go")

        monkeypatch.setattr(StreamFollower, "start", start_then_open)
    dr = dagbag.get_dag(dag_id).test(run_conf={"workflow_id": wid, "key": "progress"})
    if deferrable:
        assert opened == [wid]  # the gate opened from the trigger, not by the workflow's recv timeout
    lines = _lines(caplog, capsys)
    assert [ti.state for ti in dr.get_task_instances()] == ["success"], lines[-20:]
    assert _logged_offsets(lines, "progress") == list(range(1000))
    assert _xcom(dr) == {"i": 999}
    assert any("value(s) read; the stream was closed" in line for line in lines)
    if deferrable:
        assert any("DBOSStreamTrigger" in line or "Pausing task as DEFERRED" in line for line in lines)


def test_failed_workflow_fails_the_task_after_logging_its_values(
    dbos_conn: str,
    client: DBOSClient,
    dagbag: Any,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.INFO)
    wid = _start(client, "p", 3, 0.0, fail=True)
    dr = dagbag.get_dag("dbos_t_stream_all").test(run_conf={"workflow_id": wid, "key": "p"})
    lines = _lines(caplog, capsys)
    assert [ti.state for ti in dr.get_task_instances()] == ["failed"]
    assert _logged_offsets(lines, "p") == [0, 1, 2]
    assert any(f"ended ERROR: AppError: stream p failed after 3 values (workflow {wid})" in line for line in lines)


def test_all_values_returned_and_a_retry_logs_nothing_twice(
    dbos_conn: str,
    client: DBOSClient,
    dagbag: Any,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Try 1 fails mid-stream (tests/dags/streams: LosesTryOne); try 2 continues from the offset try 1 saved (an Airflow
    Variable, contract/streams.py) and returns every value; the Variable is gone afterwards."""
    import threading

    from airflow.models.variable import Variable
    from airflow.utils.session import create_session

    from dbos_airflow.contract.streams import StreamCheckpoint

    caplog.set_level(logging.INFO)
    wid = _start(client, "k", 20, 0.0, gate_at=10)  # 10 values, then waits for message "go"
    done = threading.Event()

    def release_after_try_1_saved() -> None:
        """Send "go" once try 1 saved offset 10 (it then fails: its poke saw the workflow still writing)."""
        with create_session() as session:
            while not done.is_set():
                rows = session.query(Variable).filter(Variable.key.like("dbos_stream_offset:%")).all()
                if any(wid in str(v.val) and '"next_offset": 10' in str(v.val) for v in rows):
                    client.send(wid, "go", "go")
                    return
                session.expire_all()
                time.sleep(0.2)

    helper = threading.Thread(target=release_after_try_1_saved, daemon=True)
    helper.start()
    try:
        dr = dagbag.get_dag("dbos_t_stream_retry").test(run_conf={"workflow_id": wid, "key": "k"})
    finally:
        done.set()
        helper.join(5)
    lines = _lines(caplog, capsys)
    (ti,) = dr.get_task_instances()
    assert (ti.state, ti.try_number) == ("success", 2), lines[-20:]
    relevant = [line for line in lines if "stream 'k'" in line or "Continuing" in line or "lost" in line]
    assert _logged_offsets(lines, "k") == list(range(20)), relevant  # each once, in order, across both tries
    assert any("Continuing DBOS stream 'k' from offset" in line for line in lines)
    assert _xcom(dr) == [{"i": i} for i in range(20)]
    name = StreamCheckpoint.for_task(ti, wid, "k", 0).name
    with create_session() as session:
        assert session.query(Variable).filter(Variable.key == name).count() == 0  # forgotten on success


def test_reschedule_mode_continues_from_the_saved_offset_each_poke(
    dbos_conn: str,
    client: DBOSClient,
    dagbag: Any,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """mode="reschedule": each poke is a new sensor object in a new try of the same task; the offset read so
    far is the task's checkpoint (contract/streams.py), so across the reschedules every value is logged once,
    in order, and all of them are returned."""
    from airflow.models.taskreschedule import TaskReschedule
    from airflow.utils.session import create_session

    from dbos_airflow.sensors.streams import DBOSStreamSensor

    caplog.set_level(logging.INFO)
    wid = _start(client, "r", 12, 0.05, gate_at=6)  # 6 values, then waits for message "go", 6 more, closed
    poke, pokes = DBOSStreamSensor.poke, []

    def poke_and_open_the_gate_on_the_second(self: Any, context: Any) -> Any:
        pokes.append(self)
        if len(pokes) == 2:  # the first reschedule happened (the stream was open after 6 values)
            client.send(wid, "go", "go")
        return poke(self, context)

    monkeypatch.setattr(DBOSStreamSensor, "poke", poke_and_open_the_gate_on_the_second)
    dr = dagbag.get_dag("dbos_t_stream_reschedule").test(run_conf={"workflow_id": wid, "key": "r"})
    lines = _lines(caplog, capsys)
    (ti,) = dr.get_task_instances()
    assert ti.state == "success", lines[-20:]
    with create_session() as session:
        reschedules = session.query(TaskReschedule).filter(TaskReschedule.ti_id == ti.id).count()
    assert reschedules >= 1 and len({id(p) for p in pokes}) == len(pokes) >= 2  # a new sensor object each poke
    assert _logged_offsets(lines, "r") == list(range(12))
    assert _xcom(dr) == [{"i": i} for i in range(12)]


def test_deferred_stream_on_sqlite_is_polled_and_logged_once(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/streams.md: on DBOS' embedded SQLite database there is no LISTEN; the shared waiter polls the
    stream, and the deferred read logs each value once, in order, until the stream is closed."""
    import json

    from conftest import ROOT, Worker

    from dbos_airflow.triggers.streams import DBOSStreamTrigger

    url = f"sqlite:///{tmp_path / 'streams.sqlite'}"
    worker = Worker(url, ROOT / "tests" / "dbos_app.py", executor_id="sqlite-stream-worker")
    try:
        worker.wait_ready()
        monkeypatch.setenv(
            "AIRFLOW_CONN_DBOS_SQLITE_STREAMS", json.dumps({"conn_type": "dbos", "extra": {"system_database_url": url}})
        )
        from dbos import DBOSPortableJSONSerializer

        client = DBOSClient(system_database_url=url, serializer=DBOSPortableJSONSerializer())  # as the operators
        try:
            wid = _start(client, "s", 30, 0.02)
        finally:
            client.destroy()
        caplog.set_level(logging.INFO)
        trigger = DBOSStreamTrigger(
            workflow_id=wid, key="s", dbos_conn_id="dbos_sqlite_streams", end_time=time.time() + 120
        )

        async def events() -> list[Any]:
            return [e async for e in trigger.run()]

        (event,) = asyncio.run(events())
    finally:
        worker.stop()
    from dbos_orchestrator.waiting.waiter import running_waiters

    assert running_waiters()["dbos_sqlite_streams"].listening is False  # it polled
    assert event.payload["kind"] == "stream_ended" and event.payload["closed"], event.payload
    assert _logged_offsets(_lines(caplog, capsys), "s") == list(range(30))


def test_bad_input_fails_at_once_naming_it(dbos_conn: str, client: DBOSClient) -> None:
    from airflow.sdk.exceptions import AirflowException
    from dbos_orchestrator.exceptions import DBOSOptionsError, DBOSUnsafeValueError
    from fakes import FakeTI

    from dbos_airflow.sensors.streams import DBOSStreamSensor

    with pytest.raises(DBOSOptionsError, match="return_values must be one of all, last, none"):
        DBOSStreamSensor(task_id="s", workflow_id="w", key="k", return_values="first")
    with pytest.raises(AirflowException, match="offset must be >= 0"):
        DBOSStreamSensor(task_id="s", workflow_id="w", key="k", offset=-2).execute({"ti": FakeTI()})
    started = time.monotonic()
    with pytest.raises(AirflowException, match="no-such-stream-workflow"):
        DBOSStreamSensor(task_id="s", workflow_id="no-such-stream-workflow", key="k", deferrable=True).execute(
            {"ti": FakeTI()}
        )
    assert time.monotonic() - started < 3
    wid = _start(client, "written", 1, 0.0)
    client.retrieve_workflow(wid).get_result()
    with pytest.raises(AirflowException, match=rf"without writing stream 'other' \(workflow {wid}\)"):
        DBOSStreamSensor(task_id="s", workflow_id=wid, key="other").execute({"ti": FakeTI()})
    pickled = unique("pickled")
    client.enqueue({"queue_name": "q", "workflow_name": "wf_stream_pickled", "workflow_id": pickled}, "p")
    client.retrieve_workflow(pickled).get_result()
    with pytest.raises(
        DBOSUnsafeValueError, match=rf"stream 'p' value at offset 0 of DBOS workflow {pickled}.*allow_pickle"
    ):
        DBOSStreamSensor(task_id="s", workflow_id=pickled, key="p").execute({"ti": FakeTI()})


@pytest.mark.parametrize("deferrable", [False, True], ids=["worker", "deferred"])
def test_stream_to_log_on_the_enqueue_wait_and_the_workflow_sensor(
    dbos_conn: str,
    client: DBOSClient,
    dagbag: Any,
    quick_deferral: None,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    deferrable: bool,
) -> None:
    """The enqueue task logs the stream while it waits (its values pause 5 s after the 10th: the
    deferred one defers mid-stream); the sensor after it logs the whole stream once more, itself."""
    caplog.set_level(logging.INFO)
    dag_id = "dbos_t_stream_to_log_deferred" if deferrable else "dbos_t_stream_to_log_worker"
    dr = dagbag.get_dag(dag_id).test(run_conf={"n": 30})
    lines = _lines(caplog, capsys)
    assert {ti.task_id: ti.state for ti in dr.get_task_instances()} == {"enqueue": "success", "sensor": "success"}
    assert _logged_offsets(lines, "progress") == list(range(30)) * 2  # the enqueue task's, then the sensor's


# -- the DBOS tab --------------------------------------------------------------------------------------


def test_dbos_view_shows_each_stream_with_its_last_values_paged(dbos_conn: str, client: DBOSClient) -> None:
    from dbos_airflow.hooks.dbos import DBOSHook
    from dbos_airflow.plugin import data, render
    from dbos_airflow.plugin.streams import STREAM_PAGE

    wid = _start(client, "progress", 25, 0.0)
    client.retrieve_workflow(wid).get_result()
    hook = DBOSHook(dbos_conn)
    status = data.status_of(hook, wid)
    assert status is not None

    def link(key: str, before: int | None) -> str:
        return f"/page?stream={key}&before={before}"

    def page(**kw: Any) -> str:
        detail = data.workflow_detail(hook, status, stream_link=link, **kw)
        html = render.workflow_page(detail, lambda other: other, can_act=False, task_link=None, static="/s")
        return html.split('data-stream="progress"', 1)[1].split("</section>", 1)[0]  # the stream's own part

    newest = page()
    assert "<code>progress</code> — 25 values, closed" in newest and newest.count("<tr><td>") == STREAM_PAGE
    assert f"<td>{25 - STREAM_PAGE}</td>" in newest and "<td>24</td>" in newest and "<td>4</td>" not in newest
    assert "/page?stream=progress&amp;before=5" in newest  # the link to older values
    older = page(stream="progress", before=5)
    assert "<td>0</td>" in older and "<td>4</td>" in older and "<td>5</td>" not in older
    assert "/page?stream=progress&amp;before=None" in older  # back to the newest

    pickled = unique("pickled")
    client.enqueue({"queue_name": "q", "workflow_name": "wf_stream_pickled", "workflow_id": pickled}, "p")
    client.retrieve_workflow(pickled).get_result()
    pickled_status = data.status_of(hook, pickled)
    assert pickled_status is not None
    detail = data.workflow_detail(hook, pickled_status, stream_link=link)
    html = render.workflow_page(detail, lambda other: other, can_act=False, task_link=None, static="/s")
    assert "<code>p</code> — 1 value, closed" in html and "pickled, not decoded" in html and "secret" not in html
