"""Prefect tasks for what a DBOS system database holds besides workflows: queues, schedules,
application versions, retention (async first, ``a``-prefixed, each with a sync twin; nothing
cached). Thin over ``dbos_orchestrator.operations`` (the same code the Airflow operators run):
every field is checked before anything is written, and each is safe to retry (README, "Operations").
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from dbos_orchestrator.operations import queues, retention, schedules, versions
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from prefect_dbos.ids import current_run, derived_key

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from prefect_dbos.database import DBOSSystemDatabase

__all__ = [
    "aapply_schedules",
    "abackfill_schedule",
    "adelete_ended_workflows",
    "adelete_queue",
    "alist_application_versions",
    "alist_queues",
    "apause_schedule",
    "apply_schedules",
    "apromote_application_version",
    "aset_workflow_delay",
    "aregister_queue",
    "aresume_schedule",
    "atrigger_schedule",
    "backfill_schedule",
    "delete_ended_workflows",
    "delete_queue",
    "list_application_versions",
    "list_queues",
    "pause_schedule",
    "promote_application_version",
    "register_queue",
    "resume_schedule",
    "set_workflow_delay",
    "trigger_schedule",
]


# -- queues ---------------------------------------------------------------------------------


@task(name="register-dbos-queue", cache_policy=NO_CACHE)
async def aregister_queue(database: DBOSSystemDatabase, queue_name: str, **settings: Any) -> dict[str, Any]:
    """Create a DBOS queue or update its limits (a retry writes the same row); returns its settings.

    :param queue_name: the queue.
    :param settings: ``global_concurrency``, ``worker_concurrency``, ``partition_concurrency``,
        ``partition_worker_concurrency`` (whole numbers >= 1), ``limiter`` / ``partition_limiter``
        (``{"limit": n, "period": seconds}``), ``polling_interval_sec``, ``application_name``.
    """
    queue = await asyncio.to_thread(queues.register_queue, database.get_client(), queue_name, **settings)
    get_run_logger().info("Registered DBOS queue %s: %s", queue_name, queue)
    return queue


@task(name="register-dbos-queue", cache_policy=NO_CACHE)
def register_queue(database: DBOSSystemDatabase, queue_name: str, **settings: Any) -> dict[str, Any]:
    """Sync twin of :func:`aregister_queue`."""
    queue = queues.register_queue(database.get_client(), queue_name, **settings)
    get_run_logger().info("Registered DBOS queue %s: %s", queue_name, queue)
    return queue


@task(name="list-dbos-queues", cache_policy=NO_CACHE)
async def alist_queues(database: DBOSSystemDatabase) -> list[dict[str, Any]]:
    """Every registered queue with its limits and ``backlog`` (ENQUEUED, DELAYED, PENDING counts)."""
    return await asyncio.to_thread(queues.list_queues, database.get_client())


@task(name="list-dbos-queues", cache_policy=NO_CACHE)
def list_queues(database: DBOSSystemDatabase) -> list[dict[str, Any]]:
    """Sync twin of :func:`alist_queues`."""
    return queues.list_queues(database.get_client())


@task(name="delete-dbos-queue", cache_policy=NO_CACHE)
async def adelete_queue(database: DBOSSystemDatabase, queue_name: str, *, force: bool = False) -> bool:
    """Delete a queue (refused while it holds active workflows unless ``force``); False: already gone.

    :param queue_name: the queue.
    :param force: delete it even with active workflows (they would never run).
    """
    return await asyncio.to_thread(queues.delete_queue, database.get_client(), queue_name, force=force)


@task(name="delete-dbos-queue", cache_policy=NO_CACHE)
def delete_queue(database: DBOSSystemDatabase, queue_name: str, *, force: bool = False) -> bool:
    """Sync twin of :func:`adelete_queue`."""
    return queues.delete_queue(database.get_client(), queue_name, force=force)


# -- schedules ------------------------------------------------------------------------------


def _apply(database: DBOSSystemDatabase, definitions: Sequence[Mapping[str, Any]], prune_prefix: str | None) -> Any:
    done = schedules.apply_schedules(database.get_client(), definitions, prune_prefix=prune_prefix)
    logger = get_run_logger()
    logger.info("Applied %d DBOS schedule(s); deleted %s", len(done["applied"]), done["deleted"] or "none")
    for line in schedules.next_runs(done["schedules"]):
        logger.info("%s", line)
    return done


@task(name="apply-dbos-schedules", cache_policy=NO_CACHE)
async def aapply_schedules(
    database: DBOSSystemDatabase, definitions: Sequence[Mapping[str, Any]], *, prune_prefix: str | None = None
) -> dict[str, Any]:
    """Make DBOS hold these schedules (create, update; with ``prune_prefix`` delete the unlisted ones of that
    prefix); logs each next run. Returns ``{"applied", "deleted", "schedules"}``.

    :param definitions: ``{"schedule_name", "workflow_name", "schedule"}`` dicts (and optional fields).
    :param prune_prefix: the names this flow owns.
    """
    return await asyncio.to_thread(_apply, database, definitions, prune_prefix)


@task(name="apply-dbos-schedules", cache_policy=NO_CACHE)
def apply_schedules(
    database: DBOSSystemDatabase, definitions: Sequence[Mapping[str, Any]], *, prune_prefix: str | None = None
) -> dict[str, Any]:
    """Sync twin of :func:`aapply_schedules`."""
    return _apply(database, definitions, prune_prefix)


@task(name="pause-dbos-schedule", cache_policy=NO_CACHE)
async def apause_schedule(database: DBOSSystemDatabase, schedule_name: str) -> dict[str, Any]:
    """Pause a schedule (idempotent; a missing one fails naming it)."""
    return await asyncio.to_thread(schedules.set_schedule_paused, database.get_client(), schedule_name, paused=True)


@task(name="pause-dbos-schedule", cache_policy=NO_CACHE)
def pause_schedule(database: DBOSSystemDatabase, schedule_name: str) -> dict[str, Any]:
    """Sync twin of :func:`apause_schedule`."""
    return schedules.set_schedule_paused(database.get_client(), schedule_name, paused=True)


@task(name="resume-dbos-schedule", cache_policy=NO_CACHE)
async def aresume_schedule(database: DBOSSystemDatabase, schedule_name: str) -> dict[str, Any]:
    """Resume a paused schedule (idempotent); the result has its ``next_run``."""
    return await asyncio.to_thread(schedules.set_schedule_paused, database.get_client(), schedule_name, paused=False)


@task(name="resume-dbos-schedule", cache_policy=NO_CACHE)
def resume_schedule(database: DBOSSystemDatabase, schedule_name: str) -> dict[str, Any]:
    """Sync twin of :func:`aresume_schedule`."""
    return schedules.set_schedule_paused(database.get_client(), schedule_name, paused=False)


def _trigger(database: DBOSSystemDatabase, schedule_name: str) -> str:
    key = derived_key("trigger", schedule_name, run=current_run())
    return schedules.trigger_schedule(database.get_client(), schedule_name, key=key, allow_pickle=database.allow_pickle)


@task(name="trigger-dbos-schedule", cache_policy=NO_CACHE)
async def atrigger_schedule(database: DBOSSystemDatabase, schedule_name: str) -> str:
    """Run the schedule's workflow now, once per call of the flow run (a retry returns the same workflow id)."""
    return await asyncio.to_thread(_trigger, database, schedule_name)


@task(name="trigger-dbos-schedule", cache_policy=NO_CACHE)
def trigger_schedule(database: DBOSSystemDatabase, schedule_name: str) -> str:
    """Sync twin of :func:`atrigger_schedule`."""
    return _trigger(database, schedule_name)


@task(name="backfill-dbos-schedule", cache_policy=NO_CACHE)
async def abackfill_schedule(database: DBOSSystemDatabase, schedule_name: str, start: Any, end: Any) -> list[str]:
    """Enqueue the runs strictly between ``start`` and ``end`` (not in the future) that did not run yet; their ids."""
    client, allow = database.get_client(), database.allow_pickle
    return await asyncio.to_thread(schedules.backfill_schedule, client, schedule_name, start, end, allow_pickle=allow)


@task(name="backfill-dbos-schedule", cache_policy=NO_CACHE)
def backfill_schedule(database: DBOSSystemDatabase, schedule_name: str, start: Any, end: Any) -> list[str]:
    """Sync twin of :func:`abackfill_schedule`."""
    client, allow = database.get_client(), database.allow_pickle
    return schedules.backfill_schedule(client, schedule_name, start, end, allow_pickle=allow)


# -- application versions ---------------------------------------------------------------------


@task(name="list-dbos-application-versions", cache_policy=NO_CACHE)
async def alist_application_versions(database: DBOSSystemDatabase) -> list[dict[str, Any]]:
    """The registered versions, newest (latest) first."""
    return await asyncio.to_thread(versions.list_versions, database.get_client())


@task(name="list-dbos-application-versions", cache_policy=NO_CACHE)
def list_application_versions(database: DBOSSystemDatabase) -> list[dict[str, Any]]:
    """Sync twin of :func:`alist_application_versions`."""
    return versions.list_versions(database.get_client())


@task(name="promote-dbos-application-version", cache_policy=NO_CACHE)
async def apromote_application_version(database: DBOSSystemDatabase, version_name: str) -> dict[str, Any]:
    """Make a version the latest; returns ``{"latest", "previous"}`` (promote ``previous`` to roll back)."""
    return await asyncio.to_thread(versions.promote_version, database.get_client(), version_name)


@task(name="promote-dbos-application-version", cache_policy=NO_CACHE)
def promote_application_version(database: DBOSSystemDatabase, version_name: str) -> dict[str, Any]:
    """Sync twin of :func:`apromote_application_version`."""
    return versions.promote_version(database.get_client(), version_name)


# -- retention ------------------------------------------------------------------------------


def _purge(database: DBOSSystemDatabase, older_than: Any, filters: dict[str, Any]) -> int:
    logger = get_run_logger()
    deleted = retention.purge_workflows(
        database.get_client(), older_than, log=lambda line: logger.info("%s", line), **filters
    )
    logger.info("Deleted %d ended DBOS workflow(s) older than %s", deleted, older_than)
    return deleted


@task(name="delete-ended-dbos-workflows", cache_policy=NO_CACHE)
async def adelete_ended_workflows(database: DBOSSystemDatabase, older_than: Any, **filters: Any) -> int:
    """Delete ended workflows that ended before ``older_than`` (a date-time, timedelta or seconds ago; never
    in the future), in pages; returns how many. Active ones are never selected.

    :param filters: ``statuses``, ``workflow_name``, ``queue_name``, ``delete_children``, ``page_size``, ``max_pages``.
    """
    return await asyncio.to_thread(_purge, database, older_than, filters)


@task(name="delete-ended-dbos-workflows", cache_policy=NO_CACHE)
def delete_ended_workflows(database: DBOSSystemDatabase, older_than: Any, **filters: Any) -> int:
    """Sync twin of :func:`adelete_ended_workflows`."""
    return _purge(database, older_than, filters)


# -- delays ---------------------------------------------------------------------------------


@task(name="set-dbos-workflow-delay", cache_policy=NO_CACHE)
async def aset_workflow_delay(database: DBOSSystemDatabase, workflow_id: str, delay_seconds: float) -> bool:
    """Move a DELAYED workflow's start to ``delay_seconds`` from now (0: at once); False when it is no
    longer DELAYED (nothing changed, as on a retry)."""
    service = database.service(log=get_run_logger())
    return await asyncio.to_thread(service.set_workflow_delay, workflow_id, delay_seconds)


@task(name="set-dbos-workflow-delay", cache_policy=NO_CACHE)
def set_workflow_delay(database: DBOSSystemDatabase, workflow_id: str, delay_seconds: float) -> bool:
    """Sync twin of :func:`aset_workflow_delay`."""
    return database.service(log=get_run_logger()).set_workflow_delay(workflow_id, delay_seconds)
