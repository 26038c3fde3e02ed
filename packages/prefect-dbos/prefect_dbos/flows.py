"""The flow in prefect-dbt's style: enqueue a DBOS workflow and wait for it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence  # noqa: TC003 - Prefect validates flow parameters at run time
from typing import Any

from dbos_orchestrator.retry import RetryMode  # noqa: TC002 - Prefect validates flow parameters at run time
from prefect import flow

from prefect_dbos.database import DBOSSystemDatabase  # noqa: TC001
from prefect_dbos.tasks import aenqueue_workflow, await_workflow


@flow(name="Run DBOS workflow and wait for completion")
async def run_dbos_workflow_and_wait_for_completion(
    database: DBOSSystemDatabase,
    queue_name: str,
    workflow_name: str,
    workflow_args: Sequence[Any] = (),
    workflow_kwargs: Mapping[str, Any] | None = None,
    *,
    workflow_class_name: str | None = None,
    workflow_id: str | None = None,
    key: str | None = None,
    retry_mode: RetryMode = "resume",
    max_wait_seconds: float | None = None,
    options: Mapping[str, Any] | None = None,
) -> Any:
    """Enqueue a DBOS workflow (or re-attach to it) and return its output once it ends.

    Run as a subflow, the workflow id is derived from the parent flow run and this call, so a
    retry of the parent re-attaches. A workflow that failed is re-run by ``retry_mode``.

    :param database: the application's system database.
    :param queue_name: DBOS queue the application's workers poll.
    :param workflow_name: registered name of the workflow.
    :param workflow_args: positional arguments.
    :param workflow_kwargs: keyword arguments.
    :param workflow_class_name: class of a class-based workflow.
    :param workflow_id: explicit id (wins over the derived one).
    :param key: the call's own key within the flow run.
    :param retry_mode: ``resume`` (keep completed steps), ``restart`` or ``fail``.
    :param max_wait_seconds: give up (and cancel the workflow) after this long.
    :param options: enqueue options (app_version, priority, workflow_timeout, ...).
    """
    wid = await aenqueue_workflow(
        database,
        queue_name,
        workflow_name,
        workflow_args,
        workflow_kwargs,
        workflow_class_name=workflow_class_name,
        workflow_id=workflow_id,
        key=key,
        retry_mode=retry_mode,
        options=options,
    )
    return await await_workflow(database, wid, timeout=max_wait_seconds)
