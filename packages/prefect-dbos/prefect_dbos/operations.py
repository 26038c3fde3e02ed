"""What each prefect-dbos task does, as plain coroutines (the tasks in :mod:`prefect_dbos.tasks`
are thin wrappers, async and sync). Every side effect is keyed, so a retried task is safe."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dbos_orchestrator.exceptions import DBOSOptionsError, DBOSWaitTimeoutError
from dbos_orchestrator.messages import batch_progress_message, first_ended_message
from dbos_orchestrator.outcome import FAILURES_NAMED, batch_result
from dbos_orchestrator.retry import check_retry_mode
from dbos_orchestrator.status import DBOSWorkflowStatus
from dbos_orchestrator.store.bulk import enqueue_many
from dbos_orchestrator.waiting.batch import BatchSpec

from prefect_dbos.events import emit_task_event
from prefect_dbos.ids import current_run, derived_key, derived_workflow_id, flow_run_prefix
from prefect_dbos.links import link_workflow, summarize, summarize_batch
from prefect_dbos.options import check_arguments, check_target, enqueue_options, with_prefect_attributes
from prefect_dbos.waiting import (
    is_own_timeout,
    own_deadline,
    own_timeout_error,
    own_timeout_passed,
    timed_out_error,
    wait_for_event,
    wait_until_batch_done,
    wait_until_ended,
    within_own_timeout,
)

if TYPE_CHECKING:
    from dbos_orchestrator.retry import RetryMode

    from prefect_dbos.database import DBOSSystemDatabase

# Flow run id -> the databases its tasks enqueued on (what the cancellation hook falls back to).
_ENQUEUED_ON: dict[str, dict[str, DBOSSystemDatabase]] = {}
_ENQUEUED_LOCK = threading.Lock()


def databases_of(flow_run_id: str) -> list[DBOSSystemDatabase]:
    """The databases this process's tasks of ``flow_run_id`` enqueued workflows on."""
    with _ENQUEUED_LOCK:
        return list(_ENQUEUED_ON.get(flow_run_id, {}).values())


def _remember(owner_id: str, database: DBOSSystemDatabase) -> None:
    with _ENQUEUED_LOCK:
        _ENQUEUED_ON.setdefault(owner_id, {})[database.key()] = database


async def enqueue(
    database: DBOSSystemDatabase,
    queue_name: str,
    workflow_name: str,
    workflow_args: Sequence[Any] = (),
    workflow_kwargs: Mapping[str, Any] | None = None,
    *,
    logger: Any,
    workflow_class_name: str | None = None,
    workflow_id: str | None = None,
    key: str | None = None,
    retry_mode: RetryMode = "resume",
    options: Mapping[str, Any] | None = None,
) -> str:
    """Enqueue once under a derived (or explicit) id; a retry re-attaches or re-runs by ``retry_mode``."""
    check_retry_mode(retry_mode)  # the core's rule and sentence
    args, kwargs = check_arguments(workflow_args, workflow_kwargs)
    opts = enqueue_options(database, queue_name, workflow_name, workflow_class_name, options)
    run = await asyncio.to_thread(current_run) if workflow_id is None else None
    wid = workflow_id or derived_workflow_id(
        queue_name, workflow_name, args, kwargs, class_name=workflow_class_name, key=key, run=run
    )
    opts["workflow_id"] = wid
    with_prefect_attributes(opts)
    check = check_target(database, opts, logger)
    service = database.service(log=logger)
    waited, _ = await asyncio.to_thread(
        service.enqueue_attaching, opts, args, kwargs, retry_mode=retry_mode, check=check
    )  # another flow run's workflow with duplication_policy="return-existing"
    if run is not None:
        _remember(run.owner_id, database)
    await link_workflow(database, waited)
    status = DBOSWorkflowStatus.ENQUEUED.value
    workflow = {"workflow_id": waited, "name": workflow_name, "class_name": workflow_class_name, "status": status}
    emit_task_event("enqueued", database.get_client().target, {**opts, **workflow})
    return str(waited)


def _cancel_on_own_timeout(database: DBOSSystemDatabase, workflow_id: str, started: float, logger: Any) -> None:
    """Called while the task is being stopped: cancel the workflow only if it is the task's own timeout."""
    if is_own_timeout(started):
        logger.warning("Task timed out: cancelling DBOS workflow %s", workflow_id)
        database.service().cancel_workflows([workflow_id])  # blocking on purpose: the task is being cancelled


async def wait(
    database: DBOSSystemDatabase,
    workflow_id: str,
    *,
    logger: Any,
    timeout: float | None = None,
    cancel_on_timeout: bool = True,
    summary_artifact: bool = True,
) -> Any:
    """Wait until the workflow ends; return its decoded output or raise with its own error.

    ``timeout`` passing (or the task's own ``timeout_seconds``) cancels the workflow unless
    ``cancel_on_timeout=False``; a crash cancels nothing (a retry re-attaches). With
    ``summary_artifact`` the run gets a markdown artifact saying how the workflow ended (one write
    to the Prefect API per wait, made after the wait returns: :mod:`prefect_dbos.artifacts`).
    """
    started = time.time()
    deadline = own_deadline(started)
    service = database.service(log=logger)

    def output(status: dict[str, Any]) -> tuple[dict[str, Any], Any, Exception | None]:
        """The output read in the thread that read the status: one hop back to the loop, not two."""
        try:
            return status, service.result(workflow_id, status=status, log=lambda line: logger.info("%s", line)), None
        except Exception as exc:  # noqa: BLE001 - raised below, after the event and the artifact
            return status, None, exc

    try:
        ended = await wait_until_ended(
            database, workflow_id, timeout=within_own_timeout(timeout, deadline), logger=logger, then=output
        )
    except (asyncio.CancelledError, TimeoutError):
        if cancel_on_timeout:
            _cancel_on_own_timeout(database, workflow_id, started, logger)
        raise
    status = None if ended is None else ended[0]
    if status is None and own_timeout_passed(deadline):
        if cancel_on_timeout:
            logger.warning("Task timed out: cancelling DBOS workflow %s", workflow_id)
            await asyncio.to_thread(service.cancel_workflows, [workflow_id])
        raise own_timeout_error(f"DBOS workflow {workflow_id}")
    if status is None:
        error = await asyncio.to_thread(timed_out_error, database, workflow_id, time.time() - started)
        if cancel_on_timeout:
            logger.warning("Cancelling DBOS workflow %s: its wait ran out", workflow_id)
            await asyncio.to_thread(service.cancel_workflows, [workflow_id])
        raise error
    emit_task_event("completed", database.get_client().target, status, key=status.get("updated_at"))
    if summary_artifact:  # written after the task returns, off the wait's return path (prefect_dbos.artifacts)
        summarize(database, status, service.value_reader().last_steps)
    _, value, error = ended
    if error is not None:
        raise error
    return value


def _batch_of(workflow_ids: Sequence[str]) -> BatchSpec:
    if isinstance(workflow_ids, (str, bytes)) or not isinstance(workflow_ids, Sequence):
        raise DBOSOptionsError(f"workflow_ids must be a list of ids, got {type(workflow_ids).__name__}")
    return BatchSpec.of_ids(workflow_ids)


async def wait_many(
    database: DBOSSystemDatabase,
    workflow_ids: Sequence[str],
    *,
    logger: Any,
    timeout: float | None = None,
    fail_fast: bool = False,
    cancel_on_timeout: bool = True,
    summary_artifact: bool = True,
) -> dict[str, Any]:
    """Wait for every workflow of ``workflow_ids`` as one wait; return the counts by status.

    Fails after all ended if any ended in anything but success (or does not exist), naming how
    many and the first :data:`FAILURES_NAMED` ids with their own errors; with ``fail_fast`` at the
    first such one (the rest are left running). ``timeout`` passing (or the task's own
    ``timeout_seconds``) cancels the ones still active unless ``cancel_on_timeout=False``; a crash
    cancels nothing.
    """
    spec = _batch_of(workflow_ids)
    service = database.service(log=logger)
    started = time.time()
    deadline = own_deadline(started)
    try:
        counts, done = await wait_until_batch_done(
            database, spec, timeout=within_own_timeout(timeout, deadline), fail_fast=fail_fast, logger=logger
        )
    except (asyncio.CancelledError, TimeoutError):
        if cancel_on_timeout and is_own_timeout(started):
            cancel_many_on_own_timeout(database, workflow_ids, logger)
        raise
    summary = counts.to_json()
    if not done:
        line = batch_progress_message(counts.total, counts.by_status, time.time() - started)
        if own_timeout_passed(deadline):
            if cancel_on_timeout:
                await asyncio.to_thread(cancel_many_on_own_timeout, database, workflow_ids, logger)
            raise own_timeout_error(f"{counts.total:,} DBOS workflows: {line}")
        if cancel_on_timeout:
            cancelled = await asyncio.to_thread(service.cancel_batch, spec)
            logger.warning("Cancelled %d active DBOS workflow(s) of %s: the wait ran out", cancelled, spec.key)
        raise DBOSWaitTimeoutError(f"Gave up waiting after {timeout}s for {counts.total:,} DBOS workflows: {line}")
    logger.info("%s", batch_progress_message(counts.total, counts.by_status, time.time() - started))
    if summary_artifact:
        await summarize_batch(spec.key, summary)
    if counts.failed:
        failures = await asyncio.to_thread(
            service.batch_items, spec, statuses=counts.failure_statuses(), limit=FAILURES_NAMED
        )
        await asyncio.to_thread(batch_result, counts, failures, service.value_reader(), fail_fast=fail_fast)
    return summary


async def wait_first(
    database: DBOSSystemDatabase, workflow_ids: Sequence[str], *, logger: Any, timeout: float | None = None
) -> dict[str, Any]:
    """Wait until the first of ``workflow_ids`` ends (DBOS' ``wait_first``), as one wait; return which:
    ``{"workflow_id", "index", "status"}``, whatever its status. A listed id with no workflow fails naming
    it; a timeout cancels nothing (the workflows are not this task's)."""
    spec = _batch_of(workflow_ids)
    service = database.service(log=logger)
    started = time.time()
    deadline = own_deadline(started)
    counts, done = await wait_until_batch_done(
        database, spec, timeout=within_own_timeout(timeout, deadline), fail_fast=False, logger=logger, first=True
    )
    if not done:
        line = batch_progress_message(counts.total, counts.by_status, time.time() - started)
        what = f"the first of {counts.total:,} DBOS workflows: {line}"
        if own_timeout_passed(deadline):
            raise own_timeout_error(what)
        raise DBOSWaitTimeoutError(f"Gave up waiting after {timeout}s for {what}")
    first = await asyncio.to_thread(service.first_ended, spec, counts)
    assert first is not None  # done: one ended
    logger.info("%s", first_ended_message(first, spec.count))
    return first


def cancel_many_on_own_timeout(database: DBOSSystemDatabase, workflow_ids: Sequence[str], logger: Any) -> None:
    """The task's own ``timeout_seconds`` passed while it waited for ``workflow_ids``: cancel the
    active ones, in this thread (the task is being stopped)."""
    spec = BatchSpec.of_ids(workflow_ids)
    logger.warning("Task timed out: cancelling the active DBOS workflows of %s", spec.key)
    database.service(log=logger).cancel_batch(spec)


async def event(database: DBOSSystemDatabase, workflow_id: str, key: str, *, logger: Any, timeout: float | None) -> Any:
    """The value of event ``key``; ``timeout=0`` reads it once (None when absent)."""
    if timeout == 0:
        published, value = await asyncio.to_thread(database.service().value_reader().event, workflow_id, key)
        if not published:
            await asyncio.to_thread(database.service().require_workflow, workflow_id)
        return value
    deadline = own_deadline()
    try:
        return await wait_for_event(
            database, workflow_id, key, timeout=within_own_timeout(timeout, deadline), logger=logger
        )
    except DBOSWaitTimeoutError:
        if own_timeout_passed(deadline):  # an event wait cancels nothing: the workflow is not its own
            raise own_timeout_error(f"event {key!r} of DBOS workflow {workflow_id}") from None
        raise


async def send(
    database: DBOSSystemDatabase,
    destination_id: str | Sequence[str],
    message: Any,
    *,
    logger: Any,
    topic: str | None = None,
    idempotency_key: str | None = None,
) -> str:
    """Send a message once across retries (derived idempotency key); return the key. A list of
    destinations is one transaction (DBOS' ``send_bulk``), each under ``<key>:<destination>``."""
    key = idempotency_key or derived_key(
        "send", destination_id, topic, message, run=await asyncio.to_thread(current_run)
    )
    if not isinstance(destination_id, str):
        destinations = list(destination_id)
        service = database.service(log=logger)
        await asyncio.to_thread(
            lambda: service.send_bulk(
                destinations,
                message,
                topic=topic,
                idempotency_key=key,
                serialization_type=database.serialization_type,
            )
        )
        logger.info("Sent message to %d DBOS workflows in one transaction (key %s:<id>)", len(destinations), key)
        return key
    client = database.get_client()
    await asyncio.to_thread(
        client.send, destination_id, message, topic, key, serialization_type=database.serialization_type
    )
    logger.info("Sent message to DBOS workflow %s (topic %s, idempotency key %s)", destination_id, topic, key)
    return key


async def fork(
    database: DBOSSystemDatabase,
    workflow_id: str,
    start_step: int,
    *,
    logger: Any,
    forked_workflow_id: str | None = None,
    application_version: str | None = None,
    queue_name: str | None = None,
    on_unknown_queue: str = "warn",
    on_unknown_version: str = "warn",
) -> str:
    """Fork at most once per call: a retry finds its fork and returns it. A ``queue_name`` or
    ``application_version`` no worker registered is warned about (or refused with ``"fail"``) first."""
    if not isinstance(start_step, int) or start_step < 1:
        raise DBOSOptionsError(f"start_step must be an integer >= 1, got {start_step!r}")
    await asyncio.to_thread(
        database.service(log=logger).check_enqueue_target,
        queue_name,
        application_version,
        on_unknown_queue=on_unknown_queue,
        on_unknown_version=on_unknown_version,
    )
    fork_id = forked_workflow_id or derived_key(
        "fork", workflow_id, start_step, run=await asyncio.to_thread(current_run)
    )
    service = database.service(log=logger)
    made = await asyncio.to_thread(
        service.fork_workflow,
        workflow_id,
        start_step,
        forked_workflow_id=fork_id,
        application_version=application_version,
        queue_name=queue_name,
    )
    logger.info(
        "%s DBOS workflow %s from step %s as %s",
        "Forked" if made else "Already forked",
        workflow_id,
        start_step,
        fork_id,
    )
    await link_workflow(database, fork_id)
    return fork_id


async def enqueue_bulk(
    database: DBOSSystemDatabase,
    queue_name: str,
    workflow_name: str,
    items: Sequence[Any],
    *,
    logger: Any,
    workflow_class_name: str | None = None,
    key: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> list[str]:
    """Enqueue one workflow per item in one transaction; items without an id get ``<derived>-<i>``."""
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
        raise DBOSOptionsError(f"items must be a list, got {type(items).__name__}")
    opts = enqueue_options(database, queue_name, workflow_name, workflow_class_name, options)
    await asyncio.to_thread(check_target(database, opts, logger))  # before anything is written
    run = await asyncio.to_thread(current_run)
    base = derived_workflow_id(
        queue_name, workflow_name, [list(items)], {}, class_name=workflow_class_name, key=key, run=run
    )
    prepared = []
    for i, item in enumerate(items):
        if isinstance(item, Mapping):
            prepared.append({"workflow_id": f"{base}-{i}", **item})
        else:
            args, _ = check_arguments(item, None)
            prepared.append({"args": args, "workflow_id": f"{base}-{i}"})
    ids = await asyncio.to_thread(enqueue_many, database.get_client(), opts, prepared)
    _remember(run.owner_id, database)
    logger.info("Enqueued %s DBOS workflows (%s on %s) in one transaction", len(ids), workflow_name, queue_name)
    return ids


async def cancel_prefix(database: DBOSSystemDatabase, flow_run_id: str, *, logger: Any) -> list[str]:
    """Cancel every active workflow whose id was derived from ``flow_run_id``; return their ids."""
    service = database.service(log=logger)
    rows = await asyncio.to_thread(service.list_workflows_with_prefix, flow_run_prefix(flow_run_id))
    from dbos_orchestrator.status import DBOSWorkflowStatus

    active = [r["workflow_id"] for r in rows if DBOSWorkflowStatus.parse(r["status"]).is_active()]
    await asyncio.to_thread(service.cancel_workflows, active)
    return active
