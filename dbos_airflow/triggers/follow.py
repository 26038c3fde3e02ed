"""Following a DBOS stream inside a trigger: each value logged once, as it arrives, on the shared waiter.

Used by :class:`~dbos_airflow.triggers.streams.DBOSStreamTrigger` and by the workflow trigger's
``stream_to_log``. The trigger's log is the task's log.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from dbos_orchestrator.exceptions import DBOSWaitTimeoutError
from dbos_orchestrator.messages import PROGRESS_LOG_SECONDS, stream_value_line
from dbos_orchestrator.store.streams import PAGE_SIZE
from dbos_orchestrator.waiting.probe import is_transient_db_error

from dbos_airflow.contract.streams import CHECKPOINT_SECONDS

if TYPE_CHECKING:
    from dbos_orchestrator.store.streams import StreamPage

    from dbos_airflow.contract.streams import StreamCheckpoint

__all__ = ["StreamFollower"]

IDLE_SAVE_SECONDS = 0.5


class StreamFollower:
    """Reads one stream from an offset on the shared waiter, logging each value once.

    Used by :class:`DBOSStreamTrigger` and by the workflow trigger's ``stream_to_log``.

    :param trigger: the DBOS trigger whose hook, waiter, ``workflow_id``, deadline (``end_time``,
        ``_pause``) and log to use.
    :param checkpoint: where the offset is saved (None: not saved).
    """

    def __init__(self, trigger: Any, key: str, offset: int, checkpoint: StreamCheckpoint | None = None) -> None:
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
        self.offset = page.next_offset  # also past a close marker that came alone
        if time.monotonic() - self._saved_at >= CHECKPOINT_SECONDS:
            await self.save()
        return page

    async def follow(self) -> StreamPage | None:
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
            # Caught up with values not saved yet: save them once the stream has been quiet for
            # IDLE_SAVE_SECONDS (one save per burst, not per value), then wait as usual.
            idle_save = self.checkpoint is not None and self.offset != self.saved
            step_end = time.time() + IDLE_SAVE_SECONDS if idle_save else last_news + PROGRESS_LOG_SECONDS
            deadline = step_end if trigger.end_time is None else min(trigger.end_time, step_end)
            try:
                await waiter.streams.observe(trigger.workflow_id, self.key, self.offset, deadline=deadline)
            except DBOSWaitTimeoutError:
                if trigger.end_time is not None and time.time() >= trigger.end_time:
                    return None
                if idle_save:
                    await self.save()
                    continue
                trigger.log.info(
                    "DBOS stream %r of workflow %s: no new value for %.0fs (%d read so far)",
                    self.key,
                    trigger.workflow_id,
                    time.time() - last_news,
                    self.logged,
                )
                last_news = time.time()
