"""prefect_dbos.admin and the enqueue check, in flows on the Prefect test server against the real
worker and real Postgres: each task twice (a retry) leaves the same state; bad input names the field."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import QUEUE, unique
from dbos_orchestrator.client import DBOSClient
from prefect import flow

from prefect_dbos import DBOSWorkflow, aenqueue_workflow, aenqueue_workflows
from prefect_dbos.admin import (
    aapply_schedules,
    abackfill_schedule,
    adelete_ended_workflows,
    adelete_queue,
    alist_application_versions,
    alist_queues,
    apromote_application_version,
    aregister_queue,
    aset_workflow_delay,
    atrigger_schedule,
    pause_schedule,
    register_queue,
    resume_schedule,
)


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def task_log() -> Iterator[list[str]]:
    """The lines Prefect's run loggers write during the test."""
    handler = _Lines()
    logger = logging.getLogger("prefect")
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)


@pytest.fixture
def client(system_database_url: str, dbos_worker: Any) -> Iterator[DBOSClient]:
    c = DBOSClient(system_database_url=system_database_url, retry_connection_errors=False)
    yield c
    c.destroy()


async def outcome(fn: Any) -> Any:
    """Run ``fn`` in a flow; its result, or the exception the flow ended with."""

    @flow
    async def run() -> Any:
        return await fn()

    state = await run(return_state=True)
    try:
        return await state.result()
    except Exception as exc:  # noqa: BLE001 - the test inspects it
        return exc


async def test_a_mistyped_queue_warns_naming_the_registered_one_and_fail_writes_nothing(
    database: Any, client: DBOSClient, task_log: list[str]
) -> None:
    key = unique("typo")
    wid = await outcome(lambda: aenqueue_workflow(database, "qq", "wf_double", [1], key=key))
    assert isinstance(wid, str)
    assert any(
        "queue_name='qq' is not a registered DBOS queue" in line and "did you mean 'q'" in line for line in task_log
    )
    assert client.list_workflows(workflow_ids=[wid], load_input=False)[0].status == "ENQUEUED"
    client.cancel_workflow(wid)

    strict = unique("strict")
    error = await outcome(
        lambda: aenqueue_workflow(
            database, "qq", "wf_double", [1], workflow_id=strict, options={"on_unknown_queue": "fail"}
        )
    )
    assert isinstance(error, Exception) and "nothing was enqueued" in str(error) and "'q'" in str(error)
    assert client.list_workflows(workflow_ids=[strict], load_input=False) == []

    block = DBOSWorkflow(
        system_database=database,
        queue_name=QUEUE,
        workflow_name="wf_double",
        app_version="tset",
        on_unknown_version="fail",
        workflow_args=[2],
    )
    error = await outcome(block.trigger)
    assert "app_version='tset' is not a version any DBOS worker registered" in str(error)
    assert "did you mean 'test'" in str(error) and "test (latest)" in str(error)

    bulk = await outcome(
        lambda: aenqueue_workflows(database, "q_othre", "wf_double", [[1], [2]], options={"on_unknown_queue": "fail"})
    )
    assert "did you mean 'q_other'" in str(bulk)


async def test_return_existing_attaches_to_the_holder_and_identity_reaches_the_workflow(
    database: Any, client: DBOSClient
) -> None:
    dedup = unique("refresh")
    holder = client.enqueue(
        {"queue_name": QUEUE, "workflow_name": "wf_sleep", "deduplication_id": dedup}, 60
    ).workflow_id  # still active when the flow below starts, however loaded the machine
    options = {"deduplication_id": dedup, "duplication_policy": "return-existing"}
    attached = await outcome(lambda: aenqueue_workflow(database, QUEUE, "wf_sleep", [0], options=options))
    client.cancel_workflow(holder)
    assert attached == holder  # a second run waits on the first

    roles = {"authenticated_user": "alice", "authenticated_roles": ["admin"], "attributes": {"team": "ops"}}
    wid = await outcome(lambda: aenqueue_workflow(database, QUEUE, "wf_whoami", options=roles))
    (row,) = client.list_workflows(workflow_ids=[wid], load_input=False)
    assert row.authenticated_user == "alice" and row.authenticated_roles == ["admin"]
    bad = await outcome(lambda: aenqueue_workflow(database, QUEUE, "wf_noop", options={"authenticated_roles": "x"}))
    assert "authenticated_roles='x' must be a list of strings" in str(bad)


async def test_queues_schedules_versions_retention_twice_each(database: Any, client: DBOSClient) -> None:
    name = unique("pq")
    for _ in range(2):
        queue = await outcome(lambda: aregister_queue(database, name, worker_concurrency=3))
        assert queue["worker_concurrency"] == 3
    listed = await outcome(lambda: alist_queues(database))
    assert [q["backlog"] for q in listed if q["name"] == name] == [{"DELAYED": 0, "ENQUEUED": 0, "PENDING": 0}]
    bad = await outcome(lambda: aregister_queue(database, name, global_concurrency=-2))
    assert "global_concurrency=-2" in str(bad)

    @flow
    def sync_twin() -> Any:
        return register_queue(database, name, worker_concurrency=4)

    assert sync_twin()["worker_concurrency"] == 4
    assert await outcome(lambda: adelete_queue(database, name)) is True
    assert await outcome(lambda: adelete_queue(database, name)) is False

    prefix = unique("ps") + "-"
    every = {
        "schedule_name": prefix + "m",
        "workflow_name": "wf_scheduled",
        "schedule": "* * * * *",
        "queue_name": QUEUE,
    }
    for _ in range(2):
        done = await outcome(lambda: aapply_schedules(database, [every], prune_prefix=prefix))
        assert done["applied"] == [prefix + "m"] and done["schedules"][0]["next_run"]

    @flow
    def pause_then_resume() -> Any:
        return pause_schedule(database, prefix + "m")["next_run"], resume_schedule(database, prefix + "m")["next_run"]

    paused, resumed = pause_then_resume()
    assert paused is None and resumed is not None
    bad = await outcome(lambda: aapply_schedules(database, [{**every, "schedule": "every minute"}]))
    assert "schedules[0].schedule='every minute' is not a valid cron expression" in str(bad)

    triggered = await outcome(lambda: atrigger_schedule(database, prefix + "m"))
    assert triggered.startswith(f"sched-{prefix}m-trigger-")
    client.retrieve_workflow(triggered).get_result()
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start, end = now - timedelta(minutes=3, seconds=30), now - timedelta(seconds=30)
    ids = await outcome(lambda: abackfill_schedule(database, prefix + "m", start, end))
    assert len(ids) == 3 and ids == await outcome(lambda: abackfill_schedule(database, prefix + "m", start, end))
    future = await outcome(lambda: abackfill_schedule(database, prefix + "m", now, now + timedelta(hours=1)))
    assert "is in the future" in str(future)
    await outcome(lambda: aapply_schedules(database, [], prune_prefix=prefix))
    assert client.list_schedules(application_name=None, schedule_name_prefix=prefix) == []

    versions = await outcome(lambda: alist_application_versions(database))
    assert versions[0]["version_name"] == "test" and versions[0]["latest"]
    same = await outcome(lambda: apromote_application_version(database, "test"))
    assert same["latest"] == "test"  # already latest: nothing changes
    unknown = await outcome(lambda: apromote_application_version(database, "tets"))
    assert "version_name='tets' is not a registered application version" in str(unknown)

    ended = [client.enqueue({"queue_name": QUEUE, "workflow_name": "wf_retained"}, i).workflow_id for i in range(5)]
    for wid in ended:
        client.retrieve_workflow(wid).get_result()
    deleted = await outcome(lambda: adelete_ended_workflows(database, 0, workflow_name="wf_retained", page_size=2))
    assert deleted >= 5 and client.list_workflows(workflow_ids=ended, load_input=False) == []
    assert await outcome(lambda: adelete_ended_workflows(database, 0, workflow_name="wf_retained")) == 0
    cutoff = await outcome(lambda: adelete_ended_workflows(database, timedelta(days=-1)))
    assert "must not be negative" in str(cutoff)


async def test_set_workflow_delay_starts_a_delayed_workflow_once(database: Any, client: DBOSClient) -> None:
    wid = client.enqueue({"queue_name": QUEUE, "workflow_name": "wf_retained", "delay_seconds": 3600}, 7).workflow_id
    assert await outcome(lambda: aset_workflow_delay(database, wid, 0)) is True
    assert client.retrieve_workflow(wid).get_result() == 7
    assert await outcome(lambda: aset_workflow_delay(database, wid, 0)) is False  # a retry: not DELAYED any more
    assert "delay_seconds=-2 must be" in str(await outcome(lambda: aset_workflow_delay(database, wid, -2)))
