"""The tasks against a real DBOS worker (packages/prefect-dbos/README.md, "Tasks", "Waiting",
"Links", "Security")."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import QUEUE, unique, workflow_rows
from dbos_orchestrator.exceptions import DBOSOptionsError, DBOSUnsafeValueError, DBOSWaitTimeoutError
from dbos_orchestrator.waiting.waiter import running_waiters
from prefect import flow, task
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, ArtifactFilterType
from prefect.runtime import flow_run

from prefect_dbos import (
    DBOSSystemDatabase,
    DBOSWorkflow,
    aawait_first_workflow,
    acancel_workflow,
    aenqueue_workflow,
    aenqueue_workflows,
    afork_workflow,
    aget_workflow_event,
    aget_workflow_status,
    aresume_workflow,
    asend_message,
    await_workflow,
    await_workflow_event,
    run_dbos_workflow_and_wait_for_completion,
)
from prefect_dbos.artifacts import aflush_artifacts, pending_artifacts
from prefect_dbos.ids import flow_run_prefix
from prefect_dbos.links import artifact_key


def _run_id(state: Any) -> str:
    return str(state.state_details.flow_run_id)


async def test_pickled_output_is_refused_unless_the_block_allows_it(system_database_url: str, database: Any) -> None:
    """packages/prefect-dbos/README.md, "Security": a pickled output is never unpickled unless allow_pickle is set;
    the refusal names the block field to set (not the Airflow connection extra)."""
    pickling = DBOSSystemDatabase(system_database_url=system_database_url, serialization="pickle")
    allowing = DBOSSystemDatabase(system_database_url=system_database_url, allow_pickle=True)

    @flow
    async def pickled() -> Any:
        wid = await aenqueue_workflow(pickling, QUEUE, "wf_double", [4])
        refused = await await_workflow(pickling, wid, return_state=True)
        with pytest.raises(DBOSUnsafeValueError, match="allow_pickle") as refusal:
            await refused.result()
        message = str(refusal.value)
        assert "stored as 'py_pickle'" in message, message
        assert "set allow_pickle=True on the DBOSSystemDatabase block" in message, message
        assert "connection" not in message and "Airflow" not in message, message
        return await await_workflow(allowing, wid)

    assert await pickled() == 8


async def test_link_and_summary_artifacts_and_the_run_url_on_the_workflow(
    system_database_url: str, database: Any
) -> None:
    """packages/prefect-dbos/README.md, "Links": a link artifact per workflow, a summary at the end, the flow run URL in its attributes."""
    linked = DBOSSystemDatabase(
        system_database_url=system_database_url, console_url="https://console.example/workflows/{workflow_id}"
    )

    @flow
    async def with_links() -> str:
        wid = await aenqueue_workflow(linked, QUEUE, "wf_double", [3])
        await await_workflow(linked, wid)
        return wid

    wid = await with_links()
    assert await aflush_artifacts(timeout=60)  # the summary is written after the task returns
    async with get_client() as client:
        [link] = await client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[artifact_key("link", wid)]))
        )
        [summary] = await client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[artifact_key("summary", wid)]), type=ArtifactFilterType(any_=["markdown"])
            )
        )
    assert f"https://console.example/workflows/{wid}" in str(link.data)
    assert "SUCCESS" in str(summary.data) and "wf_double" in str(summary.data)
    [status] = linked.get_client().list_workflows(workflow_ids=[wid], load_input=False, load_output=False)
    attributes = getattr(status, "attributes", None) or {}
    assert str(attributes.get("prefect.flow_run_url")).endswith(f"/flow-run/{attributes['prefect.flow_run_id']}"), (
        attributes
    )


async def test_summary_artifacts_are_written_after_the_waits_return(
    database: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """packages/prefect-dbos/README.md, "Many waits in one flow": the summary artifact is not on the wait's
    return path (the writer is held until the flow returned), and every wait's artifact is written, on its
    own task run, once the writer runs."""
    import prefect_dbos.artifacts

    assert await aflush_artifacts(timeout=60)  # earlier tests' artifacts are not this test's
    held = threading.Event()
    write = prefect_dbos.artifacts._write

    def held_write(client: Any, item: Any, read: Any) -> None:
        assert held.wait(120), "the writer was never released"
        write(client, item, read)

    monkeypatch.setattr(prefect_dbos.artifacts, "_write", held_write)

    @flow
    async def many() -> tuple[str, list[str], list[int]]:
        ids = [await aenqueue_workflow(database, QUEUE, "wf_double", [n]) for n in range(5)]
        outputs = await asyncio.gather(*(await_workflow(database, w) for w in ids))
        return flow_run.get_id(), ids, list(outputs)

    run_id, ids, outputs = await asyncio.wait_for(many(), timeout=120)
    assert outputs == [0, 2, 4, 6, 8]
    assert pending_artifacts() == 5  # all five queued, none written: the waits did not wait for them
    held.set()
    assert await aflush_artifacts(timeout=60)
    async with get_client() as client:
        found = await client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[artifact_key("summary", w) for w in ids]))
        )
    assert sorted(a.key for a in found) == sorted(artifact_key("summary", w) for w in ids)
    assert {str(a.flow_run_id) for a in found} == {run_id}
    assert len({a.task_run_id for a in found} - {None}) == 5, [a.task_run_id for a in found]
    assert all("SUCCESS" in str(a.data) and "last step" in str(a.data) for a in found), [a.data for a in found]


async def test_summary_artifact_off_leaves_the_closing_line_and_the_result(database: Any) -> None:
    """packages/prefect-dbos/README.md, "Many waits in one flow": ``summary_artifact=False`` writes no
    summary artifact; the wait still returns the output."""

    @flow
    async def quiet() -> tuple[str, int]:
        wid = await aenqueue_workflow(database, QUEUE, "wf_double", [5])
        return wid, await await_workflow(database, wid, summary_artifact=False)

    wid, output = await quiet()
    assert output == 10
    async with get_client() as client:
        found = await client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[artifact_key("summary", wid)]))
        )
    assert found == []


@pytest.mark.parametrize(
    ("call", "names"),
    [
        (lambda db: aenqueue_workflow(db, QUEUE, "wf_double", "12"), "workflow_args must be a list"),
        (lambda db: aenqueue_workflow(db, QUEUE, "wf_double", [], {1: 2}), "workflow_kwargs must be a dict"),
        (lambda db: aenqueue_workflow(db, "", "wf_double", [1]), "queue_name must be a non-empty string"),
        (lambda db: aenqueue_workflow(db, QUEUE, "wf_double", [1], retry_mode="again"), "retry_mode='again'"),
        (lambda db: aenqueue_workflow(db, QUEUE, "wf_double", [1], options={"priorty": 1}), "unknown enqueue option"),
        (lambda db: afork_workflow(db, "nope", 0), "start_step must be an integer >= 1"),
        (lambda db: aget_workflow_status(db, "no-such-workflow"), "no-such-workflow"),
    ],
)
async def test_bad_inputs_fail_naming_what_is_wrong(database: Any, call: Any, names: str) -> None:
    """packages/prefect-dbos/README.md, "Tasks": a bad argument fails the task with an error naming it."""

    @flow
    async def bad() -> Any:
        return await call(database)

    state = await bad(return_state=True)
    with pytest.raises(Exception, match=names):
        await state.result()


async def test_many_waits_share_one_waiter(database: Any) -> None:
    """packages/prefect-dbos/README.md, "Waiting": 20 concurrent waits in one process cost one statement per tick, not one poller each."""

    @flow
    async def many() -> list[Any]:
        ids = await asyncio.gather(*(aenqueue_workflow(database, QUEUE, "wf_double", [i]) for i in range(20)))
        return await asyncio.gather(*(await_workflow(database, wid) for wid in ids))

    before = sum(w.probes for w in running_waiters().values())
    started = time.monotonic()
    assert sorted(await many()) == [2 * i for i in range(20)]
    took = time.monotonic() - started
    waiters = [w for key, w in running_waiters().items() if key == database.key()]
    assert len(waiters) == 1
    probes = waiters[0].probes - before
    assert probes <= max(40, 15 * took), (probes, took)


async def test_own_wait_timeout_cancels_and_says_why(database: Any, rows: sa.Engine) -> None:
    """packages/prefect-dbos/README.md, "Waiting": a wait that runs out cancels the workflow and says what it was doing."""

    @flow
    async def short_wait() -> tuple[str, Any]:
        wid = await aenqueue_workflow(database, QUEUE, "wf_sleep", [600])
        return wid, await await_workflow(database, wid, timeout=2, return_state=True)

    wid, state = await short_wait()
    with pytest.raises(DBOSWaitTimeoutError, match="Gave up waiting: DBOS workflow is still"):
        await state.result()
    assert dict(workflow_rows(rows, wid))[wid] == "CANCELLED"


def sends_then_fails(database: Any) -> Any:
    """A task that sends "hello" on topic "t" to ``destination`` (one id or a list), then fails its first try."""
    tries = {"n": 0}

    @task(retries=1, retry_delay_seconds=0)
    async def send_then_fail(destination: str | list[str]) -> str:
        key = await asend_message(database, destination, "hello", topic="t")
        tries["n"] += 1
        if tries["n"] == 1:
            raise RuntimeError("fails after sending")
        return key

    return send_then_fail


async def test_send_is_delivered_once_across_task_retries(database: Any) -> None:
    """packages/prefect-dbos/README.md, "Retries": a retried send task delivers its message once (derived idempotency key)."""
    send_then_fail = sends_then_fails(database)

    @flow
    async def sender() -> Any:
        wid = await aenqueue_workflow(database, QUEUE, "wf_recv_all", ["t", 5, 3])
        await send_then_fail(wid)
        return await await_workflow(database, wid)

    assert await sender() == ["hello"]


async def test_send_to_many_once_across_retries_and_wait_for_the_first(database: Any) -> None:
    """packages/prefect-dbos/README.md, "Tasks": a list of destinations is one ``send_bulk``, delivered once per
    destination across a task retry; ``aawait_first_workflow`` returns which of several ended first."""
    send_then_fail = sends_then_fails(database)

    @flow
    async def sender() -> Any:
        never = await aenqueue_workflow(database, QUEUE, "wf_recv_all", ["nobody-sends", 1, 120])
        wids = [await aenqueue_workflow(database, QUEUE, "wf_recv_all", ["t", 2, 3]) for _ in range(2)]
        await send_then_fail(wids)
        first = await aawait_first_workflow(database, [never, *wids], timeout=60)
        results = [await await_workflow(database, wid) for wid in wids]
        await acancel_workflow(database, never)
        typo = await aawait_first_workflow(database, [never, "no-such-workflow"], timeout=60, return_state=True)
        return first, [never, *wids], results, typo

    first, ids, results, typo = await sender()
    assert results == [["hello"], ["hello"]]  # each destination once, though the task ran twice
    assert first["status"] == "SUCCESS" and first["index"] in (1, 2) and first["workflow_id"] == ids[first["index"]]
    with pytest.raises(Exception, match="no DBOS workflow with id 'no-such-workflow'"):
        await typo.result()


async def test_events_cancel_resume_and_fork_once(database: Any) -> None:
    """packages/prefect-dbos/README.md, "Tasks": events, cancel, resume, and a retried fork task making one fork."""
    forks = {"n": 0}

    @task(retries=1, retry_delay_seconds=0)
    async def fork_then_fail(wid: str) -> str:
        fork_id = await afork_workflow(database, wid, 1)
        forks["n"] += 1
        if forks["n"] == 1:
            raise RuntimeError("fails after forking")
        return fork_id

    @flow
    async def manage() -> dict[str, Any]:
        wid = await aenqueue_workflow(database, QUEUE, "wf_event_recv", ["topic"])
        waiting = await await_workflow_event(database, wid, "status", timeout=60)
        await acancel_workflow(database, wid)
        cancelled = (await aget_workflow_status(database, wid))["status"]
        await aresume_workflow(database, wid)
        await asend_message(database, wid, "go", topic="topic")
        result = await await_workflow(database, wid)
        done = await aget_workflow_event(database, wid, "status")
        fork_id = await fork_then_fail(wid)
        return {"waiting": waiting, "cancelled": cancelled, "result": result, "done": done, "fork": fork_id}

    out = await manage()
    assert out["waiting"] == "waiting" and out["cancelled"] == "CANCELLED"
    assert out["result"] == "got:go" and out["done"] == "done"
    forked = database.service().get_workflow_status_with_fork(out["fork"])
    assert forked is not None and forked["forked_from"] is not None


async def test_bulk_enqueue_is_one_transaction_and_a_retry_adds_nothing(database: Any, rows: sa.Engine) -> None:
    """packages/prefect-dbos/README.md, "Tasks": enqueue_workflows writes all items at once; a retried task re-finds them."""
    tries = {"n": 0}

    @task(retries=1, retry_delay_seconds=0)
    async def bulk_then_fail() -> list[str]:
        ids = await aenqueue_workflows(database, QUEUE, "wf_double", [[i] for i in range(5)])
        tries["n"] += 1
        if tries["n"] == 1:
            raise RuntimeError("fails after the bulk enqueue")
        return ids

    @flow
    async def bulk() -> tuple[list[Any], str]:
        ids = await bulk_then_fail()
        from prefect.runtime import flow_run

        return [await await_workflow(database, wid) for wid in ids], str(flow_run.get_id())

    results, run_id = await bulk()
    assert results == [0, 2, 4, 6, 8]
    assert len(workflow_rows(rows, flow_run_prefix(run_id))) == 5


async def test_the_job_block_and_the_flow(database: Any) -> None:
    """packages/prefect-dbos/README.md, "Blocks" and "Flow": DBOSWorkflow.trigger() -> wait -> fetch_result, and the dbt-style flow."""
    block = DBOSWorkflow(
        system_database=database,
        queue_name=QUEUE,
        workflow_name="scale",
        workflow_class_name="Calculator",
        workflow_args=[4],
    )

    @flow
    async def job() -> tuple[Any, Any]:
        run = await block.trigger()
        await run.wait_for_completion()
        via_flow = await run_dbos_workflow_and_wait_for_completion(database, QUEUE, "wf_double", [50])
        return await run.fetch_result(), via_flow

    assert await job() == (40, 100)


def test_an_explicit_id_wins(database: Any, rows: sa.Engine) -> None:
    """packages/prefect-dbos/README.md, "Retries": workflow_id= is used as given."""
    wid = unique("explicit")

    @flow
    async def explicit() -> Any:
        got = await aenqueue_workflow(database, QUEUE, "wf_double", [1], workflow_id=wid)
        assert got == wid
        return await await_workflow(database, wid)

    assert asyncio.run(explicit()) == 2
    assert workflow_rows(rows, wid) == [(wid, "SUCCESS")]


async def test_outside_a_run_without_an_id_is_a_clear_error(database: Any) -> None:
    from prefect_dbos import operations

    with pytest.raises(DBOSOptionsError, match="no Prefect flow run or task run is running"):
        await operations.enqueue(database, QUEUE, "wf_double", [1], logger=None)


async def test_progress_lines_and_one_closing_line(database: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """packages/prefect-dbos/README.md, "Waiting": a waiting task logs its progress (status, last step) and ends with one line."""
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    import prefect_dbos.waiting

    monkeypatch.setattr(prefect_dbos.waiting, "PROGRESS_SECONDS", 1.0)

    @flow
    async def slow() -> Any:
        wid = await aenqueue_workflow(database, QUEUE, "wf_sleep", [3])
        return await await_workflow(database, wid)

    state = await slow(return_state=True)
    assert await state.result() == "slept"
    await APILogHandler.aflush()
    async with get_client() as client:
        logs = await client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id])))
    lines = [log.message for log in logs]
    progress = [line for line in lines if line.startswith("Waiting ") and "DBOS workflow is" in line]
    closing = [line for line in lines if line.startswith("DBOS workflow ended SUCCESS")]
    assert len(progress) >= 2, lines
    assert len(closing) == 1 and 'result: "slept"' in closing[0], lines


async def test_a_wait_is_one_observation_across_its_progress_lines(
    database: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wait registers once on the shared waiter for its whole life; its progress lines come from a
    loop timer. (Each line used to end an observation with a DBOSWaitTimeoutError and start another:
    with 1,000 waits, thousands of objects tied in cycles to old futures, left for the host's gen-2
    collections, bench P11.)"""
    import prefect_dbos.waiting

    monkeypatch.setattr(prefect_dbos.waiting, "PROGRESS_SECONDS", 0.2)
    waiter = await database.waiter()
    registered: set[int] = set()
    lines: list[str] = []

    class Lines:
        def info(self, fmt: str, *args: Any) -> None:
            lines.append(fmt % args)

    handle = await database.get_client().enqueue_async({"workflow_name": "wf_sleep", "queue_name": QUEUE}, 2)
    wid = handle.workflow_id
    waiting = asyncio.create_task(prefect_dbos.waiting.wait_until_ended(database, wid, timeout=None, logger=Lines()))
    while not waiting.done():
        with waiter._lock:
            registered |= {id(w) for w in waiter._waits if getattr(w, "workflow_id", None) == wid}
        await asyncio.sleep(0.05)
    assert (await waiting)["status"] == "SUCCESS"
    assert len(registered) == 1, registered
    assert len(lines) >= 5 and all("DBOS workflow is" in line for line in lines), lines
