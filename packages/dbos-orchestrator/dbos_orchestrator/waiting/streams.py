"""Waits for a workflow's stream to grow: the shared waiter's stream waits.

A deferred stream reader (a trigger) asks "is there a value at offset N of stream K of workflow
W yet, or has W stopped?" and then reads the page itself (:meth:`StreamReads.stream_page
<dbos_orchestrator.store.streams.StreamReads.stream_page>`). :class:`StreamWaits` answers that for
every pending stream wait of the process (docs/streams.md, "How the wait works"):

* **one** statement for all of them (status of every watched workflow, and which watched
  ``(workflow, key, offset)`` rows exist: array parameters joined with ``unnest`` on Postgres),
  run by the shared waiter's polling thread (:mod:`dbos_orchestrator.waiting.waiter`);
* on Postgres that thread LISTENs on DBOS' ``dbos_streams_channel`` (payload ``<workflow>::<key>``,
  sent by a writer whose application uses LISTEN/NOTIFY, dbos' default): a write to a watched
  stream makes it probe at once; otherwise it probes every :data:`STREAM_POLL_SECONDS` (a workflow's
  end sends no notification; a writer may not notify), and at the next tick after a new wait was
  added (a notification that came between the caller's read and its wait is never lost). On SQLite
  it probes every tick. So an idle stream wait costs nothing per stream: 100 waits, 2 statements/s.

In a worker, a front end polls pages itself (a sensor's pokes).
Reads only, through dbos' own table definitions; nothing is decoded here. No Airflow import.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from dbos_orchestrator.status import DBOSWorkflowStatus
from dbos_orchestrator.waiting.pending import PendingWait

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

__all__ = [
    "STREAMS_CHANNEL",
    "STREAM_POLL_SECONDS",
    "StreamObservation",
    "StreamWaits",
    "stream_probe_statement",
]

STREAMS_CHANNEL = "dbos_streams_channel"
STREAM_POLL_SECONDS = 0.5  # with LISTEN: the fallback probe (workflow ended, writer without NOTIFY)


@dataclass(frozen=True)
class StreamObservation:
    """What the probe saw: the workflow's status (None: no such workflow), and whether the awaited offset exists."""

    status: DBOSWorkflowStatus | None
    value_present: bool


def stream_probe_statement(waits: list[tuple[str, str, int]], *, postgres: bool) -> sa.Executable:
    """``(workflow_uuid, status, NULL, NULL)`` for every watched workflow and ``(workflow_uuid, NULL,
    key, offset)`` for every watched ``(workflow, key, offset)`` that has a row, in one statement."""
    from dbos._schemas.system_database import SystemSchema

    ws, st = SystemSchema.workflow_status, SystemSchema.streams
    ids = sorted({w for w, _, _ in waits})
    null_text, null_int = sa.literal(None, sa.Text), sa.literal(None, sa.Integer)
    if not postgres:
        statuses = sa.select(ws.c.workflow_uuid, ws.c.status, null_text.label("key"), null_int.label("at")).where(
            ws.c.workflow_uuid.in_(ids)
        )
        present = sa.select(st.c.workflow_uuid, null_text, st.c.key, st.c.offset).where(
            sa.tuple_(st.c.workflow_uuid, st.c.key, st.c.offset).in_(waits)
        )
        return sa.union_all(statuses, present)
    text_array = ARRAY(sa.Text)
    wanted = sa.func.unnest(sa.bindparam("stream_ids", ids, type_=text_array)).table_valued("id").render_derived("w")
    statuses = sa.select(ws.c.workflow_uuid, ws.c.status, null_text.label("key"), null_int.label("at")).join_from(
        wanted, ws, ws.c.workflow_uuid == wanted.c.id
    )
    triples = (
        sa.func.unnest(
            sa.bindparam("stream_wait_ids", [w for w, _, _ in waits], type_=text_array),
            sa.bindparam("stream_wait_keys", [k for _, k, _ in waits], type_=text_array),
            sa.bindparam("stream_wait_offsets", [o for _, _, o in waits], type_=ARRAY(sa.Integer)),
        )
        .table_valued("id", "key", "at")
        .render_derived("s")
    )
    present = sa.select(st.c.workflow_uuid, null_text, st.c.key, st.c.offset).join_from(
        triples,
        st,
        sa.and_(st.c.workflow_uuid == triples.c.id, st.c.key == triples.c.key, st.c.offset == triples.c.at),
    )
    return sa.union_all(statuses, present)


class _StreamWait(PendingWait[StreamObservation]):
    __slots__ = ("workflow_id", "key", "offset")

    def __init__(self, workflow_id: str, key: str, offset: int) -> None:
        super().__init__()
        self.workflow_id, self.key, self.offset = workflow_id, key, offset

    @property
    def payload(self) -> str:
        return f"{self.workflow_id}::{self.key}"

    def timeout_message(self) -> str:
        return f"timed out waiting for stream {self.key!r} of DBOS workflow {self.workflow_id}"


def _settle(batch: list[tuple[_StreamWait, StreamObservation]]) -> None:
    for wait, obs in batch:
        if not wait.future.done():
            wait.future.set_result(obs)


class StreamWaits:
    """The pending stream waits of one shared waiter (its polling thread calls :meth:`probe`)."""

    def __init__(self, wake: Callable[[], None] = lambda: None) -> None:
        self._wake = wake
        self._waits: set[_StreamWait] = set()
        self._lock = threading.Lock()
        self._last_probe = 0.0
        self._due = False  # a new wait or a notification: probe at the next tick
        self.probes = 0  # statements run (read by tests and benchmarks)

    def __len__(self) -> int:
        with self._lock:
            return len(self._waits)

    async def observe(
        self, workflow_id: str, key: str, offset: int, *, deadline: float | None = None
    ) -> StreamObservation:
        """Wait until stream ``key`` of the workflow has a value at ``offset``, or the workflow is
        missing or no longer active; :class:`DBOSWaitTimeoutError` at ``deadline`` (wall clock)."""
        wait = _StreamWait(workflow_id, key, offset)
        with self._lock:
            self._waits.add(wait)
            self._due = True
        self._wake()
        return await wait.until(deadline, self._waits, self._lock)

    def watched(self) -> set[str]:
        """The notification payloads (``<workflow>::<key>``) that should wake the polling thread."""
        with self._lock:
            return {w.payload for w in self._waits if not w.resolved}

    def wakes(self, channel: str, payload: str, events: set[str]) -> bool:
        """Whether a NOTIFY should end the polling thread's pause: an awaited event was published
        (``events``), or a watched stream was written (then the stream waits are probed)."""
        if channel != STREAMS_CHANNEL:
            return payload in events
        if payload in self.watched():
            self._due = True
            return True
        return False

    def probe(self, conn: sa.Connection, *, listening: bool) -> None:
        """One statement for every pending stream wait, when due (see the module doc)."""
        now = time.monotonic()
        if listening and not self._due and now - self._last_probe < STREAM_POLL_SECONDS:
            return
        with self._lock:
            waits = [w for w in self._waits if not w.resolved]
            self._due = False
        if not waits:
            return
        self._last_probe = now
        postgres = conn.dialect.name == "postgresql"
        triples = sorted({(w.workflow_id, w.key, w.offset) for w in waits})
        rows = conn.execute(stream_probe_statement(triples, postgres=postgres)).all()
        self.probes += 1
        statuses: dict[str, str] = {}
        present: set[tuple[str, str, int]] = set()
        for wid, status, key, at in rows:
            if key is None:
                statuses[str(wid)] = str(status)
            else:
                present.add((str(wid), str(key), int(at)))
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_StreamWait, StreamObservation]]] = {}
        for w in waits:
            text = statuses.get(w.workflow_id)
            status = None if text is None else DBOSWorkflowStatus.parse(text)
            has = (w.workflow_id, w.key, w.offset) in present
            if has or status is None or not status.is_active():
                w.resolved = True
                by_loop.setdefault(w.loop, []).append((w, StreamObservation(status, has)))
        for loop, batch in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, batch)
            except RuntimeError:  # that waiting loop is gone
                pass
