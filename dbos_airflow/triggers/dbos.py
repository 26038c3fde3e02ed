"""Deferrable waits on DBOS workflows: completion and published events.

Both triggers share the per-process :mod:`dbos_airflow.hooks.waiter` (one polling loop and
two connections per DBOS connection, however many tasks are deferred). They carry wall-clock
deadlines in their kwargs, yield exactly one event and return, and never cancel anything in
``cleanup()`` (which also runs when a triggerer restarts). A user's kill (mark failed/success,
clear; Airflow >= 3.3) reaches :meth:`on_kill`, which cancels the workflow when asked to.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from dbos_airflow.exceptions import DBOSWaitTimeoutError
from dbos_airflow.hooks.waiter import NOT_FOUND, get_waiter

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

PROGRESS_LOG_SECONDS = 300.0

# Kinds of event payloads; execute_complete accepts nothing else (fail closed).
WORKFLOW_ENDED = "workflow_ended"
EVENT_PUBLISHED = "event_published"
ENDED_WITHOUT_EVENT = "ended_without_event"
NOT_FOUND_EVENT = "not_found"
TIMEOUT = "timeout"
ERROR = "error"


class _DBOSTrigger(BaseTrigger):
    """Shared plumbing: serialization, deadline, progress logging and the user-kill cancel."""

    def __init__(
        self,
        *,
        workflow_id: str,
        dbos_conn_id: str = "dbos_default",
        end_time: float | None = None,
        cancel_on_kill: bool = False,
    ) -> None:
        super().__init__()
        self.workflow_id = workflow_id
        self.dbos_conn_id = dbos_conn_id
        self.end_time = end_time
        self.cancel_on_kill = cancel_on_kill

    def _kwargs(self) -> dict[str, Any]:
        return {
            "workflow_id": self.workflow_id,
            "dbos_conn_id": self.dbos_conn_id,
            "end_time": self.end_time,
            "cancel_on_kill": self.cancel_on_kill,
        }

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", self._kwargs()

    def _event(self, kind: str, **payload: Any) -> TriggerEvent:
        return TriggerEvent({"kind": kind, "workflow_id": self.workflow_id, **payload})

    async def _observe(self, key: str | None = None) -> Any:
        """The waiter's observation, logging progress every few minutes; None on timeout."""
        waiter = await get_waiter(self.dbos_conn_id)
        while True:
            step_end = time.time() + PROGRESS_LOG_SECONDS
            deadline = step_end if self.end_time is None else min(self.end_time, step_end)
            try:
                return await waiter.observe(self.workflow_id, key, deadline=deadline)
            except DBOSWaitTimeoutError:
                if self.end_time is not None and time.time() >= self.end_time:
                    return None
                self.log.info("Still waiting for DBOS workflow %s", self.workflow_id)

    async def on_kill(self) -> None:
        """Cancel the workflow when a user kills the deferred task (best effort, idempotent)."""
        if not self.cancel_on_kill:
            return
        from dbos_airflow.hooks.dbos import DBOSHook

        try:
            async with DBOSHook(self.dbos_conn_id) as hook:
                await hook.cancel_workflow_async(self.workflow_id)
            self.log.info("Cancelled DBOS workflow %s", self.workflow_id)
        except Exception:  # noqa: BLE001 - best effort: the task is being killed anyway
            self.log.warning("Could not cancel DBOS workflow %s", self.workflow_id, exc_info=True)


class DBOSWorkflowTrigger(_DBOSTrigger):
    """
    Fires when a DBOS workflow leaves ENQUEUED/DELAYED/PENDING, or at ``end_time``.

    :param workflow_id: the workflow to wait for.
    :param dbos_conn_id: the ``dbos`` connection.
    :param end_time: wall-clock deadline (``time.time()``); None waits forever.
    :param cancel_on_kill: cancel the workflow when a user kills the deferred task.
    """

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            obs = await self._observe()
        except Exception as exc:  # noqa: BLE001 - reported to execute_complete, which fails
            yield self._event(ERROR, message=f"{type(exc).__name__}: {exc}")
            return
        if obs is None:
            yield self._event(TIMEOUT)
        elif obs.status == NOT_FOUND:
            yield self._event(NOT_FOUND_EVENT)
        else:
            yield self._event(WORKFLOW_ENDED, status=obs.status)


class DBOSEventTrigger(_DBOSTrigger):
    """
    Fires when a DBOS workflow has published event ``key`` (equal to ``expected_value`` when
    given), when it ends without doing so, or at ``end_time``.

    :param key: the event key (``DBOS.set_event(key, value)`` in the workflow).
    :param expected_value: wait until the published value equals this (JSON value).
    :param poll_interval: seconds between re-reads while a published value differs from
        ``expected_value``.
    """

    def __init__(
        self,
        *,
        key: str,
        expected_value: Any = None,
        poll_interval: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.key = key
        self.expected_value = expected_value
        self.poll_interval = poll_interval

    def _kwargs(self) -> dict[str, Any]:
        return {
            **super()._kwargs(),
            "key": self.key,
            "expected_value": self.expected_value,
            "poll_interval": self.poll_interval,
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        import asyncio

        try:
            while True:
                obs = await self._observe(self.key)
                if obs is None:
                    yield self._event(TIMEOUT, key=self.key)
                    return
                if obs.status == NOT_FOUND:
                    yield self._event(NOT_FOUND_EVENT, key=self.key)
                    return
                if not obs.event_present:
                    yield self._event(ENDED_WITHOUT_EVENT, key=self.key, status=obs.status)
                    return
                waiter = await get_waiter(self.dbos_conn_id)
                value = await waiter.client.get_event_async(self.workflow_id, self.key, 0)
                if self.expected_value is None or value == self.expected_value:
                    yield self._event(EVENT_PUBLISHED, key=self.key, value=value)
                    return
                if obs.status not in ("ENQUEUED", "DELAYED", "PENDING"):
                    yield self._event(ENDED_WITHOUT_EVENT, key=self.key, status=obs.status, value=value)
                    return
                await asyncio.sleep(self.poll_interval)
        except Exception as exc:  # noqa: BLE001 - reported to execute_complete, which fails
            yield self._event(ERROR, key=self.key, message=f"{type(exc).__name__}: {exc}")
