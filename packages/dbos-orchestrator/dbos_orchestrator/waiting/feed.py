"""Completion feeds: every DBOS workflow that reaches a terminal status, in order, for watchers.

A :class:`CompletionFeed` is one watcher's subscription (an event trigger behind an Airflow
``AssetWatcher``). The feeds of one connection are served by that connection's
:class:`~dbos_orchestrator.waiting.waiter.DBOSWaiter`: **one** statement per feed tick reads the
completions after the furthest-behind feed's position, whatever the number of feeds, and the
waiter hands each feed the rows that match its :class:`CompletionFilter`.

Position and exactly-once
-------------------------
Completions are ordered by ``(completed_at, workflow_id)`` (``completed_at`` is the epoch-ms
column DBOS sets when a workflow ends; a resumed workflow gets a new one when it ends again,
so each completion is its own edge). A feed's :class:`FeedState` is that position plus the
completions it delivered within :data:`LATE_COMMIT_MS` before it: DBOS stamps ``completed_at``
before its transaction commits, so a row may become visible after a later-stamped one. Each
statement therefore also re-reads that short window and delivers what it had not seen
(``recent``), instead of losing it. The state is plain JSON so a trigger can persist it.

No Airflow import; nothing decoded (statuses, names and the JSON attributes only).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from dbos_orchestrator.status import TERMINAL_STATUSES, DBOSWorkflowStatus

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["Completion", "CompletionFeed", "CompletionFilter", "FeedPage", "FeedState", "LATE_COMMIT_MS", "PAGE_SIZE"]

LATE_COMMIT_MS = 5_000  # how late (after a later-stamped one) a completion may still become visible
PAGE_SIZE = 500  # rows per statement; a full page is followed by the next at once
MAX_BACKLOG_PAGES = 4  # a feed whose consumer lags this many pages is not served until it catches up
STATE_VERSION = 1

Position = tuple[int, str]


@dataclass(frozen=True)
class Completion:
    """One workflow that reached a terminal status (metadata only)."""

    workflow_id: str
    status: DBOSWorkflowStatus
    name: str | None
    class_name: str | None
    queue_name: str | None
    app_version: str | None
    created_at: int | None
    completed_at: int
    # What the enqueuer recorded (the Prefect runs behind it, the Airflow owner): not part of its identity.
    attributes: Mapping[str, Any] | None = field(default=None, compare=False)

    @property
    def position(self) -> Position:
        return (self.completed_at, self.workflow_id)


@dataclass(frozen=True)
class CompletionFilter:
    """Which completions a watcher wants; ``None`` accepts anything.

    ``names`` match the workflow's registered name; with ``class_name`` the class too (a class
    workflow is also matched by ``Class.method``).
    """

    names: frozenset[str] | None = None
    class_name: str | None = None
    queue_names: frozenset[str] | None = None
    statuses: frozenset[DBOSWorkflowStatus] = TERMINAL_STATUSES
    app_version: str | None = None

    def matches(self, c: Completion) -> bool:
        if c.status not in self.statuses:
            return False
        if self.class_name is not None and c.class_name != self.class_name:
            return False
        if self.names is not None:
            qualified = f"{c.class_name}.{c.name}" if c.class_name else c.name
            if c.name not in self.names and qualified not in self.names:
                return False
        if self.queue_names is not None and c.queue_name not in self.queue_names:
            return False
        return self.app_version is None or c.app_version == self.app_version


@dataclass
class FeedState:
    """Where a feed is: JSON-able, persisted by the trigger once what it covers was delivered.

    :ivar position: ``(completed_at, workflow_id)`` of the last row scanned.
    :ivar recent: ``workflow_id -> completed_at`` of rows delivered (or scanned) within
        :data:`LATE_COMMIT_MS` before ``position``: not delivered again when re-read.
    :ivar floor: completions stamped before this (epoch ms) are never delivered (a fresh
        watcher starts "now", not at the beginning of history).
    """

    position: Position
    recent: dict[str, int] = field(default_factory=dict)
    floor: int = 0

    @classmethod
    def starting_at(cls, epoch_ms: int) -> FeedState:
        return cls(position=(epoch_ms, ""), floor=epoch_ms)

    def to_json(self) -> dict[str, Any]:
        return {
            "v": STATE_VERSION,
            "completed_at": self.position[0],
            "workflow_id": self.position[1],
            "recent": [[wid, at] for wid, at in sorted(self.recent.items(), key=lambda kv: (kv[1], kv[0]))],
            "floor": self.floor,
        }

    @classmethod
    def from_json(cls, data: Any) -> FeedState | None:
        """The state persisted by :meth:`to_json`; None for anything else (start afresh)."""
        if not isinstance(data, dict) or data.get("v") != STATE_VERSION:
            return None
        try:
            return cls(
                position=(int(data["completed_at"]), str(data["workflow_id"])),
                recent={str(w): int(a) for w, a in data.get("recent", [])},
                floor=int(data.get("floor", 0)),
            )
        except (KeyError, TypeError, ValueError):
            return None

    def copy(self) -> FeedState:
        return FeedState(self.position, dict(self.recent), self.floor)


@dataclass(frozen=True)
class FeedPage:
    """What a feed hands its consumer: matching completions in order, and the state after them."""

    completions: list[Completion]
    state: FeedState


class CompletionFeed:
    """One watcher's subscription; created by :meth:`DBOSWaiter.completion_feed`.

    Served by the waiter's thread: :meth:`_offer` runs there, :meth:`next_page` on the
    consumer's event loop.
    """

    def __init__(self, flt: CompletionFilter, state: FeedState) -> None:
        self.filter = flt
        self.state = state.copy()  # the waiter thread's copy
        self.loop = asyncio.get_running_loop()
        self._pages: asyncio.Queue[FeedPage] = asyncio.Queue()
        self._backlog = 0
        self._backlog_lock = threading.Lock()
        self.closed = False

    # -- consumer side -------------------------------------------------------------------

    async def next_page(self, timeout: float | None = None) -> FeedPage | None:
        """The next page of matching completions; None if ``timeout`` seconds pass first."""
        try:
            page = await asyncio.wait_for(self._pages.get(), timeout)
        except asyncio.TimeoutError:
            return None
        with self._backlog_lock:
            self._backlog -= 1
        return page

    # -- waiter thread -------------------------------------------------------------------

    @property
    def paused(self) -> bool:
        with self._backlog_lock:
            return self._backlog >= MAX_BACKLOG_PAGES

    def _offer(self, rows: list[Completion]) -> None:
        """Take the rows of one statement (sorted by position); queue what is new and matches."""
        state = self.state
        cursor = state.position
        window_start = cursor[0] - LATE_COMMIT_MS
        delivered: list[Completion] = []
        for c in rows:
            new = c.position > cursor
            late = not new and c.completed_at >= window_start and state.recent.get(c.workflow_id) != c.completed_at
            if not (new or late):
                continue
            state.recent[c.workflow_id] = c.completed_at
            if c.completed_at >= state.floor and self.filter.matches(c):
                delivered.append(c)
            if new:
                state.position = c.position
        keep_from = state.position[0] - LATE_COMMIT_MS
        state.recent = {w: at for w, at in state.recent.items() if at >= keep_from}
        if delivered:
            page = FeedPage(delivered, state.copy())
            with self._backlog_lock:
                self._backlog += 1
            try:
                self.loop.call_soon_threadsafe(self._pages.put_nowait, page)
            except RuntimeError:  # the consumer's loop is gone
                self.closed = True


def feed_statement(feeds: Iterable[CompletionFeed], *, postgres: bool, page_size: int = PAGE_SIZE) -> sa.Select[Any]:
    """One statement for every feed: rows after the furthest-behind position, and the late window.

    Late rows (stamped within :data:`LATE_COMMIT_MS` before that position) that every feed has
    already seen are excluded in SQL, so a quiet system re-reads nothing.
    """
    from dbos._schemas.system_database import SystemSchema

    ws = SystemSchema.workflow_status
    states = [f.state for f in feeds]
    at, wid = min(s.position for s in states)
    seen_by_all = set.intersection(*({w for w, a in s.recent.items() if a >= at - LATE_COMMIT_MS} for s in states))
    after = sa.or_(ws.c.completed_at > at, sa.and_(ws.c.completed_at == at, ws.c.workflow_uuid > wid))
    late = sa.and_(ws.c.completed_at >= at - LATE_COMMIT_MS, sa.not_(after))
    if seen_by_all:
        if postgres:
            late = sa.and_(
                late, ws.c.workflow_uuid != sa.func.all(sa.bindparam("feed_seen", sorted(seen_by_all), ARRAY(sa.Text)))
            )
        else:
            late = sa.and_(late, ws.c.workflow_uuid.not_in(sorted(seen_by_all)))
    return (
        sa.select(
            ws.c.workflow_uuid,
            ws.c.status,
            ws.c.name,
            ws.c.class_name,
            ws.c.queue_name,
            ws.c.application_version,
            ws.c.created_at,
            ws.c.completed_at,
            ws.c.attributes,
        )
        .where(
            ws.c.completed_at.is_not(None),
            ws.c.status.in_(sorted(s.value for s in TERMINAL_STATUSES)),
            sa.or_(after, late),
        )
        .order_by(ws.c.completed_at, ws.c.workflow_uuid)
        .limit(page_size)
    )


def rows_to_completions(rows: Iterable[Any]) -> list[Completion]:
    out = []
    for wid, status, name, class_name, queue, version, created, completed, attributes in rows:
        out.append(
            Completion(
                workflow_id=wid,
                status=DBOSWorkflowStatus.parse(status),
                name=name,
                class_name=class_name,
                queue_name=queue,
                app_version=version,
                created_at=None if created is None else int(created),
                completed_at=int(completed),
                attributes=attributes if isinstance(attributes, Mapping) else None,
            )
        )
    return out


def now_ms() -> int:
    return int(time.time() * 1000)
