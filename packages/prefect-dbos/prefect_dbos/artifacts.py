"""Artifacts written after the task returns: one background writer per process.

A wait's summary artifact is one write to the Prefect API. Awaited on the wait's return path, a
busy API server queues it and the task returns seconds after its workflow ended (P11 in
bench/results.md: p99 3.0 s for 1,000 waits in one flow). So a task only *queues* the artifact
(:func:`write_later`: its flow and task run ids are taken then, in the task's own run context) and
returns; one daemon thread per process writes the queue to the Prefect API in order, with a
client of the Prefect settings the task saw (its context is copied into the thread).

Every queued artifact is written: :func:`flush_artifacts` (and :func:`aflush_artifacts`) waits
until the queue is empty, and the process waits for it at exit, for up to :data:`EXIT_TIMEOUT`
seconds (then it logs how many it could not write). A failed write is logged and not retried.
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import logging
import threading
from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["EXIT_TIMEOUT", "aflush_artifacts", "flush_artifacts", "pending_artifacts", "write_later"]

log = logging.getLogger(__name__)

EXIT_TIMEOUT = 30.0  # seconds the interpreter's exit waits for queued artifacts


class _Queued:
    """One artifact to write: its kind, key, description, run ids and a function making its data."""

    __slots__ = ("build", "description", "flow_run_id", "key", "kind", "task_run_id")

    def __init__(
        self, kind: str, key: str, description: str, build: Callable[[], str], task_run: Any, flow_run: Any
    ) -> None:
        self.kind, self.key, self.description, self.build = kind, key, description, build
        self.task_run_id, self.flow_run_id = task_run, flow_run


class _Writer:
    """The queue and the thread that empties it (started when something is queued, ended when empty)."""

    def __init__(self) -> None:
        self._queue: deque[_Queued] = deque()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0  # queued or being written
        self._running = False
        self._exit_hook = False

    def submit(self, item: _Queued) -> None:
        with self._lock:
            self._queue.append(item)
            self._pending += 1
            if self._running:
                return
            self._running = True
            if not self._exit_hook:
                atexit.register(self._at_exit)
                self._exit_hook = True
        # The thread runs in a copy of the caller's context: Prefect's settings (the API URL) are context variables.
        context = contextvars.copy_context()
        threading.Thread(target=context.run, args=(self._run,), name="prefect-dbos-artifacts", daemon=True).start()

    def _next(self) -> _Queued | None:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
            self._running = False
            return None

    def _run(self) -> None:
        from prefect.client.orchestration import get_client

        try:
            with get_client(sync_client=True) as client:
                while (item := self._next()) is not None:
                    try:
                        _write(client, item)
                    finally:
                        self._done()
        except BaseException:  # the client itself failed: what is left is dropped, not waited for forever
            log.exception("prefect-dbos could not write its queued artifacts to the Prefect API")
            with self._lock:
                dropped, self._running = len(self._queue), False
                self._queue.clear()
                self._pending -= dropped
                self._idle.notify_all()

    def _done(self) -> None:
        with self._lock:
            self._pending -= 1
            if not self._pending:
                self._idle.notify_all()

    def flush(self, timeout: float | None) -> bool:
        with self._lock:
            return self._idle.wait_for(lambda: not self._pending, timeout)

    def pending(self) -> int:
        with self._lock:
            return self._pending

    def _at_exit(self) -> None:
        if not self.flush(EXIT_TIMEOUT):
            log.warning("prefect-dbos: %d artifact(s) not written to the Prefect API at exit", self.pending())


def _write(client: Any, item: _Queued) -> None:
    from prefect.client.schemas.actions import ArtifactCreate

    try:
        data = item.build()
        client.create_artifact(
            ArtifactCreate(
                type=item.kind,
                key=item.key,
                description=item.description,
                data=data,
                task_run_id=item.task_run_id,
                flow_run_id=item.flow_run_id,
            )
        )
    except Exception as exc:  # noqa: BLE001 - one artifact lost is logged, the others are still written
        log.warning("prefect-dbos could not write artifact %s: %s: %s", item.key, type(exc).__name__, exc)


_WRITER = _Writer()


def write_later(kind: str, key: str, description: str, build: Callable[[], str]) -> None:
    """Queue an artifact of the current task (or flow) run; ``build`` makes its data in the writer's
    thread (it may read the database). Returns at once."""
    from prefect.utilities.context import get_task_and_flow_run_ids

    task_run_id, flow_run_id = get_task_and_flow_run_ids()
    _WRITER.submit(_Queued(kind, key, description, build, task_run_id, flow_run_id))


def flush_artifacts(timeout: float | None = None) -> bool:
    """Wait until every artifact queued in this process is written (or failed); False if ``timeout`` passed first.

    :param timeout: seconds to wait at most (None: until done).
    """
    return _WRITER.flush(timeout)


async def aflush_artifacts(timeout: float | None = None) -> bool:
    """:func:`flush_artifacts` without blocking the event loop.

    :param timeout: seconds to wait at most (None: until done).
    """
    return await asyncio.to_thread(_WRITER.flush, timeout)


def pending_artifacts() -> int:
    """How many artifacts of this process are queued or being written."""
    return _WRITER.pending()
