"""The bridge turns DBOS completions into Prefect events that start deployments, once per
completion even when redelivered (packages/prefect-dbos/README.md, "Events")."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from typing import Any

import sqlalchemy as sa
from conftest import QUEUE, ChildProcess, unique
from dbos import WorkflowSerializationFormat
from dbos_orchestrator.waiting.feed import FeedState, now_ms
from flows import on_dbos_completion
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.events import DeploymentEventTrigger

from prefect_dbos import DBOSSystemDatabase
from prefect_dbos.bridge import load_state, run_bridge, save_state


def _enqueue(database: DBOSSystemDatabase, ids: list[str]) -> None:
    client = database.get_client()
    for i, wid in enumerate(ids):
        client.enqueue(
            {
                "workflow_name": "wf_double",
                "queue_name": QUEUE,
                "workflow_id": wid,
                "serialization_type": WorkflowSerializationFormat.PORTABLE,
            },
            i,
        )


def _enqueue_spread(database: DBOSSystemDatabase, ids: list[str]) -> None:
    """Enqueue ``ids`` in batches of 5, 0.3 s apart (a burst that lasts a few seconds)."""
    for i in range(0, len(ids), 5):
        _enqueue(database, ids[i : i + 5])
        time.sleep(0.3)


async def _until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.3)


async def _deployment(tag: str) -> Any:
    deployment = await on_dbos_completion.ato_deployment(
        name=f"bridge-{tag}",
        triggers=[
            DeploymentEventTrigger(
                expect={"dbos.workflow.success"},
                match={"prefect.resource.id": f"dbos.workflow.{tag}-*"},
                parameters={
                    "workflow_id": "{{ event.resource['dbos.workflow_id'] }}",
                    "status": "{{ event.resource['dbos.status'] }}",
                },
            )
        ],
    )
    return await deployment.aapply()


async def _runs(deployment_id: Any) -> list[str]:
    async with get_client() as client:
        runs = await client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
        )
    return sorted(r.parameters["workflow_id"] for r in runs)


async def _sent_all(name: str, ids: list[str]) -> bool:
    state = await load_state(name)
    return state is not None and set(ids) <= set(state.recent)


async def test_one_flow_run_per_completion_also_when_redelivered(database: DBOSSystemDatabase) -> None:
    """packages/prefect-dbos/README.md, "Events": 3 completions -> 3 flow runs; the bridge re-sending them all (its stored
    position reset, as after a kill before storing) starts none more (same event ids)."""
    tag = unique("bridge")
    deployment_id = await _deployment(tag)
    name = f"test-{tag}"
    start = now_ms()
    await save_state(name, FeedState.starting_at(start))
    ids = [f"{tag}-{i}" for i in range(3)]
    for attempt in range(2):
        if attempt:
            await save_state(name, FeedState.starting_at(start))
        stop = asyncio.Event()
        bridge = asyncio.create_task(run_bridge(database, name=name, stop=stop))
        if not attempt:
            await asyncio.sleep(1)
            await asyncio.to_thread(_enqueue, database, ids)
        await _until(lambda: _sent_all(name, ids), 60, "the bridge to send the 3 completions")
        stop.set()
        assert await bridge == 3

        async def three() -> bool:
            return len(await _runs(deployment_id)) >= 3

        await _until(three, 60, "3 flow runs")
    await asyncio.sleep(5)  # a duplicate would have arrived by now
    assert await _runs(deployment_id) == ids


async def test_the_command_line_bridge(
    database: DBOSSystemDatabase, prefect_server: str, system_database_url: str
) -> None:
    """packages/prefect-dbos/README.md, "Events": `prefect-dbos bridge --block NAME` sends events until SIGTERM, then stores its position."""
    tag = unique("cli")
    deployment_id = await _deployment(tag)
    await DBOSSystemDatabase(system_database_url=system_database_url).save(f"bridge-{tag}", overwrite=True)
    env = {**os.environ, "PREFECT_API_URL": prefect_server}
    exe = os.path.join(os.path.dirname(sys.executable), "prefect-dbos")
    proc = ChildProcess("bridge", [exe, "bridge", "--block", f"bridge-{tag}", "--status", "success"], env)
    try:
        proc.wait_for("BRIDGE READY", 120)
        await asyncio.sleep(2)
        ids = [f"{tag}-0"]
        await asyncio.to_thread(_enqueue, database, ids)

        async def one() -> bool:
            return len(await _runs(deployment_id)) >= 1

        await _until(one, 60, "a flow run from the command-line bridge")
        os.kill(proc.proc.pid, signal.SIGTERM)
        assert proc.proc.wait(30) == 0, "\n".join(proc.lines[-30:])
    finally:
        proc.stop()
    assert await _runs(deployment_id) == ids
    assert await _sent_all(f"bridge-{tag}", ids)


async def test_run_deployment_starts_exactly_once_per_completion(database: DBOSSystemDatabase) -> None:
    """packages/prefect-dbos/README.md, "Events": --run-deployment starts the deployment with an
    idempotency key derived from the completion: a redelivery starts nothing new (no 30-minute limit)."""
    tag = unique("rundep")
    deployment = await on_dbos_completion.ato_deployment(name=f"direct-{tag}")
    deployment_id = await deployment.aapply()
    name, start = f"test-{tag}", now_ms()
    ids = [f"{tag}-{i}" for i in range(2)]
    from dbos_orchestrator.waiting.feed import CompletionFilter

    only_ours = CompletionFilter(names=frozenset({"wf_double"}))
    for attempt in range(2):
        await save_state(name, FeedState.starting_at(start))
        stop = asyncio.Event()
        bridge = asyncio.create_task(
            run_bridge(database, name=name, flt=only_ours, stop=stop, run_deployment=f"on-dbos-completion/direct-{tag}")
        )
        if not attempt:
            await asyncio.sleep(1)
            await asyncio.to_thread(_enqueue, database, ids)
        await _until(lambda: _sent_all(name, ids), 60, "the bridge to handle both completions")
        stop.set()
        await bridge
    assert await _runs(deployment_id) == ids


async def test_kill_9_mid_burst_loses_nothing_and_duplicates_are_dropped(
    database: DBOSSystemDatabase, prefect_server: str, system_database_url: str
) -> None:
    """packages/prefect-dbos/README.md, "Events": the bridge killed with SIGKILL in the middle of 40
    completions and started again: every completion starts exactly one flow run (what the first
    bridge sent but had not stored is sent again, and the server drops those by event id)."""
    tag = unique("burst")
    deployment_id = await _deployment(tag)
    block = f"burst-{tag}"
    await DBOSSystemDatabase(system_database_url=system_database_url).save(block, overwrite=True)
    await save_state(block, FeedState.starting_at(now_ms()))
    env = {**os.environ, "PREFECT_API_URL": prefect_server}
    exe = os.path.join(os.path.dirname(sys.executable), "prefect-dbos")
    argv = [exe, "bridge", "--block", block, "--workflow-name", "wf_double"]
    ids = [f"{tag}-{i}" for i in range(40)]
    first = ChildProcess("bridge-1", argv, env)
    try:
        first.wait_for("BRIDGE READY", 120)
        await asyncio.sleep(2)
        burst = asyncio.create_task(asyncio.to_thread(_enqueue_spread, database, ids))
        await asyncio.to_thread(first.wait_for, "event(s) sent", 60)
        os.kill(first.proc.pid, signal.SIGKILL)  # while the burst is still being enqueued and completing
        first.proc.wait(10)
        await burst
    finally:
        first.stop()
    sent_before = sum(
        int(line.split("event(s) sent")[0].split()[-1]) for line in first.lines if "event(s) sent" in line
    )
    second = ChildProcess("bridge-2", argv, env)
    try:
        second.wait_for("BRIDGE READY", 120)
        await _until(lambda: _sent_all(block, ids), 90, "the second bridge to catch up")
    finally:
        second.stop()
    sent_after = sum(
        int(line.split("event(s) sent")[0].split()[-1]) for line in second.lines if "event(s) sent" in line
    )

    async def forty() -> bool:
        return len(await _runs(deployment_id)) >= 40

    await _until(forty, 90, "40 flow runs")
    await asyncio.sleep(5)
    assert await _runs(deployment_id) == sorted(ids)
    assert sent_before < 40, "the first bridge was not killed mid-burst"
    print(
        f"\nkill -9 mid-burst: first bridge sent {sent_before}, second {sent_after}; "
        f"{sent_before + sent_after - 40} re-sent and dropped by the server; 40 flow runs"
    )


def test_the_event_resource_labels_name_queue_and_status() -> None:
    """What a trigger's ``match`` can name: the workflow's name, queue and status are resource labels."""
    from dbos_orchestrator.status import DBOSWorkflowStatus
    from dbos_orchestrator.waiting.feed import Completion

    from prefect_dbos.bridge import completion_event

    done = Completion(
        workflow_id="w-1",
        status=DBOSWorkflowStatus.ERROR,
        name="checkout",
        class_name=None,
        queue_name="orders",
        app_version="v1",
        created_at=1,
        completed_at=2,
    )
    event = completion_event("db", done)
    assert event.event == "dbos.workflow.error"
    labels = dict(event.resource.items())
    assert labels["dbos.workflow_name"] == "checkout"
    assert labels["dbos.queue_name"] == "orders"
    assert labels["dbos.status"] == "ERROR"
    assert labels["prefect.resource.id"] == "dbos.workflow.w-1"


async def test_a_trigger_matching_the_workflow_name_starts_runs_for_that_name_only(
    database: DBOSSystemDatabase,
) -> None:
    """packages/prefect-dbos/README.md, "Events": a DeploymentEventTrigger with
    match={"dbos.workflow_name": ...} starts a flow run for a completion of that workflow, none for another name."""
    tag = unique("byname")
    deployment = await on_dbos_completion.ato_deployment(
        name=f"by-name-{tag}",
        triggers=[
            DeploymentEventTrigger(
                expect={"dbos.workflow.success"},
                # The id prefix keeps other tests' completions out; the name is what is tested.
                match={"prefect.resource.id": f"dbos.workflow.{tag}-*", "dbos.workflow_name": "wf_double"},
                parameters={
                    "workflow_id": "{{ event.resource['dbos.workflow_id'] }}",
                    "status": "{{ event.resource['dbos.status'] }}",
                },
            )
        ],
    )
    deployment_id = await deployment.aapply()
    name = f"test-{tag}"
    await save_state(name, FeedState.starting_at(now_ms()))
    stop = asyncio.Event()
    bridge = asyncio.create_task(run_bridge(database, name=name, stop=stop))
    await asyncio.sleep(1)
    wanted, other = f"{tag}-double", f"{tag}-echo"

    def enqueue_both() -> None:
        client = database.get_client()
        for wid, workflow_name in ((other, "wf_echo"), (wanted, "wf_double")):
            client.enqueue(
                {
                    "workflow_name": workflow_name,
                    "queue_name": QUEUE,
                    "workflow_id": wid,
                    "serialization_type": WorkflowSerializationFormat.PORTABLE,
                },
                3,
            )

    await asyncio.to_thread(enqueue_both)
    try:
        await _until(lambda: _sent_all(name, [wanted, other]), 60, "the bridge to send both completions")
    finally:
        stop.set()
        await bridge

    async def one() -> bool:
        return len(await _runs(deployment_id)) >= 1

    await _until(one, 60, "a flow run for the wf_double completion")
    await asyncio.sleep(5)  # a run for the wf_echo completion would have arrived by now
    assert await _runs(deployment_id) == [wanted]


async def _events_of(workflow_id: str, count: int) -> list[Any]:
    """The Prefect server's events whose resource is ``workflow_id``, once there are ``count`` of them."""
    from prefect.events.filters import EventFilter, EventResourceFilter

    found: list[Any] = []

    async def arrived() -> bool:
        nonlocal found
        async with get_client() as client:
            page = await client.read_events(
                filter=EventFilter(resource=EventResourceFilter(id=[f"dbos.workflow.{workflow_id}"])), limit=50
            )
        found = list(page.events)
        return len(found) >= count

    await _until(arrived, 60, f"{count} events of {workflow_id}")
    return found


async def test_events_point_at_the_runs_that_enqueued_the_workflow(
    system_database_url: str, database: Any, rows: sa.Engine
) -> None:
    """packages/prefect-dbos/README.md, "Events": the tasks' ``dbos.workflow.enqueued`` / ``.completed`` and the
    bridge's ``dbos.workflow.success`` have the workflow as resource and the flow run and task run behind it as
    related resources (the bridge reads them from the workflow's attributes), so Prefect's UI links them to
    the run. The block's ``application_name`` and ``use_listen_notify`` reach the client, the user's
    ``attributes`` the workflow."""
    from prefect import flow
    from prefect.runtime import flow_run

    from prefect_dbos import aenqueue_workflow, await_workflow

    block = DBOSSystemDatabase(
        system_database_url=system_database_url, application_name="dbos-airflow-tests", use_listen_notify=True
    )
    name = f"test-{unique('related')}"
    await save_state(name, FeedState.starting_at(now_ms()))
    stop = asyncio.Event()
    bridge = asyncio.create_task(run_bridge(database, name=name, stop=stop))

    @flow
    async def enqueue_and_wait() -> tuple[str, str]:
        wid = await aenqueue_workflow(block, QUEUE, "wf_double", [21], options={"attributes": {"team": "orders"}})
        assert await await_workflow(block, wid) == 42
        return wid, str(flow_run.get_id())

    try:
        wid, run_id = await enqueue_and_wait()
        await _until(lambda: _sent_all(name, [wid]), 60, "the bridge to send the completion")
    finally:
        stop.set()
        await bridge
    events = {e.event: e for e in await _events_of(wid, 3)}
    assert set(events) == {"dbos.workflow.enqueued", "dbos.workflow.completed", "dbos.workflow.success"}, events
    for event in events.values():
        assert event.resource.id == f"dbos.workflow.{wid}"
        assert event.resource["dbos.workflow_name"] == "wf_double" and event.resource["dbos.queue_name"] == QUEUE
        roles = {r.role: r.id for r in event.related}
        assert roles.get("flow-run") == f"prefect.flow-run.{run_id}", (event.event, roles)
        assert roles.get("task-run", "").startswith("prefect.task-run."), (event.event, roles)
    assert events["dbos.workflow.completed"].resource["dbos.status"] == "SUCCESS"
    enqueuing_task = {r.role: r.id for r in events["dbos.workflow.enqueued"].related}["task-run"]
    assert {r.role: r.id for r in events["dbos.workflow.success"].related}["task-run"] == enqueuing_task

    with rows.connect() as conn:
        application, attributes = conn.execute(
            sa.text("SELECT application_name, attributes FROM dbos.workflow_status WHERE workflow_uuid = :w"),
            {"w": wid},
        ).one()
    assert application == "dbos-airflow-tests"
    assert attributes["team"] == "orders"
    assert attributes["prefect.task_run_id"] == enqueuing_task.removeprefix("prefect.task-run.")
    assert block.client_kwargs()["use_listen_notify"] is True
