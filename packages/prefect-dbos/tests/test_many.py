"""Waiting for many workflows as one wait (packages/prefect-dbos/README.md, "Many workflows in one
task"): a real Prefect test server, the real DBOS worker (tests/dbos_app.py ``wf_item``) and Postgres."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from conftest import QUEUE, unique, workflow_rows
from dbos_orchestrator.exceptions import DBOSOptionsError, DBOSWaitTimeoutError, DBOSWorkflowFailedError
from dbos_orchestrator.waiting.waiter import running_waiters
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from prefect_dbos import aenqueue_workflows, await_workflows, enqueue_workflows, wait_for_workflows
from prefect_dbos.ids import flow_run_prefix
from prefect_dbos.links import artifact_key

NOBODY = "q_prefect_many_nobody"  # a queue no worker polls: its workflows stay ENQUEUED


async def test_one_task_waits_for_200_workflows_with_one_statement_per_tick(database: Any) -> None:
    """ "Many workflows in one task": one task run, counts by status, one summary artifact, and the
    waiter's batch probes (one statement each) instead of 200 single waits."""
    single_before = sum(w.probes for w in running_waiters().values())

    @flow
    async def fan_out() -> tuple[list[str], dict[str, Any], str]:
        ids = await aenqueue_workflows(database, QUEUE, "wf_item", [[i, None, 0.5] for i in range(200)])
        from prefect.runtime import flow_run

        return ids, await await_workflows(database, ids), str(flow_run.get_id())

    ids, summary, run_id = await fan_out()
    assert summary == {
        "total": 200,
        "ended": 200,
        "pending": 0,
        "succeeded": 200,
        "failed": 0,
        "by_status": {"SUCCESS": 200},
    }
    assert all(wid.startswith(flow_run_prefix(run_id)) for wid in ids)
    waiters = list(running_waiters().values())
    assert sum(w.batches.probes for w in waiters) >= 1
    assert sum(w.probes for w in waiters) == single_before  # no wait for a single workflow ran
    from dbos_orchestrator.waiting.batch import BatchSpec

    key = artifact_key("batch", BatchSpec.of_ids(ids).key)
    async with get_client() as client:
        (artifact,) = await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    assert "200 DBOS workflows" in str(artifact.data) and "| SUCCESS | 200 |" in str(artifact.data)


async def test_failures_are_named_with_their_own_errors_after_all_ended(database: Any) -> None:
    """ "Many workflows in one task": by default the task fails after every workflow ended, naming
    how many failed and the first ids with their own errors; ``fail_fast`` fails at the first."""

    @flow
    async def some_fail(fail_fast: bool) -> Any:
        items: list[Any] = [[0, "always"], [1, None, 0.2], [2, "always"], [3, None, 20.0 if fail_fast else 0.2]]
        ids = await aenqueue_workflows(database, QUEUE, "wf_item", items, key=f"fast-{fail_fast}")
        return ids, await await_workflows(database, ids, fail_fast=fail_fast, summary_artifact=False, return_state=True)

    ids, state = await some_fail(False)
    with pytest.raises(DBOSWorkflowFailedError) as failed:
        await state.result()
    message = str(failed.value)
    assert message.startswith("2 of 4 DBOS workflows failed (2 ERROR); first 2: "), message
    assert f"item 0 {ids[0]}: ERROR: " in message and f"item 2 {ids[2]}: ERROR: " in message, message

    ids, state = await some_fail(True)
    with pytest.raises(
        DBOSWorkflowFailedError, match=r"\(fail_fast: stopped at the first failure; [1-3] left running\)"
    ):
        await state.result()


async def test_a_wait_that_runs_out_cancels_the_active_ones_and_says_how_far_it_got(
    database: Any, rows: sa.Engine
) -> None:
    """ "Many workflows in one task": ``timeout`` fails the task with the counts and cancels what is
    still active (``cancel_on_timeout``)."""

    @flow
    async def stuck() -> Any:
        ids = await aenqueue_workflows(database, NOBODY, "wf_item", [[i] for i in range(3)])
        return ids, await await_workflows(database, ids, timeout=1.5, return_state=True)

    ids, state = await stuck()
    with pytest.raises(DBOSWaitTimeoutError, match=r"Gave up waiting after 1.5s for 3 DBOS workflows: 0/3 ended"):
        await state.result()
    assert {dict(workflow_rows(rows, wid))[wid] for wid in ids} == {"CANCELLED"}


def test_the_sync_twin_waits_alike(database: Any) -> None:
    """ "Many workflows in one task": ``wait_for_workflows`` in a sync flow."""

    @flow
    def sync_fan_out() -> dict[str, Any]:
        ids = enqueue_workflows(database, QUEUE, "wf_item", [[i] for i in range(5)])
        return wait_for_workflows(database, ids, summary_artifact=False)

    assert sync_fan_out()["by_status"] == {"SUCCESS": 5}


async def test_bad_lists_name_what_is_wrong(database: Any) -> None:
    """ "Many workflows in one task": an empty list, a repeated id or a string is refused, naming it."""
    wid = unique("wf")

    @flow
    async def bad(ids: Any) -> list[Any]:
        return [await await_workflows(database, ids, return_state=True)]  # the flow itself succeeds

    for ids, match in (
        ([], "workflow_ids is empty"),
        ([wid, wid], f"lists '{wid}' more than once"),
        (wid, "must be a list"),
    ):
        (state,) = await bad(ids)
        with pytest.raises(DBOSOptionsError, match=match):
            await state.result()
