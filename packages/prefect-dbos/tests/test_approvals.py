"""Approvals in Prefect (docs/approvals.md, "Prefect"): the real DBOS worker's workflow asks, the flow
run pauses, the test resumes it through Prefect's API with ``run_input`` (what the UI's "Resume"
form sends), and the workflow receives the answer once, also across a flow retry after the answer.
Workflow: ``wf_approval`` in tests/dbos_app.py; flow: tests/flows.py."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from conftest import QUEUE, unique
from dbos_testkit.notifications import messages_to
from flows import approve_then_fail_once
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.flow_runs import aresume_flow_run


def start_workflow(system_database_url: str, topic: str) -> str:
    """Enqueue ``wf_approval`` with portable JSON arguments (what the safe reader decodes)."""
    from dbos import DBOSClient, DBOSPortableJSONSerializer

    workflow_id = unique("approval")
    client = DBOSClient(system_database_url=system_database_url, serializer=DBOSPortableJSONSerializer())
    try:
        client.enqueue(
            {"workflow_name": "wf_approval", "queue_name": QUEUE, "workflow_id": workflow_id}, "P-9", topic, None
        )
    finally:
        client.destroy()
    return workflow_id


async def resume_when_paused(run_input: dict[str, Any], timeout: float = 120) -> str:
    """Resume the paused flow run with ``run_input`` as Prefect's UI does; its id."""
    deadline = time.monotonic() + timeout
    paused = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED])))
    async with get_client() as client:
        while time.monotonic() < deadline:
            for run in await client.read_flow_runs(flow_run_filter=paused):
                try:
                    await aresume_flow_run(run.id, run_input=run_input)
                    return str(run.id)
                except RuntimeError as exc:  # the run's input schema is saved just after it paused
                    if "schema" not in str(exc).lower():
                        raise
            await asyncio.sleep(0.5)
    raise AssertionError("no paused flow run")


async def test_the_answer_reaches_the_workflow_once_across_a_flow_retry(
    database: Any, system_database_url: str, tmp_path: Path
) -> None:
    workflow_id = start_workflow(system_database_url, "approval")
    flow = asyncio.create_task(
        approve_then_fail_once(system_database_url, workflow_id, str(tmp_path / "flag"), return_state=True)
    )
    flow_run_id = await resume_when_paused({"decision": "Approve", "comment": "ship it"})
    state = await asyncio.wait_for(flow, 300)
    assert state.is_completed(), state
    answer = await state.result()
    assert answer["chosen_options"] == ["Approve"] and answer["params_input"] == {"comment": "ship it"}
    async with get_client() as client:
        # The resume after the pause, then the retry after the failure (which did not pause: no new input).
        assert (await client.read_flow_run(flow_run_id)).run_count == 3
    assert (tmp_path / "flag").exists()
    received = await asyncio.to_thread(database.get_client().retrieve_workflow(workflow_id).get_result)
    assert received == answer
    sent = messages_to(database.get_client().system_database_engine, workflow_id)
    assert len(sent) == 1 and sent[0][0].startswith(f"prefect-{flow_run_id}-approval-"), sent


async def test_a_rejection_cancels_the_workflow(database: Any, system_database_url: str, tmp_path: Path) -> None:
    workflow_id = start_workflow(system_database_url, "elsewhere")  # it would never receive: only cancelling ends it
    flag = tmp_path / "flag"
    flag.write_text("no failure")
    flow = asyncio.create_task(
        approve_then_fail_once(system_database_url, workflow_id, str(flag), cancel_on_reject=True, return_state=True)
    )
    await resume_when_paused({"decision": "Reject"})
    state = await asyncio.wait_for(flow, 300)
    assert state.is_completed(), state
    assert (await state.result())["chosen_options"] == ["Reject"]
    handle = database.get_client().retrieve_workflow(workflow_id)
    deadline = time.monotonic() + 60
    while (await asyncio.to_thread(handle.get_status)).status != "CANCELLED":
        assert time.monotonic() < deadline, "the rejected workflow was not cancelled"
        await asyncio.sleep(0.5)
    assert len(messages_to(database.get_client().system_database_engine, workflow_id)) == 1
