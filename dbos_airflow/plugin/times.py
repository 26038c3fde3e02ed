"""A workflow's times as the DBOS views show them: what the system database really knows.

DBOS writes a workflow's ``created_at``, ``dequeued_at``, ``updated_at`` and ``completed_at`` in
SQL. On Postgres they have milliseconds. On SQLite, DBOS 3.4 in an application on Python < 3.12
writes ``strftime('%s','now') * 1000``: whole seconds, cut down (dbos/_sys_db.py ``_now_ms_sql``,
dbos/_migration.py ``get_sqlite_timestamp_expr``). Its steps' times come from the worker's own
clock, in milliseconds, everywhere.

* :func:`when`: a time to the millisecond; :func:`instant`: the same, or to the second with
  "(to the second)" when that may be all the database keeps;
* :func:`workflow_duration`: created to ended, or, when either is kept to the second only, the
  range the true duration lies in (narrowed by the steps' own times): never a precise-looking
  wrong number such as ``0.000 s`` for a workflow whose steps ran for 248 ms.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from dbos_orchestrator.store.steps import StoredStep

SECOND_MS = 1000
TO_THE_SECOND = "to the second"


def when(ms: int | None) -> str:
    """``2026-12-07 05:12:01.248 UTC``; empty for None."""
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def duration(ms: int | None) -> str:
    """``1.234 s`` under a minute, ``2.5 min`` above; empty for None."""
    if ms is None:
        return ""
    return f"{ms / 1000:.3f} s" if ms < 60_000 else f"{ms / 60_000:.1f} min"


@dataclass(frozen=True)
class Clock:
    """How precise one system database's workflow times may be.

    :param seconds_only: SQLite: a whole second may be all the database keeps (the writer's
        Python decides, and the reader cannot know it: a whole-second value is taken as one).
    """

    seconds_only: bool = False

    @classmethod
    def of_dialect(cls, dialect: str) -> Clock:
        return cls(seconds_only=dialect == "sqlite")

    def coarse(self, ms: int | None) -> bool:
        """Whether ``ms`` may be a time kept to the second only."""
        return self.seconds_only and ms is not None and ms % SECOND_MS == 0

    def last_ms(self, ms: int) -> int:
        """The latest time ``ms`` may stand for (the database cut the milliseconds off)."""
        return ms + SECOND_MS - 1 if self.coarse(ms) else ms


def instant(ms: int | None, clock: Clock) -> str:
    """A workflow time as the database knows it: ``... 05:12:01 UTC (to the second)`` when that
    is all it may keep, else to the millisecond."""
    if ms is None:
        return ""
    if clock.coarse(ms):
        return when(ms)[:-8] + f" UTC ({TO_THE_SECOND})"
    return when(ms)


def workflow_duration(created: int | None, ended: int | None, clock: Clock, steps: Sequence[StoredStep] = ()) -> str:
    """How long a workflow ran, from its creation to its end.

    Both to the millisecond: one number. Either kept to the second: the shortest and longest it
    may have been, the steps' own times (worker clock, milliseconds) narrowing the range (the
    workflow existed before its first step started and ended after its last step ended).
    """
    if created is None or ended is None:
        return ""
    if not (clock.coarse(created) or clock.coarse(ended)):
        return duration(max(ended - created, 0))
    created_last, ended_first, ended_last = clock.last_ms(created), ended, clock.last_ms(ended)
    starts = [s.started_at_ms for s in steps if s.started_at_ms is not None]
    ends = [s.completed_at_ms for s in steps if s.completed_at_ms is not None]
    if starts and created <= min(starts) < created_last:
        created_last = min(starts)
    if ends and ended_first < max(ends) <= ended_last:
        ended_first = max(ends)
    shortest = max(ended_first - created_last, 0)
    longest = max(ended_last - created, shortest)
    return f"{duration(shortest)} to {duration(longest)} (times kept {TO_THE_SECOND})"
