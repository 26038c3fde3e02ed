"""Retention: delete ended workflows older than a cutoff, in pages (never one unbounded statement).

Each page is one read of at most ``page_size`` ids (ended workflows whose ``completed_at`` is before
the cutoff, oldest first, through dbos' ``workflow_status`` definition) and one
``DBOSClient.delete_workflows`` of those ids (DBOS deletes their inputs, outputs, steps, events and
messages in one short transaction). Only ended statuses are ever selected: DBOS itself deletes
without checking. A retry deletes what is left and counts only what it deleted.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from dbos_orchestrator.exceptions import DBOSOptionsError
from dbos_orchestrator.status import TERMINAL_STATUSES

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from dbos_orchestrator.client import DBOSClient

__all__ = ["DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE", "cutoff_ms", "purge_statement", "purge_workflows"]

DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 10_000
ENDED = tuple(sorted(s.value for s in TERMINAL_STATUSES))


def cutoff_ms(older_than: Any, *, now: datetime | None = None) -> int:
    """The cutoff in epoch ms: ``older_than`` is a date-time (naive: UTC, ISO text accepted), a
    ``timedelta`` or a number of seconds before now. A cutoff in the future is refused."""
    now = now or datetime.now(timezone.utc)
    value = older_than
    if isinstance(value, str) and value.strip().replace(".", "", 1).lstrip("-").isdigit():
        value = float(value)  # seconds, as a template renders them
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise DBOSOptionsError(f"older_than={older_than!r} is not an ISO date-time") from None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise DBOSOptionsError(f"older_than={older_than!r} seconds must be >= 0 (a cutoff in the past)")
        value = timedelta(seconds=value)
    if isinstance(value, timedelta):
        if value < timedelta(0):
            raise DBOSOptionsError(f"older_than={older_than!r} must not be negative (a cutoff in the past)")
        value = now - value
    if not isinstance(value, datetime):
        raise DBOSOptionsError(f"older_than={older_than!r} must be a date-time, a timedelta or seconds")
    value = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if value > now:
        raise DBOSOptionsError(f"older_than={value.isoformat()} is in the future: only ended workflows can be deleted")
    return int(value.timestamp() * 1000)


def _statuses(statuses: Iterable[str] | None) -> list[str]:
    if statuses is None:
        return list(ENDED)
    if isinstance(statuses, str):
        statuses = [statuses]
    wanted = list(dict.fromkeys(str(s).upper() for s in statuses))
    bad = [s for s in wanted if s not in ENDED]
    if bad or not wanted:
        raise DBOSOptionsError(
            f"statuses={list(statuses)!r}: only ended statuses can be deleted ({', '.join(ENDED)}); got {bad or 'none'}"
        )
    return wanted


def purge_statement(
    cutoff: int, statuses: list[str], *, workflow_name: str | None, queue_name: str | None, limit: int
) -> sa.Select[Any]:
    """One page: the ids of at most ``limit`` ended workflows completed before ``cutoff`` (epoch ms)."""
    from dbos._schemas.system_database import SystemSchema

    ws = SystemSchema.workflow_status
    statement = (
        sa.select(ws.c.workflow_uuid)
        .where(ws.c.completed_at.is_not(None), ws.c.completed_at < cutoff, ws.c.status.in_(statuses))
        .order_by(ws.c.completed_at)
        .limit(limit)
    )
    if workflow_name:
        statement = statement.where(ws.c.name == workflow_name)
    if queue_name:
        statement = statement.where(ws.c.queue_name == queue_name)
    return statement


def purge_workflows(
    client: DBOSClient,
    older_than: Any,
    *,
    statuses: Iterable[str] | None = None,
    workflow_name: str | None = None,
    queue_name: str | None = None,
    delete_children: bool = False,
    page_size: int = DEFAULT_PAGE_SIZE,
    max_pages: int | None = None,
    pause_seconds: float = 0.0,
    log: Callable[[str], Any] | None = None,
) -> int:
    """Delete ended workflows completed before ``older_than`` page by page; returns how many were deleted.

    :param older_than: cutoff (see :func:`cutoff_ms`); not in the future.
    :param statuses: ended statuses to delete (default all: SUCCESS, ERROR, CANCELLED, MAX_RECOVERY_ATTEMPTS_EXCEEDED).
    :param workflow_name: only workflows of this name.
    :param queue_name: only workflows that ran on this queue.
    :param delete_children: also delete the workflows they started, recursively (DBOS' rule: whatever
        their status).
    :param page_size: ids per page, 1..:data:`MAX_PAGE_SIZE`.
    :param max_pages: stop after this many pages (None: until nothing is left).
    :param pause_seconds: sleep between pages (gives the workers' statements room on a busy database).
    :param log: gets one line per page.
    """
    cutoff = cutoff_ms(older_than)
    wanted = _statuses(statuses)
    if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise DBOSOptionsError(f"page_size={page_size!r} must be a whole number from 1 to {MAX_PAGE_SIZE}")
    if max_pages is not None and (isinstance(max_pages, bool) or not isinstance(max_pages, int) or max_pages < 1):
        raise DBOSOptionsError(f"max_pages={max_pages!r} must be a whole number >= 1 (or None)")
    statement = purge_statement(cutoff, wanted, workflow_name=workflow_name, queue_name=queue_name, limit=page_size)
    engine = client.system_database_engine
    deleted = pages = 0
    while max_pages is None or pages < max_pages:
        with engine.connect() as conn:
            ids = [str(r[0]) for r in conn.execute(statement).all()]
        if not ids:
            break
        client.delete_workflows(ids, delete_children=delete_children)
        deleted += len(ids)
        pages += 1
        if log is not None:
            log(f"Deleted page {pages}: {len(ids)} DBOS workflow(s), {deleted} so far")
        if len(ids) < page_size:
            break
        if pause_seconds:
            time.sleep(pause_seconds)
    return deleted
