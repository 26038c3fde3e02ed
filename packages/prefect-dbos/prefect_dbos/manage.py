"""Prefect tasks that read and manage DBOS workflows: status, events, messages (one or many
destinations), the first of several to end, cancel, resume, fork (async first, ``a``-prefixed, each
with a sync twin; nothing cached).

A retried send delivers its message once and a retried fork makes one fork (README, "Retries").
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.utilities.asyncutils import run_coro_as_sync

from prefect_dbos import operations

if TYPE_CHECKING:
    from collections.abc import Sequence

    from prefect_dbos.database import DBOSSystemDatabase

__all__ = [
    "aawait_first_workflow",
    "acancel_workflow",
    "afork_workflow",
    "aget_workflow_event",
    "aget_workflow_status",
    "aresume_workflow",
    "asend_message",
    "await_workflow_event",
    "cancel_workflow",
    "fork_workflow",
    "get_workflow_event",
    "get_workflow_status",
    "resume_workflow",
    "send_message",
    "wait_for_first_workflow",
    "wait_for_workflow_event",
]

_sync = run_coro_as_sync


# -- status, events, messages ------------------------------------------------------------


@task(name="get-dbos-workflow-status", cache_policy=NO_CACHE)
async def aget_workflow_status(database: DBOSSystemDatabase, workflow_id: str) -> dict[str, Any]:
    """The workflow's status as a dict (no values decoded); a missing id fails naming it.

    :param workflow_id: the workflow.
    """
    return await asyncio.to_thread(database.service().require_workflow, workflow_id)


@task(name="get-dbos-workflow-status", cache_policy=NO_CACHE)
def get_workflow_status(database: DBOSSystemDatabase, workflow_id: str) -> dict[str, Any]:
    """Sync twin of :func:`aget_workflow_status`."""
    return database.service().require_workflow(workflow_id)


@task(name="get-dbos-workflow-event", cache_policy=NO_CACHE)
async def aget_workflow_event(database: DBOSSystemDatabase, workflow_id: str, key: str) -> Any:
    """The current value of event ``key`` (None when not published yet), decoded safely.

    :param workflow_id: the workflow.
    :param key: the event key (``DBOS.set_event(key, value)``).
    """
    return await operations.event(database, workflow_id, key, logger=get_run_logger(), timeout=0)


@task(name="get-dbos-workflow-event", cache_policy=NO_CACHE)
def get_workflow_event(database: DBOSSystemDatabase, workflow_id: str, key: str) -> Any:
    """Sync twin of :func:`aget_workflow_event`."""
    return _sync(operations.event(database, workflow_id, key, logger=get_run_logger(), timeout=0))


@task(name="wait-for-dbos-workflow-event", cache_policy=NO_CACHE)
async def await_workflow_event(
    database: DBOSSystemDatabase, workflow_id: str, key: str, *, timeout: float | None = None
) -> Any:
    """The value of event ``key`` once published; fails if the workflow ends without it or ``timeout`` passes.

    :param workflow_id: the workflow.
    :param key: the event key.
    :param timeout: seconds to wait (None: as long as it takes).
    """
    return await operations.event(database, workflow_id, key, logger=get_run_logger(), timeout=timeout)


@task(name="wait-for-dbos-workflow-event", cache_policy=NO_CACHE)
def wait_for_workflow_event(
    database: DBOSSystemDatabase, workflow_id: str, key: str, *, timeout: float | None = None
) -> Any:
    """Sync twin of :func:`await_workflow_event`."""
    return _sync(operations.event(database, workflow_id, key, logger=get_run_logger(), timeout=timeout))


@task(name="send-dbos-message", cache_policy=NO_CACHE)
async def asend_message(
    database: DBOSSystemDatabase,
    destination_id: str | Sequence[str],
    message: Any,
    *,
    topic: str | None = None,
    idempotency_key: str | None = None,
) -> str:
    """Send ``message`` to a workflow (``DBOS.recv(topic)``), exactly once across retries; return the key.

    :param destination_id: the receiving workflow, or a list of them: then every one gets the message in
        one transaction (DBOS' ``send_bulk``), each under its own key ``<key>:<destination>``, so a retry
        delivers it once per destination.
    :param message: the message (JSON-able with portable serialization).
    :param topic: the topic (None: the default topic).
    :param idempotency_key: explicit key; default derived from the flow run and the call.
    """
    return await operations.send(
        database, destination_id, message, logger=get_run_logger(), topic=topic, idempotency_key=idempotency_key
    )


@task(name="send-dbos-message", cache_policy=NO_CACHE)
def send_message(
    database: DBOSSystemDatabase,
    destination_id: str | Sequence[str],
    message: Any,
    *,
    topic: str | None = None,
    idempotency_key: str | None = None,
) -> str:
    """Sync twin of :func:`asend_message`."""
    return _sync(
        operations.send(
            database, destination_id, message, logger=get_run_logger(), topic=topic, idempotency_key=idempotency_key
        )
    )


@task(name="wait-for-first-dbos-workflow", cache_policy=NO_CACHE)
async def aawait_first_workflow(
    database: DBOSSystemDatabase, workflow_ids: Sequence[str], *, timeout: float | None = None
) -> dict[str, Any]:
    """Wait until the **first** of several workflows ends (DBOS' ``wait_first``), as one wait on the shared
    waiter; return which: ``{"workflow_id", "index", "status"}``, whatever its status (read its result with
    ``await_workflow``). A listed id with no workflow fails naming it; a timeout cancels nothing.

    :param workflow_ids: the workflows (e.g. what ``aenqueue_workflows`` returned).
    :param timeout: seconds to wait (None: as long as it takes); passing it fails the task.
    """
    return await operations.wait_first(database, workflow_ids, logger=get_run_logger(), timeout=timeout)


@task(name="wait-for-first-dbos-workflow", cache_policy=NO_CACHE)
def wait_for_first_workflow(
    database: DBOSSystemDatabase, workflow_ids: Sequence[str], *, timeout: float | None = None
) -> dict[str, Any]:
    """Sync twin of :func:`aawait_first_workflow`."""
    return _sync(operations.wait_first(database, workflow_ids, logger=get_run_logger(), timeout=timeout))


# -- manage -------------------------------------------------------------------------------


@task(name="cancel-dbos-workflow", cache_policy=NO_CACHE)
async def acancel_workflow(database: DBOSSystemDatabase, workflow_id: str) -> str:
    """Cancel a workflow (idempotent: an ended or unknown one is left as it is); return its id.

    :param workflow_id: the workflow.
    """
    await asyncio.to_thread(database.service().cancel_workflows, [workflow_id])
    get_run_logger().info("Cancelled DBOS workflow %s", workflow_id)
    return workflow_id


@task(name="cancel-dbos-workflow", cache_policy=NO_CACHE)
def cancel_workflow(database: DBOSSystemDatabase, workflow_id: str) -> str:
    """Sync twin of :func:`acancel_workflow`."""
    database.service().cancel_workflows([workflow_id])
    get_run_logger().info("Cancelled DBOS workflow %s", workflow_id)
    return workflow_id


@task(name="resume-dbos-workflow", cache_policy=NO_CACHE)
async def aresume_workflow(database: DBOSSystemDatabase, workflow_id: str, *, queue_name: str | None = None) -> str:
    """Continue a CANCELLED or MAX_RECOVERY_ATTEMPTS_EXCEEDED workflow where it stopped; return its id.

    :param workflow_id: the workflow.
    :param queue_name: queue to run it on (default: its own).
    """
    await asyncio.to_thread(database.service().resume_workflow, workflow_id, queue_name=queue_name)
    get_run_logger().info("Resumed DBOS workflow %s", workflow_id)
    return workflow_id


@task(name="resume-dbos-workflow", cache_policy=NO_CACHE)
def resume_workflow(database: DBOSSystemDatabase, workflow_id: str, *, queue_name: str | None = None) -> str:
    """Sync twin of :func:`aresume_workflow`."""
    database.service().resume_workflow(workflow_id, queue_name=queue_name)
    get_run_logger().info("Resumed DBOS workflow %s", workflow_id)
    return workflow_id


@task(name="fork-dbos-workflow", cache_policy=NO_CACHE)
async def afork_workflow(
    database: DBOSSystemDatabase,
    workflow_id: str,
    start_step: int,
    *,
    forked_workflow_id: str | None = None,
    application_version: str | None = None,
    queue_name: str | None = None,
) -> str:
    """Fork a workflow from ``start_step`` (steps before it keep their recorded results), at most once per call.

    :param workflow_id: the original workflow.
    :param start_step: first step to run again (1-based).
    :param forked_workflow_id: id of the fork (default derived from the flow run and the call).
    :param application_version: run the fork on workers of this version.
    :param queue_name: queue of the fork.
    """
    return await operations.fork(
        database,
        workflow_id,
        start_step,
        logger=get_run_logger(),
        forked_workflow_id=forked_workflow_id,
        application_version=application_version,
        queue_name=queue_name,
    )


@task(name="fork-dbos-workflow", cache_policy=NO_CACHE)
def fork_workflow(
    database: DBOSSystemDatabase,
    workflow_id: str,
    start_step: int,
    *,
    forked_workflow_id: str | None = None,
    application_version: str | None = None,
    queue_name: str | None = None,
) -> str:
    """Sync twin of :func:`afork_workflow`."""
    return _sync(
        operations.fork(
            database,
            workflow_id,
            start_step,
            logger=get_run_logger(),
            forked_workflow_id=forked_workflow_id,
            application_version=application_version,
            queue_name=queue_name,
        )
    )
