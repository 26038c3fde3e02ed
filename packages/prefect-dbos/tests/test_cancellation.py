"""A cancelled flow run cancels its workflows, a task's own timeout cancels its workflow, a
crash cancels nothing (packages/prefect-dbos/README.md, "Cancellation")."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import sqlalchemy as sa
from conftest import PACKAGE, ChildProcess, workflow_rows
from flows import (
    SUBMITTED_SLEEP,
    wait_submitted_with_task_timeout,
    wait_submitted_with_task_timeout_sync,
    wait_with_task_timeout,
    wait_with_task_timeout_sync,
)
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
from prefect.states import Cancelling

from prefect_dbos import DBOSSystemDatabase
from prefect_dbos.ids import flow_run_prefix

TESTS = PACKAGE / "tests"


def _status(rows: sa.Engine, workflow_id: str) -> str | None:
    found = dict(workflow_rows(rows, workflow_id))
    return found.get(workflow_id)


def _eventually(check: object, timeout: float = 60) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = check()  # type: ignore[operator]
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


async def test_a_tasks_own_timeout_cancels_its_workflow(
    database: object, rows: sa.Engine, system_database_url: str
) -> None:
    """packages/prefect-dbos/README.md, "Cancellation": timeout_seconds on the wait task cancels the workflow it waits for."""
    wid, failed = await wait_with_task_timeout(system_database_url)
    assert failed
    assert _eventually(lambda: _status(rows, wid) == "CANCELLED", 20), _status(rows, wid)


def test_a_sync_tasks_own_timeout_cancels_its_workflow(
    database: object, rows: sa.Engine, system_database_url: str
) -> None:
    """packages/prefect-dbos/README.md, "Cancellation": the same for the sync twins."""
    wid, failed = wait_with_task_timeout_sync(system_database_url)
    assert failed
    assert _eventually(lambda: _status(rows, wid) == "CANCELLED", 20), _status(rows, wid)


def test_a_submitted_or_mapped_sync_tasks_own_timeout_cancels_its_workflows(
    database: object, rows: sa.Engine, system_database_url: str
) -> None:
    """packages/prefect-dbos/README.md, "Cancellation": the sync twins run by the flow's task
    runner (``.submit``, ``.map``: a worker thread, where Prefect's timeout cannot interrupt a
    blocking call) end at their own ``timeout_seconds`` too, and cancel what they waited for; an
    event wait ends there too and cancels nothing."""
    out = wait_submitted_with_task_timeout_sync(system_database_url)
    assert out["failed"] == [True] * 5, out
    assert out["seconds"] < SUBMITTED_SLEEP / 2, out
    *waited, evented = out["ids"]
    for wid in waited:
        assert _eventually(lambda wid=wid: _status(rows, wid) == "CANCELLED", 20), (wid, _status(rows, wid))
    assert _status(rows, evented) in ("ENQUEUED", "PENDING")
    DBOSSystemDatabase(system_database_url=system_database_url).service().cancel_workflows([evented])


async def test_a_submitted_async_tasks_own_timeout_cancels_its_workflows(
    database: object, rows: sa.Engine, system_database_url: str
) -> None:
    """packages/prefect-dbos/README.md, "Cancellation": the same for the async tasks submitted."""
    out = await wait_submitted_with_task_timeout(system_database_url)
    assert out["failed"] == [True] * 2, out
    assert out["seconds"] < SUBMITTED_SLEEP / 2, out
    for wid in out["ids"]:
        assert _eventually(lambda wid=wid: _status(rows, wid) == "CANCELLED", 20), (wid, _status(rows, wid))


def test_a_crash_cancels_nothing(
    database: object, rows: sa.Engine, system_database_url: str, prefect_server: str, tmp_path: Path
) -> None:
    """packages/prefect-dbos/README.md, "Cancellation": the flow's process gets SIGTERM (a crash): the workflow keeps running."""
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "PYTHONPATH": str(TESTS)}
    # Its whole output is kept (a failure names the file): once in CI the id line had not come after 120 s,
    # and the error's last 30 lines were only Prefect's idle DEBUG lines.
    log = tmp_path / "crash-flow.log"
    proc = ChildProcess("flow", [sys.executable, str(TESTS / "flows.py"), "crash", system_database_url], env, log)
    try:
        # A line of its own (the flow's logs and events also say ENQUEUED, before the id is printed).
        proc.wait_for("CRASH-TEST-WORKFLOW ", 240)
        [wid] = [line.split()[1] for line in proc.lines if line.startswith("CRASH-TEST-WORKFLOW ")]
        assert _eventually(lambda: _status(rows, wid) == "PENDING", 30), (wid, _status(rows, wid), proc.lines[-30:])
        time.sleep(1)  # waiting on the shared waiter
        os.kill(proc.proc.pid, signal.SIGTERM)
        proc.proc.wait(60)
        time.sleep(1)
        assert _status(rows, wid) == "PENDING"
    finally:
        proc.stop()
    DBOSSystemDatabase(system_database_url=system_database_url).service().cancel_workflows([wid])


async def test_cancelling_the_flow_run_cancels_its_workflows(
    database: DBOSSystemDatabase, rows: sa.Engine, system_database_url: str, prefect_server: str
) -> None:
    """packages/prefect-dbos/README.md, "Cancellation": a served flow run is cancelled (as `prefect flow-run cancel` does):
    the runner runs the flow's on_cancellation hook, which cancels the run's workflows by id prefix."""
    await DBOSSystemDatabase(system_database_url=system_database_url).save("cancel-test-db", overwrite=True)
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_server,
        "PYTHONPATH": str(TESTS),
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
    }
    runner = ChildProcess("runner", [sys.executable, str(TESTS / "flows.py"), "serve"], env)
    try:
        runner.wait_for("cancellable", 120)
        run = None
        deadline = time.monotonic() + 60
        while run is None:
            try:
                run = await run_deployment(
                    "cancellable/cancellable", parameters={"url": system_database_url}, timeout=0
                )
            except Exception:  # noqa: BLE001 - the deployment is being created
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(1)
        prefix = flow_run_prefix(str(run.id))
        found = await asyncio.to_thread(
            _eventually, lambda: [s for _, s in workflow_rows(rows, prefix)] == ["PENDING"], 90
        )
        assert found, workflow_rows(rows, prefix)
        async with get_client() as client:
            await client.set_flow_run_state(run.id, Cancelling(), force=True)
        done = await asyncio.to_thread(
            _eventually, lambda: [s for _, s in workflow_rows(rows, prefix)] == ["CANCELLED"], 60
        )
        assert done, (workflow_rows(rows, prefix), "\n".join(runner.lines[-40:]))
        ran = await asyncio.to_thread(
            _eventually, lambda: any("Running hook 'cancel_dbos_workflows'" in line for line in runner.lines), 20
        )
        assert ran, "\n".join(runner.lines[-40:])
    finally:
        runner.stop()
