"""Flows the tests run (in the test process, or by ``prefect flow-run retry --entrypoint``).

They take the system database URL (not the block): a flow run's parameters are stored by the
Prefect API, which masks secrets, and ``flow-run retry`` reads them back from it.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from prefect import flow, task, unmapped

from prefect_dbos import (
    DBOSSystemDatabase,
    aenqueue_workflow,
    await_workflow,
    await_workflows,
    cancel_dbos_workflows,
    enqueue_workflow,
    run_dbos_workflow_and_wait_for_completion,
    wait_for_workflow,
    wait_for_workflow_event,
    wait_for_workflows,
)

QUEUE = "q"


def db(url: str, **fields: Any) -> DBOSSystemDatabase:
    return DBOSSystemDatabase(system_database_url=url, **fields)


def fail_once(flag: str, what: str) -> None:
    """Raise the first time (``flag`` does not exist yet), pass afterwards."""
    path = Path(flag)
    if not path.exists():
        path.write_text("failed once")
        raise RuntimeError(f"{what} fails on its first run")


@flow(retries=1, retry_delay_seconds=0)
async def enqueue_then_fail_once(url: str, flag: str) -> list[Any]:
    """Two identical calls and a third one, then the first attempt fails; the retry re-attaches."""
    database = db(url)
    ids = [
        await aenqueue_workflow(database, QUEUE, "wf_double", [1]),
        await aenqueue_workflow(database, QUEUE, "wf_double", [1]),
        await aenqueue_workflow(database, QUEUE, "wf_double", [2]),
    ]
    results = [await await_workflow(database, wid) for wid in ids]
    fail_once(flag, "the flow")
    return results


@flow
def enqueue_and_fail_unless_flag(url: str, flag: str) -> Any:
    """No retries of its own: a person retries it (``prefect flow-run retry``). Sync, with the sync
    twins: prefect 3.9.1's ``flow-run retry --entrypoint`` never awaits an async flow."""
    database = db(url)
    wid = enqueue_workflow(database, QUEUE, "wf_double", [21])
    fail_once(flag, "the flow")
    return wait_for_workflow(database, wid)


@task(retries=1, retry_delay_seconds=0)
async def checkout(url: str, flag: str, x: int) -> Any:
    """A user's task: enqueues, then fails on its first try after the enqueue."""
    database = db(url)
    wid = await aenqueue_workflow(database, QUEUE, "wf_double", [x])
    fail_once(flag, "the task")
    return await await_workflow(database, wid)


@flow
async def user_task_retry(url: str, flag: str) -> Any:
    return await checkout(url, flag, 5)


@flow(retries=1, retry_delay_seconds=0)
async def flaky_workflow(url: str, retry_mode: str) -> Any:
    """wf_flaky ends in ERROR on its first run; the flow's retry follows ``retry_mode``."""
    database = db(url)
    wid = await aenqueue_workflow(database, QUEUE, "wf_flaky", retry_mode=retry_mode)  # type: ignore[arg-type]
    return await await_workflow(database, wid)


@flow
async def wait_with_task_timeout(url: str) -> tuple[str, bool]:
    """The wait task's own timeout_seconds passes while the workflow sleeps."""
    database = db(url)
    wid = await aenqueue_workflow(database, QUEUE, "wf_sleep", [600])
    state = await await_workflow.with_options(timeout_seconds=3)(database, wid, return_state=True)
    return wid, state.is_failed()


@flow
def wait_with_task_timeout_sync(url: str) -> tuple[str, bool]:
    """The same with the sync twins."""
    database = db(url)
    wid = enqueue_workflow(database, QUEUE, "wf_sleep", [600])
    state = wait_for_workflow.with_options(timeout_seconds=3)(database, wid, return_state=True)
    return wid, state.is_failed()


SUBMITTED_SLEEP = 60  # seconds: a wait the task's own 3 s timeout must end long before


@flow
def wait_submitted_with_task_timeout_sync(url: str) -> dict[str, Any]:
    """The sync twins submitted to the flow's task runner (worker threads: Prefect's own timeout
    cannot interrupt them there), one mapped, one batch wait, one event wait; each with
    timeout_seconds=3. The last workflow is only the event wait's: nothing cancels it."""
    database = db(url)
    ids = [enqueue_workflow(database, QUEUE, "wf_sleep", [SUBMITTED_SLEEP], key=f"s{i}") for i in range(5)]
    started = time.monotonic()
    submitted = wait_for_workflow.with_options(timeout_seconds=3).submit(database, ids[0])
    mapped = wait_for_workflow.with_options(timeout_seconds=3).map(unmapped(database), ids[1:3])
    batch = wait_for_workflows.with_options(timeout_seconds=3).submit(database, ids[3:4])
    event = wait_for_workflow_event.with_options(timeout_seconds=3).submit(database, ids[4], "never")
    futures = [submitted, *mapped, batch, event]
    for future in futures:
        future.wait()
    return {"ids": ids, "failed": [f.state.is_failed() for f in futures], "seconds": time.monotonic() - started}


@flow
async def wait_submitted_with_task_timeout(url: str) -> dict[str, Any]:
    """The async tasks submitted to the flow's task runner, each with timeout_seconds=3."""
    database = db(url)
    ids = [await aenqueue_workflow(database, QUEUE, "wf_sleep", [SUBMITTED_SLEEP], key=f"a{i}") for i in range(2)]
    started = time.monotonic()
    futures = [
        await_workflow.with_options(timeout_seconds=3).submit(database, ids[0]),
        await_workflows.with_options(timeout_seconds=3).submit(database, ids[1:]),
    ]
    for future in futures:
        await asyncio.to_thread(future.wait)
    return {"ids": ids, "failed": [f.state.is_failed() for f in futures], "seconds": time.monotonic() - started}


@flow
async def wait_forever(url: str) -> Any:
    """Enqueues a long workflow and waits: the tests crash it (SIGTERM)."""
    database = db(url)
    wid = await aenqueue_workflow(database, QUEUE, "wf_sleep", [600])
    print("CRASH-TEST-WORKFLOW", wid, flush=True)  # the test waits for this exact line
    return await await_workflow(database, wid)


@flow(on_cancellation=[cancel_dbos_workflows("cancel-test-db")])
async def cancellable(url: str) -> Any:
    """Served by a runner in the tests; cancelled while it waits."""
    database = db(url)
    wid = await aenqueue_workflow(database, QUEUE, "wf_sleep", [600])
    return await await_workflow(database, wid)


@flow(retries=1, retry_delay_seconds=0)
async def parent_of_the_wait_flow(url: str, flag: str) -> Any:
    """Runs the package's flow as a subflow twice, then fails once: the retry re-attaches to both."""
    database = db(url)
    first = await run_dbos_workflow_and_wait_for_completion(database, QUEUE, "wf_double", [7])
    second = await run_dbos_workflow_and_wait_for_completion(database, QUEUE, "wf_double", [7])
    fail_once(flag, "the parent flow")
    return [first, second]


@flow
def on_dbos_completion(workflow_id: str, status: str) -> str:
    """Started by a deployment trigger on the bridge's events."""
    return f"{workflow_id}:{status}"


if __name__ == "__main__":
    import sys

    if sys.argv[1] == "serve":
        cancellable.serve(name="cancellable")
    elif sys.argv[1] == "crash":
        import asyncio

        asyncio.run(wait_forever(sys.argv[2]))


@flow(retries=2, retry_delay_seconds=0)  # resuming from a pause counts as a run too
async def approve_then_fail_once(url: str, workflow_id: str, flag: str, cancel_on_reject: bool = False) -> Any:
    """Pauses for the workflow's approval, then its first attempt fails: the retry sends nothing again."""
    from prefect_dbos.approvals import aawait_approval

    answer = await aawait_approval(
        db(url), workflow_id, topic="approval", poll_interval=1, timeout=300, cancel_on_reject=cancel_on_reject
    )
    fail_once(flag, "the approval flow")
    return answer
