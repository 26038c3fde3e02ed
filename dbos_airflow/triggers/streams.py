"""Deferred reads of a DBOS workflow's stream: each value in the task log as it arrives.

:class:`DBOSStreamTrigger` is configuration over the base trigger of :mod:`dbos_airflow.triggers.dbos`:
it waits on the process's shared waiter (:mod:`dbos_orchestrator.waiting.streams`: one statement
for every stream wait of the process, woken by DBOS' stream notifications on Postgres), reads each
new page through the connection's safe reader, logs one line per value (the trigger's log is the
task's log), saves its offset (:mod:`dbos_airflow.contract.streams`) and yields one
``stream_ended`` event when the stream is closed or the workflow stopped. Its kwargs carry the
offset it starts from; a triggerer restart resumes from the larger of that and the saved one.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from dbos_orchestrator.messages import PROGRESS_LOG_SECONDS, stream_ended_message, stream_value_line
from dbos_orchestrator.store.streams import PAGE_SIZE
from dbos_orchestrator.waiting.probe import is_transient_db_error

from dbos_airflow.contract.events import TriggerEventKind
from dbos_airflow.contract.streams import CHECKPOINT_SECONDS, StreamCheckpoint
from dbos_airflow.exceptions import DBOSWaitTimeoutError
from dbos_airflow.triggers.dbos import _DBOSTrigger

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from airflow.triggers.base import TriggerEvent
    from dbos_orchestrator.store.streams import StreamPage


class StreamFollower:
    """Reads one stream from an offset on the shared waiter, logging each value once.

    Used by :class:`DBOSStreamTrigger` and by the workflow trigger's ``stream_to_log``.

    :param trigger: the trigger whose hook, deadline and log to use.
    :param checkpoint: where the offset is saved (None: not saved).
    """

    def __init__(
        self, trigger: _DBOSTrigger, key: str, offset: int, checkpoint: StreamCheckpoint | None = None
    ) -> None:
        self.trigger = trigger
        self.key = key
        self.offset = offset
        self.checkpoint = checkpoint
        self.logged = 0
        self.saved = offset
        self._saved_at = time.monotonic()

    async def start(self) -> None:
        """Continue from the saved offset when it is further than the one in the kwargs."""
        if self.checkpoint is not None:
            self.offset = self.saved = await asyncio.to_thread(self.checkpoint.load, self.offset)

    async def save(self) -> None:
        if self.checkpoint is not None and self.offset != self.saved:
            await asyncio.to_thread(self.checkpoint.save, self.offset)
            self.saved, self._saved_at = self.offset, time.monotonic()

    def _log(self, page: StreamPage) -> None:
        for i, value in enumerate(page.values):
            self.trigger.log.info(stream_value_line(self.key, page.offset + i, value))
        self.logged += len(page.values)
        self.offset = page.next_offset

    async def read(self) -> StreamPage:
        """One page from the current offset, logged."""
        reader = await self.trigger.hook.get_value_reader_async()
        page = await asyncio.to_thread(reader.stream_page, self.trigger.workflow_id, self.key, self.offset)
        if page.values:
            self._log(page)
        if time.monotonic() - self._saved_at >= CHECKPOINT_SECONDS:
            await self.save()
        return page

    async def follow(self, *, until_ended: bool = True) -> StreamPage | None:
        """Read until the stream is closed or the workflow stopped; None at the trigger's deadline.

        Logs a progress line every ~30 s of silence. A database outage is more waiting.
        """
        trigger, waiter = self.trigger, await self.trigger._waiter()
        last_news = time.time()
        while True:
            try:
                page = await self.read()
            except Exception as exc:
                if not is_transient_db_error(exc):
                    raise
                trigger.log.warning(
                    "Could not read stream %r of DBOS workflow %s (%s)", self.key, trigger.workflow_id, exc
                )
                if not await trigger._pause(1.0):
                    return None
                continue
            if page.values:
                last_news = time.time()
                if len(page.values) >= PAGE_SIZE:
                    continue
            if page.closed or (not page.values and page.ended):
                return page
            step_end = last_news + PROGRESS_LOG_SECONDS
            deadline = step_end if trigger.end_time is None else min(trigger.end_time, step_end)
            try:
                await waiter.streams.observe(trigger.workflow_id, self.key, self.offset, deadline=deadline)
            except DBOSWaitTimeoutError:
                if trigger.end_time is not None and time.time() >= trigger.end_time:
                    return None
                trigger.log.info(
                    "DBOS stream %r of workflow %s: no new value for %.0fs (%d read so far)",
                    self.key,
                    trigger.workflow_id,
                    time.time() - last_news,
                    self.logged,
                )
                last_news = time.time()


class DBOSStreamTrigger(_DBOSTrigger):
    """
    Logs each value of stream ``key`` of a DBOS workflow as it arrives; fires when the stream is
    closed, when the workflow stopped (ended, or does not exist), or at ``end_time``.

    :param key: the stream key (``DBOS.write_stream(key, value)`` in the workflow).
    :param offset: the offset to read from (values before it were logged already).
    :param checkpoint: the name of the task's offset Variable (:mod:`dbos_airflow.contract.streams`);
        None saves nothing.
    :param checkpoint_identity: what that Variable is about (JSON, kept in its value).
    """

    def __init__(
        self,
        *,
        key: str,
        offset: int = 0,
        checkpoint: str | None = None,
        checkpoint_identity: str = "{}",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.key = key
        self.offset = offset
        self.checkpoint = checkpoint
        self.checkpoint_identity = checkpoint_identity

    def _kwargs(self) -> dict[str, Any]:
        return {
            **super()._kwargs(),
            "key": self.key,
            "offset": self.offset,
            "checkpoint": self.checkpoint,
            "checkpoint_identity": self.checkpoint_identity,
        }

    async def _events(self) -> AsyncIterator[TriggerEvent]:
        kinds = TriggerEventKind
        checkpoint = None if self.checkpoint is None else StreamCheckpoint(self.checkpoint, self.checkpoint_identity)
        follower = StreamFollower(self, self.key, self.offset, checkpoint)
        try:
            await follower.start()
            page = await follower.follow()
        except Exception as exc:  # noqa: BLE001 - reported to execute_complete, which fails
            yield self._event(kinds.ERROR, key=self.key, message=f"{type(exc).__name__}: {exc}")
            return
        finally:
            # Also on cancellation (a triggerer shutting down, a trigger moved): the next one resumes here.
            await asyncio.shield(follower.save())
        if page is None:
            yield self._event(kinds.TIMEOUT, key=self.key, offset=follower.offset)
        elif page.status is None:
            yield self._event(kinds.NOT_FOUND, key=self.key)
        else:
            self.log.info(stream_ended_message(self.workflow_id, self.key, follower.logged, page.closed, page.status))
            yield self._event(
                kinds.STREAM_ENDED,
                key=self.key,
                offset=follower.offset,
                closed=page.closed,
                status=page.status,
            )
