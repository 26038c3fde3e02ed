"""A sensor that follows a DBOS workflow's stream into the task log (poke, reschedule, deferrable)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import PokeReturnValue
from dbos_orchestrator.exceptions import DBOSOptionsError
from dbos_orchestrator.messages import stream_ended_message
from dbos_orchestrator.status import SUCCESS_STATUSES, DBOSWorkflowStatus
from dbos_orchestrator.store.streams import PAGE_SIZE, check_stream_args

from dbos_airflow.contract.events import TriggerEventKind
from dbos_airflow.contract.streams import StreamCheckpoint
from dbos_airflow.exceptions import DBOSWorkflowFailedError
from dbos_airflow.operators.base import dbos_template_fields
from dbos_airflow.operators.streams import StreamLogger
from dbos_airflow.sensors.dbos import _DBOSSensor
from dbos_airflow.triggers.streams import DBOSStreamTrigger

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context
    from dbos_orchestrator.store.streams import StreamPage

RETURN_VALUES = ("all", "last", "none")
MAX_RETURN_VALUES = 10_000  # return_values="all": at most this many values ...
MAX_RETURN_CHARS = 1_000_000  # ... and this much JSON, else the task fails saying so


class DBOSStreamSensor(_DBOSSensor):
    """
    Follow stream ``key`` of a DBOS workflow (``DBOS.write_stream``) into the task log, one line per
    value as it arrives (a value longer than 1,000 characters is cut, with a marker); succeed when
    the stream is closed (``DBOS.close_stream``) or the workflow ended, returning its values.

    A workflow that ended ERROR, CANCELLED or MAX_RECOVERY_ATTEMPTS_EXCEEDED fails the task (after
    its values were logged) with its own error, as every DBOS task does. A workflow that does not
    exist fails at once; one that ends without ever writing ``key`` fails naming the key. Values
    are read through the connection's safe reader: a pickled value fails the task unless the
    connection has ``allow_pickle``. A retry (or reschedule, or re-created trigger) continues from
    the offset already logged: see docs/streams.md for what is logged exactly once.

    :param workflow_id: the workflow (templated).
    :param key: the stream key (templated).
    :param offset: the first offset to read (templated; default 0).
    :param return_values: ``"all"`` (every value read from ``offset``, at most 10,000 values and
        1,000,000 characters of JSON, else the task fails saying so), ``"last"`` (the last value, None
        when there is none) or ``"none"``.
    :param dbos_conn_id: the ``dbos`` connection.
    :param deferrable: wait in the triggerer instead of a worker slot.
    """

    template_fields: Sequence[str] = dbos_template_fields("workflow_id", "key", "offset")
    accepted_event_kinds: ClassVar[frozenset[TriggerEventKind]] = frozenset({TriggerEventKind.STREAM_ENDED})
    trigger_class = DBOSStreamTrigger

    def __init__(self, *, key: str, offset: int = 0, return_values: str = "all", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if return_values not in RETURN_VALUES:
            raise DBOSOptionsError(f"return_values must be one of {', '.join(RETURN_VALUES)}; got {return_values!r}")
        self.key = key
        self.offset = offset
        self.return_values = return_values
        self._next: int | None = None
        self._checkpoint: StreamCheckpoint | None = None

    def _start(self, context: Context) -> StreamCheckpoint:
        """Check the arguments (at once) and continue from the offset an earlier try logged up to."""
        if self._checkpoint is None:
            start = check_stream_args(self.workflow_id, self.key, self.offset)
            self.offset = start
            self._checkpoint = StreamCheckpoint.for_task(context["ti"], self.workflow_id, self.key, start)
            self._next = self._checkpoint.load(start)
            if self._next > start:
                self.log.info(
                    "Continuing DBOS stream %r from offset %d (logged by an earlier try)", self.key, self._next
                )
        return self._checkpoint

    def trigger_arguments(self) -> dict[str, Any]:
        checkpoint = self._checkpoint
        assert checkpoint is not None and self._next is not None  # _start ran in poke (check_in_worker)
        return {
            "key": self.key,
            "offset": self._next,
            "checkpoint": checkpoint.name,
            "checkpoint_identity": checkpoint.identity,
        }

    def poke(self, context: Context) -> PokeReturnValue | bool:
        checkpoint = self._start(context)
        assert self._next is not None
        before = self._next
        stream = StreamLogger(self.log, self.workflow_id, self.key, self._next)
        try:
            page = stream.poll(self.hook.value_reader())
        finally:  # also when interrupted (execution_timeout): what was logged is saved
            self._next = stream.offset
            if self._next != before:
                checkpoint.save(self._next)
        assert page is not None  # this logger is never handed over
        logged = self._next - before
        if page.status is None:
            self.hook.require_workflow(self.workflow_id)  # fails naming the workflow and where it looked
        if page.closed or (not page.values and page.ended):
            read = self._next - self.offset - (1 if page.closed else 0)
            self.log.info(stream_ended_message(self.workflow_id, self.key, read, page.closed, page.status))
            return PokeReturnValue(True, self._finish(page.status, self._next, page.closed))
        if not logged:
            self.log.info("DBOS stream %r of workflow %s: no new value (%s)", self.key, self.workflow_id, page.status)
        return False

    def complete(self, context: Context, event: dict[str, Any]) -> Any:
        self._start(context)
        return self._finish(DBOSWorkflowStatus.parse(event["status"]), int(event["offset"]), bool(event["closed"]))

    def _finish(self, status: DBOSWorkflowStatus | None, next_offset: int, closed: bool) -> Any:
        """The outcome rule for an ended workflow, then the values to return; forgets the checkpoint."""
        if status is not None and not status.is_active() and status not in SUCCESS_STATUSES:
            self.hook.service().result(self.workflow_id, log=self.log.info)  # raises with the workflow's own error
        end = next_offset - 1 if closed else next_offset  # the close marker is no value
        if end == 0 and not closed:
            raise DBOSWorkflowFailedError(
                f"DBOS workflow ended {status.value if status else 'missing'} without writing stream "
                f"{self.key!r} (workflow {self.workflow_id})"
            )
        result = self._values(end)
        if self._checkpoint is not None:
            self._checkpoint.clear()
        return result

    def _values(self, end: int) -> Any:
        if self.return_values == "none":
            return None
        if self.return_values == "last":
            return None if end <= self.offset else self._read(end - 1, end)[-1]
        if end - self.offset > MAX_RETURN_VALUES:
            raise DBOSWorkflowFailedError(self._too_much(f"{end - self.offset:,} values"))
        return self._read(self.offset, end)

    def _read(self, start: int, end: int) -> list[Any]:
        reader, values, chars = self.hook.value_reader(), [], 0
        while start < end:
            page: StreamPage = reader.stream_page(self.workflow_id, self.key, start, limit=min(PAGE_SIZE, end - start))
            if not page.values:
                break
            for value in page.values:
                chars += len(json.dumps(value, default=str))
                if chars > MAX_RETURN_CHARS:
                    raise DBOSWorkflowFailedError(self._too_much(f"more than {MAX_RETURN_CHARS:,} characters of JSON"))
                values.append(value)
            start = page.next_offset
        return values

    def _too_much(self, what: str) -> str:
        return (
            f"stream {self.key!r} of DBOS workflow {self.workflow_id} holds {what} from offset {self.offset}: "
            f"too much to return as XCom (at most {MAX_RETURN_VALUES:,} values, {MAX_RETURN_CHARS:,} characters); "
            'every value was logged: use return_values="last" or "none"'
        )
