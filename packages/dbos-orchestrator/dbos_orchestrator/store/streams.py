"""Reads of a workflow's streams (``DBOS.write_stream`` / ``close_stream``) through the safe codec.

A DBOS stream is the rows of dbos' ``streams`` table for one ``(workflow, key)``, at offsets
0, 1, 2, ... in write order; ``close_stream`` appends dbos' close marker (the portable JSON
string ``"__DBOS_STREAM_CLOSED__"``), after which nothing is read. The rows are read through
dbos' own table definitions (``SystemSchema.streams``), a page of consecutive offsets at a time
together with the workflow's status in **one** statement (the same snapshot, as dbos' own reader
does), and every value goes through :func:`dbos_orchestrator.store.codec.decode_value`: a pickled
value is refused unless the front end opted in (``allow_pickle``). Nothing here writes or waits;
the waits are :mod:`dbos_orchestrator.waiting.streams`. No Airflow import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from dbos_orchestrator.exceptions import DBOSOptionsError
from dbos_orchestrator.status import DBOSWorkflowStatus
from dbos_orchestrator.store.codec import PORTABLE, decode_value, display_value

if TYPE_CHECKING:
    from dbos_orchestrator.client import DBOSClient

__all__ = [
    "CLOSED_TEXT",
    "PAGE_SIZE",
    "StreamPage",
    "StreamReads",
    "StreamSummary",
    "check_stream_args",
    "is_closed_row",
    "stream_page_statement",
]

PAGE_SIZE = 100  # values per read (dbos' own reader reads 100 per round trip too)
# close_stream writes the string "__DBOS_STREAM_CLOSED__" as portable JSON; dbos' reader stops at it
# (dbos/_sys_db.py). Compared as stored text: a pickled row is never decoded to look for it.
CLOSED_TEXT = '"__DBOS_STREAM_CLOSED__"'


def check_stream_args(workflow_id: Any, key: Any, offset: Any) -> int:
    """Refuse bad stream arguments at once, naming the field; returns the offset as an int."""
    if not isinstance(workflow_id, str) or not workflow_id:
        raise DBOSOptionsError(f"workflow_id must be a non-empty string, got {workflow_id!r}")
    if not isinstance(key, str) or not key:
        raise DBOSOptionsError(f"key (the stream key) must be a non-empty string, got {key!r}")
    if isinstance(offset, bool) or not isinstance(offset, (int, str)):
        raise DBOSOptionsError(f"offset must be a whole number >= 0, got {offset!r}")
    try:
        number = int(offset)
    except ValueError:
        raise DBOSOptionsError(f"offset must be a whole number >= 0, got {offset!r}") from None
    if number < 0:
        raise DBOSOptionsError(f"offset must be >= 0 (the first value is offset 0), got {number}")
    return number


def is_closed_row(text: str | None, serialization: str | None) -> bool:
    """Whether a stored row is dbos' close marker (always written as portable JSON)."""
    return serialization == PORTABLE and text == CLOSED_TEXT


@dataclass(frozen=True)
class StreamPage:
    """Consecutive values of one stream from ``offset`` on, and the workflow's status when read.

    :param status: None when the workflow does not exist.
    :param values: the decoded values at ``offset``, ``offset + 1``, ... (the close marker excluded).
    :param closed: the page ended at the stream's close marker.
    """

    workflow_id: str
    key: str
    offset: int
    status: DBOSWorkflowStatus | None
    values: list[Any] = field(default_factory=list)
    closed: bool = False

    @property
    def next_offset(self) -> int:
        """The offset to read from next (after the close marker, nothing more is ever read)."""
        return self.offset + len(self.values) + (1 if self.closed else 0)

    @property
    def found(self) -> bool:
        return self.status is not None

    @property
    def ended(self) -> bool:
        """Nothing more will come: closed, or the workflow is missing or no longer active.

        Only true of a page that found nothing more after the last value (see
        :meth:`StreamReads.stream_page`: a page is full, or runs up to the first empty offset).
        """
        return self.closed or self.status is None or not self.status.is_active()


def stream_page_statement(workflow_id: str, key: str, offset: int, limit: int) -> sa.Select[Any]:
    """``(status, value, serialization, offset)``: the workflow's status joined with its stream
    rows in ``[offset, offset + limit)``, in offset order; one row with NULLs when none is there,
    no row when the workflow does not exist (dbos' ``read_stream_values`` reads the same way)."""
    from dbos._schemas.system_database import SystemSchema

    ws, st = SystemSchema.workflow_status, SystemSchema.streams
    join = ws.outerjoin(
        st,
        sa.and_(
            st.c.workflow_uuid == ws.c.workflow_uuid,
            st.c.key == key,
            st.c.offset >= offset,
            st.c.offset < offset + limit,
        ),
    )
    return (
        sa.select(ws.c.status, st.c.value, st.c.serialization, st.c.offset)
        .select_from(join)
        .where(ws.c.workflow_uuid == workflow_id)
        .order_by(st.c.offset)
    )


@dataclass(frozen=True)
class StreamSummary:
    """One stream key of a workflow, for views: how many values, whether it is closed."""

    key: str
    count: int  # values, the close marker excluded
    closed: bool


class StreamReads:
    """Stream reads of :class:`~dbos_orchestrator.store.values.ValueReader` (mixed in there).

    Needs ``self.client``, ``self.allow_pickle`` and ``self.pickle_hint``.
    """

    client: DBOSClient
    allow_pickle: bool
    pickle_hint: str

    def _stream_rows(self, statement: sa.Executable) -> list[tuple[Any, ...]]:
        with self.client.system_database_engine.connect() as conn:
            return [tuple(row) for row in conn.execute(statement)]

    def stream_page(self, workflow_id: str, key: str, offset: int = 0, *, limit: int = PAGE_SIZE) -> StreamPage:
        """Up to ``limit`` values from ``offset`` (stopping at the first offset not written yet or
        at the close marker), decoded or refused, and the workflow's status in the same statement.

        :raises DBOSUnsafeValueError: a value is pickled and pickles are not allowed (naming the
            workflow, the stream key, the offset and the tag).
        """
        offset = check_stream_args(workflow_id, key, offset)
        rows = self._stream_rows(stream_page_statement(workflow_id, key, offset, limit))
        if not rows:
            return StreamPage(workflow_id, key, offset, None)
        status = DBOSWorkflowStatus.parse(rows[0][0]) if rows[0][0] is not None else None
        values: list[Any] = []
        closed = False
        for _, text, tag, at in rows:
            if at is None or at != offset + len(values):
                break
            if is_closed_row(text, tag):
                closed = True
                break
            what = f"stream {key!r} value at offset {at}"
            values.append(
                decode_value(
                    text, tag, allow_pickle=self.allow_pickle, workflow_id=workflow_id, what=what, hint=self.pickle_hint
                )
            )
        return StreamPage(workflow_id, key, offset, status, values, closed)

    def stream_summaries(self, workflow_id: str) -> list[StreamSummary]:
        """Every stream key the workflow wrote, by key: its number of values and whether it is closed."""
        from dbos._schemas.system_database import SystemSchema

        st = SystemSchema.streams
        closed = sa.and_(st.c.serialization == PORTABLE, st.c.value == CLOSED_TEXT)
        rows = self._stream_rows(
            sa.select(
                st.c.key,
                sa.func.count().filter(sa.not_(closed)),
                sa.func.count().filter(closed),
            )
            .where(st.c.workflow_uuid == workflow_id)
            .group_by(st.c.key)
            .order_by(st.c.key)
        )
        return [StreamSummary(str(k), int(n), int(c) > 0) for k, n, c in rows]

    def stream_values_for_display(
        self, workflow_id: str, key: str, *, last: int = 20, before: int | None = None
    ) -> list[tuple[int, Any]]:
        """``(offset, value)`` of up to ``last`` values before offset ``before`` (None: the end),
        newest last; a refused or undecodable value is an :class:`~dbos_orchestrator.store.codec.Undecoded`."""
        from dbos._schemas.system_database import SystemSchema

        st = SystemSchema.streams
        query = sa.select(st.c.offset, st.c.value, st.c.serialization).where(
            st.c.workflow_uuid == workflow_id,
            st.c.key == key,
            sa.not_(sa.and_(st.c.serialization == PORTABLE, st.c.value == CLOSED_TEXT)),
        )
        if before is not None:
            query = query.where(st.c.offset < before)
        rows = self._stream_rows(query.order_by(st.c.offset.desc()).limit(max(1, last)))
        return [
            (
                int(at),
                display_value(
                    text, tag, allow_pickle=self.allow_pickle, workflow_id=workflow_id, what=f"stream {key!r} value"
                ),
            )
            for at, text, tag in reversed(rows)
        ]
