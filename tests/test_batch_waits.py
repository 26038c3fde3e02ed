"""Fan-out in one task (docs/batch.md): one bulk task enqueues N workflows and waits for all of
them as one wait; the many-ids sensor. Real Postgres, the real DBOS worker (tests/dbos_app.py),
``dag.test()`` (its triggers run inline) or the operator driven directly with a faked context."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from airflow.sdk.exceptions import AirflowFailException
from conftest import ROOT, unique
from dbos_orchestrator.exceptions import DBOSOptionsError
from fakes import FakeTI

from dbos_airflow.exceptions import DBOSWorkflowFailedError
from dbos_airflow.hooks.dbos import DBOSHook
from dbos_airflow.operators.bulk import DBOSBulkEnqueueOperator
from dbos_airflow.sensors.dbos import DBOSWorkflowsSensor

if TYPE_CHECKING:
    from collections.abc import Iterator

NOBODY = "q_batch_nobody"  # a queue no worker polls: its workflows stay ENQUEUED
PROGRESS = re.compile(r"^(\d[\d,]*)/(\d[\d,]*) ended after \d+s: [^;]+; (\d[\d,]*) pending( \[|$)")


@pytest.fixture(scope="module")
def dagbag(dbos_conn: str, airflow_db: object) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "tests" / "dags" / "batch" / "dbos_batch_dags.py"))
    assert not bag.import_errors, bag.import_errors
    return bag


@pytest.fixture
def hook(dbos_conn: str) -> Iterator[DBOSHook]:
    h = DBOSHook(dbos_conn)
    yield h
    h.close()


def xcom(dr: Any, task_id: str, key: str = "return_value") -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(XComModel).filter_by(dag_id=dr.dag_id, run_id=dr.run_id, task_id=task_id, key=key).all()
        return [r.value for r in rows]


def statuses(url: str, ids: list[str]) -> dict[str, tuple[str, int, int]]:
    """``id -> (status, created_at, updated_at)``, and the input row's ``xmin`` (who wrote it)."""
    engine = sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT s.workflow_uuid, s.status, s.updated_at, i.xmin::text FROM dbos.workflow_status s "
                    "JOIN dbos.workflow_input i USING (workflow_uuid) WHERE s.workflow_uuid = ANY(:ids)"
                ),
                {"ids": ids},
            ).all()
    finally:
        engine.dispose()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def operator(items: list[Any], **kwargs: Any) -> DBOSBulkEnqueueOperator:
    return DBOSBulkEnqueueOperator(
        task_id="bulk",
        workflow_name="wf_item",
        queue_name=kwargs.pop("queue_name", "q"),
        items=items,
        wait_for_completion=True,
        **{"poll_interval": 0.3, **kwargs},
    )


def lines_of(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> list[str]:
    out = capsys.readouterr().out.splitlines()
    return [r.getMessage() for r in caplog.records] + [line.split("] ", 1)[-1] for line in out]


# -- one task, one wait --------------------------------------------------------------------------


@pytest.mark.parametrize("dag_id", ["dbos_t_batch", "dbos_t_batch_deferrable"])
def test_one_task_waits_for_200_workflows(dagbag: Any, dag_id: str) -> None:
    """docs/batch.md, "How the wait works": one task instance, one wait (deferred: one trigger, no
    per-workflow wait on the shared waiter), the ids before the wait, the summary always."""
    from dbos_orchestrator.waiting.waiter import running_waiters

    from dbos_airflow.contract.deferral import CHECK_IN_WORKER_SECONDS

    sleep = CHECK_IN_WORKER_SECONDS + 2 if dag_id.endswith("deferrable") else 1.0  # deferred: really defers
    single_before = sum(w.probes for w in running_waiters().values())
    batch_before = sum(w.batches.probes for w in running_waiters().values())
    dr = dagbag.get_dag(dag_id).test(run_conf={"batch": [{"args": [i, None, sleep]} for i in range(200)]})
    tis = dr.get_task_instances()
    assert [(ti.task_id, ti.state) for ti in tis] == [("bulk", "success")]
    ids = [f"{dag_id}:{dr.run_id}:bulk:-1:{i}" for i in range(200)]
    assert xcom(dr, "bulk") == [ids]
    (summary,) = xcom(dr, "bulk", "summary")
    assert summary == {
        "total": 200,
        "ended": 200,
        "pending": 0,
        "succeeded": 200,
        "failed": 0,
        "by_status": {"SUCCESS": 200},
    }
    waiters = running_waiters().values()
    if dag_id.endswith("deferrable"):
        assert sum(w.batches.probes for w in waiters) > batch_before  # the one trigger waited on the waiter
        assert sum(w.probes for w in waiters) == single_before  # and no wait for a single workflow ran
    assert xcom(dr, "bulk", "results") == []  # only with push_results


def test_progress_and_closing_lines(
    dbos_conn: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capsys: Any
) -> None:
    """docs/batch.md, "Progress": a line with the counts by status every ~30 s, one closing line."""
    monkeypatch.setattr("dbos_airflow.operators.batch.PROGRESS_LOG_SECONDS", 0.5)
    caplog.set_level(logging.INFO)
    ti = FakeTI("bulk")
    ids = operator([[i, None, 2.0 + i * 0.05] for i in range(20)]).execute({"ti": ti})  # type: ignore[arg-type]
    assert ti.xcom["return_value"] == ids and len(ids) == 20
    lines = lines_of(caplog, capsys)
    progress = [m for line in lines if (m := PROGRESS.match(line))]
    assert progress, lines[-30:]
    assert all(int(m.group(2)) == 20 and int(m.group(1)) + int(m.group(3)) == 20 for m in progress)
    assert any(int(m.group(3)) > 0 for m in progress)  # seen while items were still pending
    closing = [
        line for line in lines if line.startswith("DBOS batch ") and "20/20 ended: 20 SUCCESS; 0 pending" in line
    ]
    assert len(closing) == 1, lines[-30:]


def test_default_policy_fails_after_all_ended_naming_ids_and_errors(dbos_conn: str, system_database_url: str) -> None:
    """docs/batch.md, "Failure policy": the task fails only after every item ended, naming how
    many failed and the first few ids with their own error messages."""
    items: list[Any] = [[i, "always" if i in (2, 5, 11) else None, 3.0 if i == 19 else 0.0] for i in range(20)]
    ti = FakeTI("bulk")
    started = time.monotonic()
    with pytest.raises(DBOSWorkflowFailedError) as raised:
        operator(items).execute({"ti": ti})  # type: ignore[arg-type]
    assert time.monotonic() - started >= 3.0  # it waited for the slow item 19 after the failures
    base = f"unit:{ti.run_id}:bulk:-1:"
    message = str(raised.value)
    assert message.startswith("3 of 20 DBOS workflows failed (3 ERROR); first 3: "), message
    for i in (2, 5, 11):
        assert f"item {i} {base}{i}: ERROR: AppError: item {i} failed on run 1" in message, message
    assert ti.xcom["summary"]["by_status"] == {"SUCCESS": 17, "ERROR": 3}
    assert ti.xcom["return_value"] == [f"{base}{i}" for i in range(20)]  # pushed before the wait
    assert {s for s, _, _ in statuses(system_database_url, ti.xcom["return_value"]).values()} == {"SUCCESS", "ERROR"}


def test_fail_fast_fails_at_the_first_failure_and_cancels_the_rest(dbos_conn: str, system_database_url: str) -> None:
    """docs/batch.md, "Failure policy": ``fail_fast`` stops at the first failure and, with
    ``cancel_on_kill`` (the default), cancels the items still active."""
    items: list[Any] = [[0, "always", 0.0]] + [[i, None, 60.0] for i in range(1, 30)]
    ti = FakeTI("bulk")
    started = time.monotonic()
    with pytest.raises(
        DBOSWorkflowFailedError,
        match=r"^1 of 30 DBOS workflows failed \(1 ERROR\) \(fail_fast: stopped at the first failure; cancelled the 29 still active\); first 1: item 0 ",
    ):
        operator(items, fail_fast=True).execute({"ti": ti})  # type: ignore[arg-type]
    assert time.monotonic() - started < 30
    rows = statuses(system_database_url, ti.xcom["return_value"])
    assert rows[ti.xcom["return_value"][0]][0] == "ERROR"
    assert {rows[w][0] for w in ti.xcom["return_value"][1:]} == {"CANCELLED"}
    assert ti.xcom["summary"]["by_status"] == {"ERROR": 1, "CANCELLED": 29}


def test_fail_fast_without_cancel_leaves_the_rest_running(dbos_conn: str, system_database_url: str) -> None:
    """docs/batch.md, "Failure policy": ``cancel_on_kill=False`` cancels nothing."""
    items: list[Any] = [[0, "always", 0.0]] + [[i, None, 60.0] for i in range(1, 5)]
    ti = FakeTI("bulk")
    with pytest.raises(DBOSWorkflowFailedError, match="fail_fast"):
        operator(items, fail_fast=True, cancel_on_kill=False).execute({"ti": ti})  # type: ignore[arg-type]
    rows = statuses(system_database_url, ti.xcom["return_value"][1:])
    assert {s for s, _, _ in rows.values()} <= {"ENQUEUED", "PENDING"}
    DBOSHook(dbos_conn).cancel_workflows(ti.xcom["return_value"])  # tidy up


def test_retry_reruns_only_the_failed_items_and_enqueues_nothing_twice(
    dbos_conn: str, hook: DBOSHook, system_database_url: str
) -> None:
    """docs/batch.md, "Retries": a later try re-attaches to every item, re-runs only the failed
    ones (``retry_mode="resume"``) and enqueues nothing again."""
    items: list[Any] = [[i, "first" if i % 3 == 0 else None] for i in range(12)]
    first = FakeTI("bulk")
    with pytest.raises(DBOSWorkflowFailedError, match=r"^4 of 12 DBOS workflows failed"):
        operator(items).execute({"ti": first})  # type: ignore[arg-type]
    ids = first.xcom["return_value"]
    before = statuses(system_database_url, ids)
    second = FakeTI("bulk", try_number=2)
    second.run_id = first.run_id  # the same task instance, its next try
    assert operator(items).execute({"ti": second}) == ids  # type: ignore[arg-type]
    after = statuses(system_database_url, ids)
    assert {s for s, _, _ in after.values()} == {"SUCCESS"}
    assert {w: x for w, (_, _, x) in after.items()} == {w: x for w, (_, _, x) in before.items()}  # inputs written once
    reader = hook.value_reader()
    runs = {i: reader.output(ids[i])["runs"] for i in range(12)}
    assert runs == {i: 2 if i % 3 == 0 else 1 for i in range(12)}  # only the failed ones ran again
    for i in range(12):  # the items that had succeeded were not touched
        if i % 3:
            assert after[ids[i]][1] == before[ids[i]][1]
    assert second.xcom["summary"]["by_status"] == {"SUCCESS": 12}


def test_retry_mode_fail_fails_at_once_without_rerunning(dbos_conn: str, system_database_url: str) -> None:
    """docs/batch.md, "Retries": ``retry_mode="fail"`` fails the later try by the failure policy."""
    items: list[Any] = [[0, "first"], [1, None]]
    first = FakeTI("bulk")
    with pytest.raises(DBOSWorkflowFailedError):
        operator(items, retry_mode="fail").execute({"ti": first})  # type: ignore[arg-type]
    second = FakeTI("bulk", try_number=2)
    second.run_id = first.run_id
    with pytest.raises(DBOSWorkflowFailedError, match=r"^1 of 2 DBOS workflows failed .*item 0 .*failed on run 1"):
        operator(items, retry_mode="fail").execute({"ti": second})  # type: ignore[arg-type]
    assert statuses(system_database_url, first.xcom["return_value"])[first.xcom["return_value"][0]][0] == "ERROR"


# -- results -----------------------------------------------------------------------------------


def test_push_results_in_item_order(dbos_conn: str) -> None:
    """docs/batch.md, "Results": outputs in item order, only with ``push_results=True``."""
    ti = FakeTI("bulk")
    # Later items end first: the order is the items', not the completions'.
    operator([[i, None, (20 - i) * 0.1] for i in range(20)], push_results=True).execute({"ti": ti})  # type: ignore[arg-type]
    assert ti.xcom["results"] == [{"i": i, "runs": 1} for i in range(20)]


def test_push_results_limits(dbos_conn: str, system_database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/batch.md, "Results": more than 1,000 items is refused before anything is enqueued;
    outputs larger than the byte limit fail the task with the sizes."""
    ti = FakeTI("bulk")
    with pytest.raises(AirflowFailException, match=r"push_results=True with 1,001 items: at most 1,000"):
        operator([[i] for i in range(1001)], push_results=True, queue_name=NOBODY).execute({"ti": ti})  # type: ignore[arg-type]
    assert statuses(system_database_url, [f"unit:{ti.run_id}:bulk:-1:{i}" for i in range(1001)]) == {}
    monkeypatch.setattr("dbos_airflow.operators.batch.MAX_RESULTS_BYTES", 50)
    with pytest.raises(
        AirflowFailException, match=r"push_results: the 5 outputs take \d+ bytes as JSON, more than the 50"
    ):
        operator([[i] for i in range(5)], push_results=True).execute({"ti": FakeTI("bulk")})  # type: ignore[arg-type]


# -- the many-ids sensor ----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["poke", "reschedule", "deferrable"])
def test_sensor_waits_for_workflows_another_task_started(dagbag: Any, hook: DBOSHook, mode: str) -> None:
    """docs/batch.md, "Waiting for workflows another task started"."""
    from dbos_airflow.contract.deferral import CHECK_IN_WORKER_SECONDS

    prefix = unique("many")
    sleep = CHECK_IN_WORKER_SECONDS + 2 if mode == "deferrable" else 1.5
    ids = hook.enqueue_many(
        {"workflow_name": "wf_item", "queue_name": "q"},
        [{"args": [i, None, sleep], "workflow_id": f"{prefix}-{i}"} for i in range(40)],
    )
    dr = dagbag.get_dag(f"dbos_t_many_{mode}").test(run_conf={"ids": ids})
    assert [(ti.task_id, ti.state) for ti in dr.get_task_instances()] == [("many", "success")]
    (summary,) = xcom(dr, "many", "summary")
    assert summary["by_status"] == {"SUCCESS": 40}
    assert xcom(dr, "many") == [summary]


def test_sensor_fails_naming_missing_and_failed_workflows(dagbag: Any, hook: DBOSHook) -> None:
    """docs/batch.md, "Failure policy" (the sensor): an id without a workflow counts as failed."""
    prefix = unique("many-bad")
    ids = hook.enqueue_many(
        {"workflow_name": "wf_item", "queue_name": "q"},
        [{"args": [i, "always" if i == 1 else None], "workflow_id": f"{prefix}-{i}"} for i in range(3)],
    )
    sensor = DBOSWorkflowsSensor(task_id="many", workflow_ids=[*ids, f"{prefix}-nobody"], poke_interval=0.2, timeout=60)
    ti = FakeTI("many")
    deadline = time.monotonic() + 30
    with pytest.raises(DBOSWorkflowFailedError) as raised:
        while time.monotonic() < deadline and not sensor.poke({"ti": ti}):  # type: ignore[arg-type]
            time.sleep(0.2)
    message = str(raised.value)
    assert message.startswith("2 of 4 DBOS workflows failed (1 ERROR, 1 NOT_FOUND)"), message
    assert f"item 1 {prefix}-1: ERROR: AppError: item 1 failed on run 1" in message
    assert f"item 3 {prefix}-nobody: no such workflow" in message


# -- what a tick costs ------------------------------------------------------------------------


async def test_a_tick_costs_one_statement_whatever_n(dbos_conn: str, hook: DBOSHook) -> None:
    """docs/batch.md, "How the wait works": a batch of 1,000 costs the shared waiter the same
    statements per tick as a batch of 10 (one, with the same bound parameters), and rows back
    by status, not by workflow. Counted on the waiter's own engine."""
    from dbos_orchestrator.exceptions import DBOSWaitTimeoutError
    from dbos_orchestrator.waiting.batch import BATCH_TICK_SECONDS, BatchSpec, BatchTracker

    waiter = await DBOSHook(dbos_conn).get_waiter_async()
    engine = waiter.client.system_database_engine
    seen: list[tuple[int, int]] = []  # (bound parameters, rows) of each batch statement

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if "batch_rows" in statement:
            context._batch = True
            seen.append((len(parameters or {}), -1))

    def after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if getattr(context, "_batch", False):
            seen[-1] = (seen[-1][0], cursor.rowcount)

    sa.event.listen(engine, "before_cursor_execute", before)
    sa.event.listen(engine, "after_cursor_execute", after)
    per_n: dict[int, list[tuple[int, int]]] = {}
    try:
        for n in (10, 1000):
            ti = FakeTI("bulk")
            base = f"unit:{ti.run_id}:bulk:-1"
            items = [{"args": [i], "workflow_id": f"{base}:{i}"} for i in range(n)]
            await asyncio.to_thread(hook.enqueue_many, {"workflow_name": "wf_item", "queue_name": NOBODY}, items)
            del seen[:]
            tracker = BatchTracker(BatchSpec.derived(base, base + ":", n))
            with pytest.raises(DBOSWaitTimeoutError):
                await waiter.batches.observe(tracker, deadline=time.time() + 3.0)
            per_n[n] = list(seen)
    finally:
        sa.event.remove(engine, "before_cursor_execute", before)
        sa.event.remove(engine, "after_cursor_execute", after)
    ticks = 3.0 / BATCH_TICK_SECONDS
    for n, statements in per_n.items():
        assert ticks - 2 <= len(statements) <= ticks + 1, (n, statements)
    assert {p for p, _ in per_n[10]} == {p for p, _ in per_n[1000]}  # the same parameters, not one per id
    assert {r for _, r in per_n[1000]} == {1}  # one row: the ENQUEUED count (they never left the queue)


def test_the_watermark_moves_past_ended_items(dbos_conn: str, hook: DBOSHook) -> None:
    """docs/batch.md, "How the wait works": items below the watermark are not asked again."""
    from dbos_orchestrator.waiting.batch import BatchSpec, BatchTracker

    ti = FakeTI("bulk")
    base = f"unit:{ti.run_id}:bulk:-1"
    ids = [f"{base}:{i}" for i in range(100)]
    hook.enqueue_many(
        {"workflow_name": "wf_item", "queue_name": "q"}, [{"args": [i], "workflow_id": w} for i, w in enumerate(ids)]
    )
    tracker = BatchTracker(BatchSpec.derived(base, base + ":", 100))
    counts = hook.service().wait_for_batch(tracker, timeout=60, poll_interval=0.2, progress_every=60)
    assert counts.by_status == {"SUCCESS": 100} and tracker.first == 100
    explicit = BatchTracker(BatchSpec.of_ids(ids))
    assert hook.service().wait_for_batch(explicit, timeout=5, poll_interval=0.2).by_status == {"SUCCESS": 100}
    assert explicit.first == 100 and explicit.probes == 1


# -- bad input ----------------------------------------------------------------------------------


def test_bad_inputs_fail_with_clear_errors(dbos_conn: str) -> None:
    """docs/batch.md, "Parameters": bad settings fail at once, naming the setting."""
    with pytest.raises(DBOSOptionsError, match="poll_interval=0 must be a positive"):
        operator([[1]], poll_interval=0)
    with pytest.raises(DBOSOptionsError, match="retry_mode='again'"):
        operator([[1]], retry_mode="again")
    for ids, message in (
        ([], "workflow_ids is empty"),
        (["a", "b", "a"], "workflow_ids lists 'a' more than once"),
        (["a", ""], r"workflow_ids\[1\] must be a non-empty string"),
        ("not json", "workflow_ids"),
    ):
        sensor = DBOSWorkflowsSensor(task_id="many", workflow_ids=ids)
        with pytest.raises((DBOSOptionsError, AirflowFailException), match=message):
            sensor.execute({"ti": FakeTI("many")})  # type: ignore[arg-type]


# -- the trigger --------------------------------------------------------------------------------


async def _events(trigger: Any) -> list[Any]:
    return [e.payload async for e in trigger.run()]


async def test_batch_trigger_serializes_and_times_out_with_counts(dbos_conn: str, hook: DBOSHook) -> None:
    """docs/batch.md, "How the wait works": the trigger's kwargs are plain JSON (a prefix and a
    count, not the ids), and its own deadline yields a ``timeout`` event with the counts."""
    import json

    from dbos_airflow.triggers.dbos import DBOSBatchTrigger

    base = f"unit:{unique('run')}:bulk:-1"
    items = [{"args": [i], "workflow_id": f"{base}:{i}"} for i in range(5)]
    await asyncio.to_thread(hook.enqueue_many, {"workflow_name": "wf_item", "queue_name": NOBODY}, items)
    trigger = DBOSBatchTrigger(
        workflow_id=base, batch={"key": base, "count": 5, "prefix": base + ":"}, end_time=time.time() + 1.5
    )
    classpath, kwargs = trigger.serialize()
    assert json.loads(json.dumps(kwargs)) == kwargs and "ids" not in kwargs["batch"]
    assert DBOSBatchTrigger(**kwargs).serialize() == (classpath, kwargs)
    events = await asyncio.wait_for(_events(trigger), 30)
    assert [(e["kind"], e["workflow_id"], e["counts"]["by_status"]) for e in events] == [
        ("timeout", base, {"ENQUEUED": 5})
    ]
    await asyncio.to_thread(hook.cancel_workflows, [w["workflow_id"] for w in items])


async def test_batch_trigger_fail_fast_fires_at_the_first_failure(dbos_conn: str, hook: DBOSHook) -> None:
    """docs/batch.md, "Failure policy": with ``fail_fast`` the one trigger fires at the first failure."""
    from dbos_airflow.triggers.dbos import DBOSBatchTrigger

    prefix = unique("trig")
    items = [{"args": [0, "always"], "workflow_id": f"{prefix}-0"}] + [
        {"args": [i, None, 60.0], "workflow_id": f"{prefix}-{i}"} for i in range(1, 4)
    ]
    ids = await asyncio.to_thread(hook.enqueue_many, {"workflow_name": "wf_item", "queue_name": "q"}, items)
    trigger = DBOSBatchTrigger(workflow_id="k", batch={"key": "k", "count": 4, "ids": ids}, fail_fast=True)
    (event,) = await asyncio.wait_for(_events(trigger), 30)
    assert event["kind"] == "batch_ended" and event["counts"]["by_status"]["ERROR"] == 1
    assert event["counts"]["pending"] == 3
    await asyncio.to_thread(hook.cancel_workflows, ids)


# -- the DBOS tab of a bulk task --------------------------------------------------------------


def test_the_tab_counts_by_status_and_pages_through_the_items(dbos_conn: str, hook: DBOSHook) -> None:
    """docs/batch.md, "Progress" (docs/ui.md, the task-instance tab): a task's many workflows
    are shown as counts by status and 100 items a page, in item order."""
    from dbos_airflow.plugin import data, render

    prefix = unique("tab")
    ids = [f"{prefix}-{i}" for i in range(250)]
    hook.enqueue_many(
        {"workflow_name": "wf_item", "queue_name": NOBODY}, [{"args": [i], "workflow_id": w} for i, w in enumerate(ids)]
    )
    hook.cancel_workflows(ids[:7])
    counts, rows = data.batch_page(hook, ids, 2)
    assert counts.by_status == {"CANCELLED": 7, "ENQUEUED": 243}
    assert rows == [(i, ids[i], "ENQUEUED") for i in range(100, 200)]
    html = render.ids_page(
        "dbos_default",
        counts,
        rows,
        lambda w: f"/w/{w}",
        page=2,
        page_size=100,
        page_link=lambda n: f"?page={n}",
        static="",
    )
    assert "250 DBOS workflows" in html and "7/250 ended: 7 CANCELLED; 243 pending" in html
    assert "page 2 of 3" in html and 'href="?page=1"' in html and 'href="?page=3"' in html
    assert f"/w/{ids[100]}" in html and f"/w/{ids[99]}" not in html
    assert data.batch_page(hook, ids, 3)[1][-1] == (249, ids[249], "ENQUEUED")
    hook.cancel_workflows(ids)


def test_own_timeout_gives_up_and_cancels_the_active_items(dbos_conn: str, system_database_url: str) -> None:
    """docs/batch.md, "Parameters": ``timeout`` fails the task saying how far the batch got, and
    cancels the items still active (``cancel_on_kill``)."""
    from airflow.sdk.exceptions import AirflowException

    ti = FakeTI("bulk")
    with pytest.raises(
        AirflowException, match=r"Gave up waiting after 1.5s for DBOS batch .*: 0/5 ended: none yet; 5 pending"
    ):
        operator([[i] for i in range(5)], queue_name=NOBODY, timeout=1.5).execute({"ti": ti})  # type: ignore[arg-type]
    assert ti.xcom["summary"]["pending"] == 5
    assert {s for s, _, _ in statuses(system_database_url, ti.xcom["return_value"]).values()} == {"CANCELLED"}


async def test_the_deferred_deadline_pushes_the_summary_and_cancels_the_active_items(
    dbos_conn: str, hook: DBOSHook, system_database_url: str
) -> None:
    """docs/batch.md, "Parameters" (``timeout``) and "Results" (the summary always): when the
    trigger's deadline passes, the resumed task pushes the counts, cancels what is still active and
    fails saying how far the batch got, as the wait in the worker does."""
    from airflow.sdk.exceptions import AirflowException

    from dbos_airflow.triggers.dbos import DBOSBatchTrigger

    ti = FakeTI("bulk")
    base = f"{ti.dag_id}:{ti.run_id}:bulk:-1"
    items = [{"args": [i], "workflow_id": f"{base}:{i}"} for i in range(4)]
    ids = await asyncio.to_thread(hook.enqueue_many, {"workflow_name": "wf_item", "queue_name": NOBODY}, items)
    batch = {"key": base, "count": 4, "prefix": base + ":"}
    (event,) = await asyncio.wait_for(
        _events(DBOSBatchTrigger(workflow_id=base, batch=batch, end_time=time.time() + 1.0)), 30
    )
    op = operator([[i] for i in range(4)], queue_name=NOBODY, deferrable=True, timeout=1.0)
    with pytest.raises(AirflowException, match=r"Gave up waiting after 1.0s for DBOS batch .*: 0/4 ended"):
        await asyncio.to_thread(op.execute_complete, {"ti": ti}, event)  # type: ignore[arg-type]
    assert ti.xcom["summary"]["pending"] == 4 and ti.xcom["summary"]["total"] == 4
    assert {s for s, _, _ in statuses(system_database_url, ids).values()} == {"CANCELLED"}


# -- kills --------------------------------------------------------------------------------------


async def test_a_persons_kill_of_the_deferred_batch_cancels_its_active_items(
    dbos_conn: str, hook: DBOSHook, system_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/batch.md, "Parameters" (``cancel_on_kill``; the kill rule of docs/architecture.md):
    a person's kill of the deferred task cancels the batch's active workflows; Airflow moving the
    trigger (the task instance still deferred) cancels nothing."""
    from dbos_airflow.triggers.dbos import DBOSBatchTrigger

    base = f"unit:{unique('run')}:bulk:-1"
    items = [{"args": [i, None, 60.0], "workflow_id": f"{base}:{i}"} for i in range(6)]
    ids = await asyncio.to_thread(hook.enqueue_many, {"workflow_name": "wf_item", "queue_name": "q"}, items)
    kwargs = {"workflow_id": base, "batch": {"key": base, "count": 6, "prefix": base + ":"}, "cancel_on_kill": True}

    monkeypatch.setattr("dbos_airflow.contract.kill.current_ti_state", lambda ti, timeout=3.0: "deferred")
    moved = DBOSBatchTrigger(**kwargs)
    moved.task_instance = FakeTI("bulk")  # type: ignore[assignment]
    await moved.on_kill()
    assert {s for s, _, _ in statuses(system_database_url, ids).values()} <= {"ENQUEUED", "PENDING"}

    monkeypatch.setattr("dbos_airflow.contract.kill.current_ti_state", lambda ti, timeout=3.0: "failed")
    killed = DBOSBatchTrigger(**kwargs)
    killed.task_instance = FakeTI("bulk")  # type: ignore[assignment]
    await killed.on_kill()
    assert {s for s, _, _ in statuses(system_database_url, ids).values()} == {"CANCELLED"}


def test_a_batch_about_to_end_is_waited_for_in_the_worker_not_deferred(dbos_conn: str) -> None:
    """docs/batch.md, "How the wait works" (deferring): after the 5 s check, a batch that at its
    rate ends before a deferral's 15 s hold would let the event through is waited for in the
    worker (deferring could only make it later); one that makes no progress defers."""
    from airflow.sdk.exceptions import TaskDeferred

    ti = FakeTI("bulk")
    items: list[Any] = [[i, None, 2.0 + i * 0.03] for i in range(200)]  # they end from 2 s to 8 s
    started = time.monotonic()
    ids = operator(items, deferrable=True).execute({"ti": ti})  # type: ignore[arg-type]  # no TaskDeferred
    assert len(ids) == 200 and ti.xcom["summary"]["by_status"] == {"SUCCESS": 200}
    assert time.monotonic() - started > 5.0  # it outlasted the plain check
    with pytest.raises(TaskDeferred):
        operator([[0]], deferrable=True, queue_name=NOBODY).execute({"ti": FakeTI("bulk")})  # type: ignore[arg-type]


def test_the_rule_for_staying_in_the_worker() -> None:
    """docs/batch.md, "How the wait works": the rule itself (contract/deferral.py)."""
    from dbos_airflow.contract.deferral import HOLD_EVENT_SECONDS, batch_ends_before_the_hold

    assert batch_ends_before_the_hold(100, 100 / HOLD_EVENT_SECONDS)
    assert not batch_ends_before_the_hold(101, 100 / HOLD_EVENT_SECONDS)
    assert not batch_ends_before_the_hold(1, 0.0)  # no progress: defer
