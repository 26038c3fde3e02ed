"""Prefect tasks that enqueue DBOS workflows and wait for them: async first (``a``-prefixed),
each with a sync twin (reading and managing: :mod:`prefect_dbos.manage`).

Retries are safe: an enqueue re-attaches to the workflow its first try enqueued, a send is
delivered once, a fork is made once (README, "Retries"). Nothing is cached (``NO_CACHE``):
a person may cancel, resume or fork a workflow between two calls.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.utilities.asyncutils import run_coro_as_sync

from prefect_dbos import operations
from prefect_dbos.streams import StreamRead, read_stream_values
from prefect_dbos.waiting import is_own_timeout

if TYPE_CHECKING:
    from collections.abc import Coroutine, Mapping, Sequence

    from dbos_orchestrator.retry import RetryMode

    from prefect_dbos.database import DBOSSystemDatabase

__all__ = [
    "aenqueue_workflow",
    "aenqueue_workflows",
    "await_workflow",
    "await_workflows",
    "enqueue_workflow",
    "enqueue_workflows",
    "wait_for_workflow",
    "wait_for_workflows",
]


def _sync(coro: Coroutine[Any, Any, Any]) -> Any:
    return run_coro_as_sync(coro)


# -- enqueue ------------------------------------------------------------------------------


@task(name="enqueue-dbos-workflow", cache_policy=NO_CACHE)
async def aenqueue_workflow(
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
    options: Mapping[str, Any] | None = None,
) -> str:
    """Enqueue a DBOS workflow once per call of the flow run; return its id.

    :param database: the application's system database.
    :param queue_name: DBOS queue the application's workers poll.
    :param workflow_name: registered name of the workflow (``Class.method`` or with ``workflow_class_name``).
    :param workflow_args: positional arguments.
    :param workflow_kwargs: keyword arguments.
    :param workflow_class_name: class of a class-based workflow.
    :param workflow_id: explicit id (wins over the derived ``prefect-<flow run id>-...``).
    :param key: the call's own key within the flow run, instead of the digest of the call.
    :param retry_mode: a later try finding the workflow failed: ``resume`` (keep completed steps),
        ``restart`` (from step 1) or ``fail``.
    :param options: enqueue options (app_version, priority, workflow_timeout, delay_seconds,
        queue_partition_key, deduplication_id, duplication_policy, authenticated_user,
        authenticated_roles, attributes) and how to check the call first: ``on_unknown_queue`` /
        ``on_unknown_version`` = ``warn`` (default: a queue or version no worker registered is
        named in the task log with the registered ones), ``fail`` (before anything is written) or
        ``ignore``. With ``duplication_policy="return-existing"`` the id returned is the workflow
        already holding ``deduplication_id`` when one does.
    """
    return await operations.enqueue(
        database,
        queue_name,
        workflow_name,
        workflow_args,
        workflow_kwargs,
        logger=get_run_logger(),
        workflow_class_name=workflow_class_name,
        workflow_id=workflow_id,
        key=key,
        retry_mode=retry_mode,
        options=options,
    )


@task(name="enqueue-dbos-workflow", cache_policy=NO_CACHE)
def enqueue_workflow(
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
    options: Mapping[str, Any] | None = None,
) -> str:
    """Sync twin of :func:`aenqueue_workflow` (same parameters)."""
    return _sync(
        operations.enqueue(
            database,
            queue_name,
            workflow_name,
            workflow_args,
            workflow_kwargs,
            logger=get_run_logger(),
            workflow_class_name=workflow_class_name,
            workflow_id=workflow_id,
            key=key,
            retry_mode=retry_mode,
            options=options,
        )
    )


@task(name="enqueue-dbos-workflows", cache_policy=NO_CACHE)
async def aenqueue_workflows(
    database: DBOSSystemDatabase,
    queue_name: str,
    workflow_name: str,
    items: Sequence[Any],
    *,
    workflow_class_name: str | None = None,
    key: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> list[str]:
    """Enqueue one workflow per item in one transaction (all or none); return the ids.

    :param items: each ``{"args": [...], "kwargs": {...}, "workflow_id": "..."}`` (all optional)
        or a list of positional arguments; an item without an id gets ``<derived id>-<index>``,
        so a retry enqueues nothing new.
    :param key: the call's own key within the flow run, instead of the digest of the items.

    The other parameters are those of :func:`aenqueue_workflow`.
    """
    return await operations.enqueue_bulk(
        database,
        queue_name,
        workflow_name,
        items,
        logger=get_run_logger(),
        workflow_class_name=workflow_class_name,
        key=key,
        options=options,
    )


@task(name="enqueue-dbos-workflows", cache_policy=NO_CACHE)
def enqueue_workflows(
    database: DBOSSystemDatabase,
    queue_name: str,
    workflow_name: str,
    items: Sequence[Any],
    *,
    workflow_class_name: str | None = None,
    key: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> list[str]:
    """Sync twin of :func:`aenqueue_workflows` (same parameters)."""
    return _sync(
        operations.enqueue_bulk(
            database,
            queue_name,
            workflow_name,
            items,
            logger=get_run_logger(),
            workflow_class_name=workflow_class_name,
            key=key,
            options=options,
        )
    )


# -- wait ---------------------------------------------------------------------------------


@task(name="wait-for-dbos-workflow", cache_policy=NO_CACHE)
async def await_workflow(
    database: DBOSSystemDatabase,
    workflow_id: str,
    *,
    timeout: float | None = None,
    cancel_on_timeout: bool = True,
    summary_artifact: bool = True,
    stream_to_log: str | None = None,
) -> Any:
    """Wait until the workflow ends; return its output, or fail with its status and own error.

    Waits share this process's one waiter per database. A progress line every 30 s, one
    closing line, a summary artifact.

    :param workflow_id: the workflow to wait for.
    :param timeout: seconds to wait (None: as long as it takes); passing it fails the task.
    :param cancel_on_timeout: cancel the workflow when ``timeout`` or the task's own
        ``timeout_seconds`` passes (a crash never cancels).
    :param summary_artifact: create the summary artifact (id, status, duration, last step). It is
        written after the task returns, by the process' artifact writer (README, "Many waits in
        one flow"; :func:`prefect_dbos.artifacts.flush_artifacts` waits for it).
    :param stream_to_log: a stream key of the workflow: its values are logged while it runs (as
        :func:`prefect_dbos.stream_tasks.aread_stream` does, with a progress artifact for numbers).
    """
    return await _wait(
        database,
        workflow_id,
        logger=get_run_logger(),
        timeout=timeout,
        cancel_on_timeout=cancel_on_timeout,
        summary_artifact=summary_artifact,
        stream_to_log=stream_to_log,
    )


async def _wait(database: DBOSSystemDatabase, workflow_id: str, *, stream_to_log: str | None, **kw: Any) -> Any:
    """The wait, with the workflow's stream ``stream_to_log`` logged beside it while it runs."""
    follower = None
    if stream_to_log is not None:
        follower = asyncio.ensure_future(
            read_stream_values(database, StreamRead(workflow_id, stream_to_log), follow_only=True, logger=kw["logger"])
        )
    try:
        return await operations.wait(database, workflow_id, **kw)
    finally:
        if follower is not None:
            await _drain(follower)


async def _drain(follower: asyncio.Future[Any]) -> None:
    """Let a stream follower log what the ended workflow wrote last (it stops by itself), at most 10 s."""
    try:
        await asyncio.wait_for(follower, 10)
    except Exception:  # noqa: BLE001 - the stream is only logged: the wait's own outcome decides the task
        get_run_logger().warning("Could not log the whole stream", exc_info=True)


@task(name="wait-for-dbos-workflow", cache_policy=NO_CACHE)
def wait_for_workflow(
    database: DBOSSystemDatabase,
    workflow_id: str,
    *,
    timeout: float | None = None,
    cancel_on_timeout: bool = True,
    summary_artifact: bool = True,
    stream_to_log: str | None = None,
) -> Any:
    """Sync twin of :func:`await_workflow` (same parameters)."""
    logger = get_run_logger()
    started = time.time()
    try:
        return _sync(
            _wait(
                database,
                workflow_id,
                logger=logger,
                timeout=timeout,
                cancel_on_timeout=cancel_on_timeout,
                summary_artifact=summary_artifact,
                stream_to_log=stream_to_log,
            )
        )
    except BaseException:
        if cancel_on_timeout and is_own_timeout(started):
            logger.warning("Task timed out: cancelling DBOS workflow %s", workflow_id)
            database.service().cancel_workflows([workflow_id])
        raise


# -- wait for many --------------------------------------------------------------------------


@task(name="wait-for-dbos-workflows", cache_policy=NO_CACHE)
async def await_workflows(
    database: DBOSSystemDatabase,
    workflow_ids: Sequence[str],
    *,
    timeout: float | None = None,
    fail_fast: bool = False,
    cancel_on_timeout: bool = True,
    summary_artifact: bool = True,
) -> dict[str, Any]:
    """Wait until every workflow of a list has ended, as **one** wait; return the counts by status.

    One task run and one statement per tick of the shared waiter whatever the list's length (a
    batch ``aenqueue_workflows`` enqueued is awaited here, not with one ``await_workflow`` task per
    id). A progress line every 30 s (``6,210/10,000 ended: 6,190 SUCCESS, 20 ERROR; 3,790
    pending``), one closing line, one summary artifact.

    :param workflow_ids: the workflows (e.g. what ``aenqueue_workflows`` returned).
    :param timeout: seconds to wait (None: as long as it takes); passing it fails the task.
    :param fail_fast: fail at the first workflow that ended in anything but success (the others
        keep running) instead of after all ended.
    :param cancel_on_timeout: cancel the workflows still active when ``timeout`` or the task's own
        ``timeout_seconds`` passes (a crash never cancels).
    :param summary_artifact: create the summary artifact (counts by status).
    :returns: ``{"total", "ended", "pending", "succeeded", "failed", "by_status"}``.
    :raises DBOSWorkflowFailedError: a workflow ended in anything but success, naming how many and
        the first few ids with their own errors.
    """
    return await operations.wait_many(
        database,
        workflow_ids,
        logger=get_run_logger(),
        timeout=timeout,
        fail_fast=fail_fast,
        cancel_on_timeout=cancel_on_timeout,
        summary_artifact=summary_artifact,
    )


@task(name="wait-for-dbos-workflows", cache_policy=NO_CACHE)
def wait_for_workflows(
    database: DBOSSystemDatabase,
    workflow_ids: Sequence[str],
    *,
    timeout: float | None = None,
    fail_fast: bool = False,
    cancel_on_timeout: bool = True,
    summary_artifact: bool = True,
) -> dict[str, Any]:
    """Sync twin of :func:`await_workflows` (same parameters)."""
    logger = get_run_logger()
    started = time.time()
    try:
        return _sync(
            operations.wait_many(
                database,
                workflow_ids,
                logger=logger,
                timeout=timeout,
                fail_fast=fail_fast,
                cancel_on_timeout=cancel_on_timeout,
                summary_artifact=summary_artifact,
            )
        )
    except BaseException:
        if cancel_on_timeout and is_own_timeout(started):
            operations.cancel_many_on_own_timeout(database, workflow_ids, logger)
        raise
