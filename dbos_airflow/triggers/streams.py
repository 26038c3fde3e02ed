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
from typing import TYPE_CHECKING, Any

from dbos_orchestrator.messages import stream_ended_message

from dbos_airflow.contract.events import TriggerEventKind
from dbos_airflow.contract.streams import StreamCheckpoint
from dbos_airflow.triggers.dbos import _DBOSTrigger
from dbos_airflow.triggers.follow import StreamFollower

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from airflow.triggers.base import TriggerEvent


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
