"""Deferrable waits on DBOS workflows: completion, published events, batches, a queue's backlog.

Both triggers share the per-process waiter (:mod:`dbos_orchestrator.waiting.waiter`: one polling
loop and two connections per DBOS connection, however many tasks are deferred). They carry
wall-clock deadlines in their kwargs, yield exactly one event of the contract in
:mod:`dbos_airflow.contract.events` and return, and never cancel anything in ``cleanup()``
(which also runs when a triggerer restarts). A person's kill (mark failed/success, clear;
Airflow >= 3.3) reaches :meth:`on_kill`, which cancels the workflow when asked to; a trigger
that Airflow merely moved to another triggerer cancels nothing.
"""

from __future__ import annotations

import asyncio
import time
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.triggers.base import BaseTrigger, TriggerEvent
from dbos_orchestrator.exceptions import DBOSWaitTimeoutError
from dbos_orchestrator.messages import (
    PROGRESS_LOG_SECONDS,
    batch_progress_message,
    progress_message,
    queue_progress_message,
)
from dbos_orchestrator.waiting.probe import is_transient_db_error

from dbos_airflow.contract.deferral import hold_until
from dbos_airflow.contract.events import TriggerEventKind, trigger_event_payload
from dbos_airflow.hooks.dbos import DBOSHook

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from dbos_orchestrator.store.values import ValueReader
    from dbos_orchestrator.waiting.batch import CountTracker
    from dbos_orchestrator.waiting.waiter import DBOSWaiter, Observation

T = TypeVar("T")


class _DBOSTrigger(BaseTrigger):
    """Shared plumbing: serialization, deadline, progress logging and the user-kill cancel."""

    def __init__(
        self,
        *,
        workflow_id: str,
        dbos_conn_id: str = "dbos_default",
        end_time: float | None = None,
        cancel_on_kill: bool = False,
        not_before: float | None = None,
    ) -> None:
        super().__init__()
        self.workflow_id = workflow_id
        self.dbos_conn_id = dbos_conn_id
        self.end_time = end_time
        self.cancel_on_kill = cancel_on_kill
        self.not_before = not_before

    def _kwargs(self) -> dict[str, Any]:
        return {
            "workflow_id": self.workflow_id,
            "dbos_conn_id": self.dbos_conn_id,
            "end_time": self.end_time,
            "cancel_on_kill": self.cancel_on_kill,
            "not_before": self.not_before,
        }

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", self._kwargs()

    def _event(self, kind: TriggerEventKind, **payload: Any) -> TriggerEvent:
        return TriggerEvent(trigger_event_payload(kind, self.workflow_id, **payload))

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """The subclass's event, held until ``not_before`` (:mod:`dbos_airflow.contract.deferral`)."""
        async for event in self._events():
            await hold_until(self.not_before)
            yield event

    def _events(self) -> AsyncIterator[TriggerEvent]:
        raise NotImplementedError

    @cached_property
    def hook(self) -> DBOSHook:
        return DBOSHook(self.dbos_conn_id)

    async def _waiter(self) -> DBOSWaiter:
        return await self.hook.get_waiter_async()

    async def _in_steps(self, observe: Callable[[float], Awaitable[T]], progress: Callable[[float], str]) -> T | None:
        """``await observe(until)`` in steps of ~30 s, logging ``progress(waited)`` after each; None at ``end_time``."""
        started = time.time()
        while True:
            step_end = time.time() + PROGRESS_LOG_SECONDS
            deadline = step_end if self.end_time is None else min(self.end_time, step_end)
            try:
                return await observe(deadline)
            except DBOSWaitTimeoutError:
                if self.end_time is not None and time.time() >= self.end_time:
                    return None
                # Off the loop: 1,000 waits log together, and a log socket the supervisor had not drained blocked
                # the loop, which then could not read the supervisor's message it was blocked sending (P9 hung).
                await asyncio.to_thread(self.log.info, progress(time.time() - started))

    async def _observe(self, key: str | None = None) -> Observation | None:
        """The waiter's observation, logging progress every ~30 s; None on timeout."""
        waiter = await self._waiter()
        return await self._in_steps(
            lambda until: waiter.observe(self.workflow_id, key, deadline=until),
            lambda waited: progress_message(self.workflow_id, *waiter.progress(self.workflow_id), waited),
        )

    async def _observe_counts(
        self, tracker: CountTracker[T], progress: Callable[[T, float], str], fail_fast: bool = False
    ) -> T | None:
        """The shared waiter's count wait (a batch, a queue's backlog) until done, logging ``progress(counts,
        waited)`` every ~30 s; None at ``end_time``."""
        waiter = await self._waiter()
        return await self._in_steps(
            lambda until: waiter.batches.observe(tracker, fail_fast=fail_fast, deadline=until),
            lambda waited: progress(tracker.counts, waited),
        )

    async def _cancel(self) -> None:
        await self.hook.cancel_workflow_async(self.workflow_id)
        self.log.info("Cancelled DBOS workflow %s", self.workflow_id)

    async def _pause(self, seconds: float) -> bool:
        """Sleep ``seconds`` (at most until the deadline); False when the deadline has passed."""
        if self.end_time is not None:
            seconds = min(seconds, self.end_time - time.time())
            if seconds <= 0:
                return False
        await asyncio.sleep(seconds)
        return self.end_time is None or time.time() < self.end_time

    async def on_kill(self) -> None:
        """Cancel the workflow when a person killed the deferred task (best effort, idempotent).

        Airflow 3.3 also calls this on a trigger moved to another triggerer (apache/airflow PR
        #73454); then the task instance is still deferred (or already resumed) and nothing is
        cancelled (see :mod:`dbos_airflow.contract.kill`). The decision and the cancel run in one
        thread that finishes even if this coroutine is cancelled: the triggerer cancels a trigger
        it is cancelling again at its next sync, which used to abort the cancel half-way.
        """
        if not self.cancel_on_kill:
            return
        await asyncio.shield(asyncio.ensure_future(self._cancel_if_killed()))

    async def _cancel_if_killed(self) -> None:
        from dbos_airflow.contract.kill import decide_on_kill

        ti = self.task_instance
        cancel, why = await asyncio.to_thread(decide_on_kill, ti, cancel_on_kill=self.cancel_on_kill, deferred=True)
        if not cancel:
            self.log.info("Trigger stopped, DBOS workflow %s left running: %s", self.workflow_id, why)
            return
        self.log.info("Deferred task killed (%s): cancelling DBOS workflow %s", why, self.workflow_id)
        try:
            await self._cancel()
        except Exception:  # noqa: BLE001 - best effort: the task is being killed anyway
            self.log.warning("Could not cancel DBOS workflow %s", self.workflow_id, exc_info=True)
        finally:
            await asyncio.to_thread(self.hook.close)


class DBOSWorkflowTrigger(_DBOSTrigger):
    """
    Fires when a DBOS workflow ends (leaves the active statuses), or at ``end_time``.

    :param workflow_id: the workflow to wait for.
    :param dbos_conn_id: the ``dbos`` connection.
    :param end_time: wall-clock deadline (``time.time()``); None waits forever.
    :param cancel_on_kill: cancel the workflow when a person kills the deferred task (not when
        Airflow moves the trigger to another triggerer).
    :param not_before: wall-clock time before which no event is yielded (set at deferral: see
        :mod:`dbos_airflow.contract.deferral`); None fires as soon as the answer is known.
    :param stream_to_log: a stream key: its values are logged while the trigger waits (from
        ``stream_offset``), and those written last before the workflow ended.
    """

    def __init__(self, *, stream_to_log: str | None = None, stream_offset: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stream_to_log = stream_to_log
        self.stream_offset = stream_offset

    def _kwargs(self) -> dict[str, Any]:
        if self.stream_to_log is None:  # rows stored without a stream serialize back unchanged
            return super()._kwargs()
        return {**super()._kwargs(), "stream_to_log": self.stream_to_log, "stream_offset": self.stream_offset}

    async def _events(self) -> AsyncIterator[TriggerEvent]:
        from dbos_airflow.triggers.follow import StreamFollower

        follower = None
        if self.stream_to_log is not None:
            follower = asyncio.ensure_future(StreamFollower(self, self.stream_to_log, self.stream_offset).follow())
        try:
            obs = await self._observe()
        except Exception as exc:  # noqa: BLE001 - reported to execute_complete, which fails
            yield self._event(TriggerEventKind.ERROR, message=f"{type(exc).__name__}: {exc}")
            return
        finally:
            if follower is not None:
                await self._drain(follower)
        if obs is None:
            yield self._event(TriggerEventKind.TIMEOUT)
        elif obs.status is None:
            yield self._event(TriggerEventKind.NOT_FOUND)
        else:
            yield self._event(TriggerEventKind.WORKFLOW_ENDED, status=obs.status)

    async def _drain(self, follower: asyncio.Future[Any]) -> None:
        """The stream follower ends by itself once the workflow stopped: wait for it (at most 10 s)."""
        try:
            await asyncio.wait_for(follower, 10)
        except Exception as exc:  # noqa: BLE001 - logging the stream never fails the wait
            self.log.warning(
                "Could not log stream %r of DBOS workflow %s: %s", self.stream_to_log, self.workflow_id, exc
            )


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

    async def _events(self) -> AsyncIterator[TriggerEvent]:
        kinds = TriggerEventKind
        try:
            # The reader (the hook's settings: the Airflow connection, read in a thread) is made
            # before waiting, so the event's wake-up pays only the value's read (bench/p4_parts.py).
            reader = await self.hook.get_value_reader_async()
            while True:
                obs = await self._observe(self.key)
                if obs is None:
                    yield self._event(kinds.TIMEOUT, key=self.key)
                    return
                if obs.status is None:
                    yield self._event(kinds.NOT_FOUND, key=self.key)
                    return
                if not obs.event_present:
                    yield self._event(kinds.ENDED_WITHOUT_EVENT, key=self.key, status=obs.status)
                    return
                try:
                    value = await self._read_value(reader)
                except Exception as exc:
                    if not is_transient_db_error(exc):
                        raise
                    # The database went away between the probe and the read: wait again.
                    self.log.warning(
                        "Could not read event %r of DBOS workflow %s (%s); waiting again",
                        self.key,
                        self.workflow_id,
                        exc,
                    )
                    if not await self._pause(self.poll_interval):
                        yield self._event(kinds.TIMEOUT, key=self.key)
                        return
                    continue
                if self.expected_value is None or value == self.expected_value:
                    yield self._event(kinds.EVENT_PUBLISHED, key=self.key, value=value)
                    return
                if obs.status.is_terminal():
                    yield self._event(kinds.ENDED_WITHOUT_EVENT, key=self.key, status=obs.status, value=value)
                    return
                if not await self._pause(self.poll_interval):
                    yield self._event(kinds.TIMEOUT, key=self.key)
                    return
        except Exception as exc:  # noqa: BLE001 - reported to execute_complete, which fails
            yield self._event(kinds.ERROR, key=self.key, message=f"{type(exc).__name__}: {exc}")

    async def _read_value(self, reader: ValueReader) -> Any:
        """The event's value, through the hook's safe reader on the waiter's client.

        :param reader: :meth:`DBOSHook.get_value_reader_async`'s reader.
        """
        _, value = await asyncio.to_thread(reader.event, self.workflow_id, self.key)
        return value


class DBOSBatchTrigger(_DBOSTrigger):
    """
    Fires when every workflow of a batch has ended (with ``fail_fast``, at the first failure; with
    ``first``, when any one ended: DBOS' ``wait_first``), or at ``end_time``: **one** trigger for the
    whole batch, probed by the shared waiter with one statement per tick whatever the batch's size
    (docs/batch.md, "How the wait works").
    Logs ``6,210/10,000 ended: 6,190 SUCCESS, 20 ERROR; 3,790 pending`` every ~30 s.

    :param batch: the batch (:meth:`dbos_orchestrator.waiting.batch.BatchSpec.to_json`: a prefix
        and a count for derived ids, else the ids).
    :param fail_fast: fire at the first item that ended in anything but success.
    :param first: fire when the first item ended, whatever its status.
    :param workflow_id: the batch's key (what the event names; the task checks it).
    :param cancel_on_kill: cancel the batch's active workflows when a person kills the deferred task.
    """

    def __init__(self, *, batch: dict[str, Any], fail_fast: bool = False, first: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batch = batch
        self.fail_fast = fail_fast
        self.first = first

    def _kwargs(self) -> dict[str, Any]:
        out = {**super()._kwargs(), "batch": self.batch, "fail_fast": self.fail_fast}
        return {**out, "first": True} if self.first else out  # rows stored without it serialize back unchanged

    async def _events(self) -> AsyncIterator[TriggerEvent]:
        from dbos_orchestrator.waiting.batch import BatchSpec, BatchTracker

        try:
            tracker = BatchTracker(BatchSpec.from_json(self.batch), first=self.first)
            counts = await self._observe_counts(
                tracker, lambda c, waited: batch_progress_message(c.total, c.by_status, waited), self.fail_fast
            )
        except Exception as exc:  # noqa: BLE001 - reported to execute_complete, which fails
            yield self._event(TriggerEventKind.ERROR, message=f"{type(exc).__name__}: {exc}")
            return
        if counts is None:
            yield self._event(TriggerEventKind.TIMEOUT, batch=self.batch, counts=tracker.counts.to_json())
        else:
            yield self._event(TriggerEventKind.BATCH_ENDED, batch=self.batch, counts=counts.to_json())

    async def _cancel(self) -> None:
        from dbos_orchestrator.waiting.batch import BatchSpec

        spec = BatchSpec.from_json(self.batch)
        settings = await self.hook.get_settings_async()
        await self.hook.get_client_async()
        cancelled = await asyncio.to_thread(lambda: self.hook.service(settings).cancel_batch(spec))
        self.log.info("Cancelled %d active DBOS workflow(s) of batch %s", cancelled, spec.key)


class DBOSQueueTrigger(_DBOSTrigger):
    """
    Fires when a DBOS queue holds at most ``max_backlog`` active workflows (ENQUEUED, DELAYED,
    PENDING), or at ``end_time``: the shared waiter probes it with one statement per batch tick
    (:class:`~dbos_orchestrator.operations.queues.QueueBacklog`), however many tasks wait.

    :param queue_name: the queue.
    :param max_backlog: the most active workflows it may hold.
    :param dequeued_since_ms: also fires once a workflow of the queue was dequeued since then (epoch ms).
    :param workflow_id: the wait's key, ``queue <name>`` (what the event names; the sensor checks it).
    """

    def __init__(
        self, *, queue_name: str, max_backlog: int, dequeued_since_ms: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.queue_name = queue_name
        self.max_backlog = max_backlog
        self.dequeued_since_ms = dequeued_since_ms

    def _kwargs(self) -> dict[str, Any]:
        return {
            **super()._kwargs(),
            "queue_name": self.queue_name,
            "max_backlog": self.max_backlog,
            "dequeued_since_ms": self.dequeued_since_ms,
        }

    async def _events(self) -> AsyncIterator[TriggerEvent]:
        from dbos_orchestrator.operations.queues import QueueBacklog

        try:
            backlog = QueueBacklog(self.queue_name, self.max_backlog, self.dequeued_since_ms)
            counts = await self._observe_counts(
                backlog, lambda c, waited: queue_progress_message(self.queue_name, c, self.max_backlog, waited)
            )
        except Exception as exc:  # noqa: BLE001 - reported to execute_complete, which fails
            yield self._event(TriggerEventKind.ERROR, message=f"{type(exc).__name__}: {exc}")
            return
        if counts is None:
            yield self._event(TriggerEventKind.TIMEOUT, queue_name=self.queue_name, backlog=backlog.counts)
        else:
            yield self._event(
                TriggerEventKind.QUEUE_BELOW, queue_name=self.queue_name, backlog=counts, dequeued=backlog.dequeued
            )
