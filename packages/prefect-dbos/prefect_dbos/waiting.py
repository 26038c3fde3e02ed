"""Waiting for a workflow (or one of its events) on the core's shared waiter.

Every wait of a process on one system database goes through that database's one
``DBOSWaiter``: one polling statement per tick for all of them, however many tasks wait
(README, "Waiting"); a list of workflows is one wait (:func:`wait_until_batch_done`). A wait
logs a progress line every ``PROGRESS_LOG_SECONDS`` (status and last recorded step: statuses come
with the waiter's probes, steps are read every 10 s for all waits at once) and one closing line;
values are decoded afterwards by the core's safe reader (pickles refused unless the block allows
them).
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from typing import TYPE_CHECKING, Any, TypeVar

from dbos_orchestrator.exceptions import DBOSWaitTimeoutError, DBOSWorkflowFailedError, DBOSWorkflowNotFoundError
from dbos_orchestrator.messages import (
    PROGRESS_LOG_SECONDS,
    batch_progress_message,
    event_missing_message,
    progress_message,
    still_waiting_message,
)
from dbos_orchestrator.status import DBOSWorkflowStatus
from dbos_orchestrator.waiting.batch import BatchCounts, BatchSpec, BatchTracker

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from prefect_dbos.database import DBOSSystemDatabase

T = TypeVar("T")

PROGRESS_SECONDS = PROGRESS_LOG_SECONDS  # how often a waiting task logs a progress line


async def observe_with_progress(
    observe: Callable[[float | None], Awaitable[T]],
    *,
    timeout: float | None,
    progress: Callable[[float], str],
    logger: Any,
) -> T | None:
    """``await observe(deadline)`` once, logging ``progress(waited)`` every :data:`PROGRESS_SECONDS`
    from a loop timer meanwhile; the answer, or None once ``timeout`` seconds passed.

    One observation for the whole wait, not one per progress line: a step that ran out raised a
    :class:`DBOSWaitTimeoutError` whose traceback tied a new future, its frames and the wait's
    objects into a cycle, every 30 s for every pending wait. With 1,000 waits in one process
    those were thousands of objects a second promoted to the oldest GC generation and left as
    cyclic garbage only a full collection frees: they brought the host's gen-2 collections on
    sooner and made each one longer, and one stops every thread of the process for hundreds of
    ms (bench P11).

    :param observe: one wait on the shared waiter up to ``deadline`` (wall clock; None: no deadline);
        raises :class:`DBOSWaitTimeoutError` when it comes first.
    """
    started = time.time()
    deadline = None if timeout is None else started + timeout
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()  # the task's run context, for the run logger's records
    timer: asyncio.TimerHandle | None = None

    def line() -> None:
        nonlocal timer
        now = time.time()
        if deadline is not None and now >= deadline:
            return  # the wait itself ends now: no progress line at its deadline
        logger.info("%s", progress(now - started))
        timer = loop.call_later(PROGRESS_SECONDS, line, context=context)

    timer = loop.call_later(PROGRESS_SECONDS, line, context=context)
    try:
        return await observe(deadline)
    except DBOSWaitTimeoutError:
        return None
    finally:
        timer.cancel()


async def wait_until_ended(
    database: DBOSSystemDatabase,
    workflow_id: str,
    *,
    timeout: float | None,
    logger: Any,
    key: str | None = None,
    then: Callable[[dict[str, Any]], Any] | None = None,
) -> Any:
    """Wait until the workflow ends (or, with ``key``, its event exists); return its status dict.

    Returns None when ``timeout`` seconds passed first. A workflow that does not exist raises
    :class:`DBOSWorkflowNotFoundError` at once.

    :param timeout: seconds to wait (None: as long as it takes).
    :param logger: receives the progress lines (status and last recorded step).
    :param key: also stop as soon as this event key exists.
    :param then: given, ``then(status)`` is returned instead, called in the thread that read the
        status (e.g. the output read too: one hop back to the event loop, not two).
    """
    waiter = await database.waiter()

    def progress(waited: float) -> str:
        return progress_message(workflow_id, *waiter.progress(workflow_id), waited)

    seen = await observe_with_progress(
        lambda until: waiter.observe(workflow_id, key, deadline=until),
        timeout=timeout,
        progress=progress,
        logger=logger,
    )
    if seen is None:
        return None

    def ended() -> Any:
        status = database.service().require_workflow(workflow_id)  # a missing workflow raises, naming it
        return status if then is None else then(status)

    return await asyncio.to_thread(ended)


async def wait_until_batch_done(
    database: DBOSSystemDatabase,
    spec: BatchSpec,
    *,
    timeout: float | None,
    fail_fast: bool,
    logger: Any,
    first: bool = False,
) -> tuple[BatchCounts, bool]:
    """Wait for every workflow of ``spec`` as **one** wait on the shared waiter: one statement per
    batch tick whatever the batch's size. Returns the counts and whether the batch is done (every
    item ended or, with ``fail_fast``, one failed, or with ``first``, one ended); False: ``timeout``
    passed first.

    :param logger: receives a progress line (``6,210/10,000 ended: ...``) every ``PROGRESS_SECONDS``.
    """
    waiter = await database.waiter()
    tracker = BatchTracker(spec, first=first)

    def progress(waited: float) -> str:
        return batch_progress_message(tracker.counts.total, tracker.counts.by_status, waited)

    counts = await observe_with_progress(
        lambda until: waiter.batches.observe(tracker, fail_fast=fail_fast, deadline=until),
        timeout=timeout,
        progress=progress,
        logger=logger,
    )
    return (tracker.counts, False) if counts is None else (counts, True)


def timed_out_error(database: DBOSSystemDatabase, workflow_id: str, waited: float) -> DBOSWaitTimeoutError:
    """Why a wait ran out: what the workflow is doing and the likely causes (the core's sentence)."""
    service = database.service()
    status = service.get_workflow_status_with_fork(workflow_id)
    if status is None:
        return DBOSWaitTimeoutError(f"DBOS workflow {workflow_id} does not exist")
    return DBOSWaitTimeoutError(still_waiting_message(status, waited, service.value_reader().last_step(workflow_id)))


async def wait_for_event(
    database: DBOSSystemDatabase, workflow_id: str, key: str, *, timeout: float | None, logger: Any
) -> Any:
    """The value of event ``key`` once it exists; fail if the workflow ends without it.

    :raises DBOSWaitTimeoutError: ``timeout`` passed first.
    :raises DBOSWorkflowFailedError: the workflow ended without publishing ``key``.
    """
    service = database.service()
    reader = service.value_reader()
    started = time.time()
    status = await wait_until_ended(database, workflow_id, timeout=timeout, logger=logger, key=key)
    published, value = await asyncio.to_thread(reader.event, workflow_id, key)
    if published:
        return value
    if status is None:
        raise timed_out_error(database, workflow_id, time.time() - started)
    if DBOSWorkflowStatus.parse(status["status"]).is_terminal():
        raise DBOSWorkflowFailedError(event_missing_message(workflow_id, key, status["status"]))
    raise DBOSWorkflowNotFoundError(f"event {key!r} of DBOS workflow {workflow_id} vanished")  # pragma: no cover


OWN_TIMEOUT_MARGIN = 0.5  # seconds: a wait ends (and cancels) this much before Prefect stops the task


def own_deadline(started: float | None = None) -> float | None:
    """When the running task's own ``timeout_seconds`` ends, less :data:`OWN_TIMEOUT_MARGIN`
    (wall clock); None outside a task or without one.

    Prefect enforces ``timeout_seconds`` by cancelling the task: an async task at its next
    ``await``, a sync task in the flow's main thread by an alarm signal, but a sync task in a
    worker thread (``.submit``, ``.map``) only once its blocking call returns, which for a wait is
    when the workflow ends. So every wait ends by itself at this deadline, however it runs.

    :param started: when the wait began, if before the task run's recorded start.
    """
    from prefect.context import TaskRunContext

    ctx = TaskRunContext.get()
    if ctx is None or ctx.task.timeout_seconds is None:
        return None
    began = ctx.task_run.start_time.timestamp() if ctx.task_run.start_time is not None else time.time()
    if started is not None:
        began = min(began, started)
    return began + ctx.task.timeout_seconds - OWN_TIMEOUT_MARGIN


def within_own_timeout(timeout: float | None, deadline: float | None) -> float | None:
    """``timeout`` shortened to what is left before the task's own ``deadline``."""
    if deadline is None:
        return timeout
    left = max(0.0, deadline - time.time())
    return left if timeout is None else min(timeout, left)


def own_timeout_passed(deadline: float | None) -> bool:
    return deadline is not None and time.time() >= deadline


def own_timeout_error(what: str) -> TimeoutError:
    """The error of a task whose own ``timeout_seconds`` passed while it waited for ``what``:
    Prefect's own, so the task run ends ``TimedOut`` as any timed-out task does."""
    from prefect.context import TaskRunContext
    from prefect.task_engine import TaskRunTimeoutError

    ctx = TaskRunContext.get()
    seconds = ctx.task.timeout_seconds if ctx is not None else None
    return TaskRunTimeoutError(f"Task run exceeded its timeout_seconds={seconds} while waiting for {what}")


def is_own_timeout(started: float) -> bool:
    """Whether the running task's own ``timeout_seconds`` has passed (a timeout, not a crash).

    Prefect stops a timed-out task by raising a cancellation inside it; a crash (SIGTERM, a
    lost process) does not count, so a retry can re-attach to the still running workflow.
    """
    return own_timeout_passed(own_deadline(started))
