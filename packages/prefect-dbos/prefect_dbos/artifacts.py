"""Artifacts written after the task returns: one background writer per process.

A wait's summary artifact is one write to the Prefect API. Awaited on the wait's return path, a
busy API server queues it and the task returns seconds after its workflow ended (P11 in
bench/results.md: p99 3.0 s for 1,000 waits in one flow). So a task only *queues* the artifact
(:func:`write_later`: its flow and task run ids are taken then, in the task's own run context) and
returns; one daemon thread per process writes the queue to the Prefect API in order, with a
client of the Prefect settings the task saw (its context is copied into the thread).

The writer stays out of the wake-ups' way (P11: 1,000 waits ending within 20 s; each write is
also work for the API server on the same cores): a batch (up to :data:`BATCH_MAX`) is written once
no artifact was queued for :data:`QUIET_SECONDS` (no wait just ended), or once the oldest one waited
:data:`MAX_DELAY_SECONDS` (a steady stream of ends does not hold them back longer); and what a
batch's artifacts read from the database (e.g. each workflow's last step) is read in one call for
the whole batch (``prefetch``), not one statement per artifact.

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
import time
from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["EXIT_TIMEOUT", "aflush_artifacts", "flush_artifacts", "pending_artifacts", "write_later"]

log = logging.getLogger(__name__)

EXIT_TIMEOUT = 30.0  # seconds the interpreter's exit waits for queued artifacts
QUIET_SECONDS = 1.0  # a batch is written once nothing was queued for this long (flush: at once) ...
MAX_DELAY_SECONDS = 30.0  # ... or once its oldest artifact waited this long
BATCH_MAX = 50  # artifacts per batch (between two batches the writer yields to wake-ups again)

# (group, read for many ids, this artifact's id): a batch's artifacts of one group share one read
Prefetch = tuple[Any, "Callable[[list[str]], dict[str, Any]]", str]


class _Queued:
    """One artifact to write: its kind, key, description, run ids, a function making its data from
    what ``prefetch`` read (None without one)."""

    __slots__ = ("build", "description", "flow_run_id", "key", "kind", "prefetch", "queued_at", "task_run_id")

    def __init__(
        self,
        kind: str,
        key: str,
        description: str,
        build: Callable[[Any], str],
        task_run: Any,
        flow_run: Any,
        prefetch: Prefetch | None = None,
    ) -> None:
        self.kind, self.key, self.description, self.build = kind, key, description, build
        self.task_run_id, self.flow_run_id, self.prefetch = task_run, flow_run, prefetch
        self.queued_at = time.monotonic()


class _Writer:
    """The queue and the thread that empties it (started when something is queued, ended when empty)."""

    def __init__(self) -> None:
        self._queue: deque[_Queued] = deque()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0  # queued or being written
        self._running = False
        self._exit_hook = False
        self._hurry = threading.Event()  # a flush: take the next batch at once
        self._last_queued = 0.0  # time.monotonic() of the last submit

    def submit(self, item: _Queued) -> None:
        with self._lock:
            self._queue.append(item)
            self._pending += 1
            self._last_queued = item.queued_at
            if self._running:
                return
            self._running = True
            if not self._exit_hook:
                atexit.register(self._at_exit)
                self._exit_hook = True
        # The thread runs in a copy of the caller's context: Prefect's settings (the API URL) are context variables.
        context = contextvars.copy_context()
        threading.Thread(target=context.run, args=(self._run,), name="prefect-dbos-artifacts", daemon=True).start()

    def _next(self) -> list[_Queued]:
        """The next batch, once no wait ended for ``QUIET_SECONDS`` or the oldest waited ``MAX_DELAY_SECONDS``."""
        while True:
            with self._lock:
                if not self._queue:
                    self._running = False
                    return []
                now = time.monotonic()
                pause = min(self._last_queued + QUIET_SECONDS, self._queue[0].queued_at + MAX_DELAY_SECONDS) - now
                if pause <= 0 or self._hurry.is_set():
                    return [self._queue.popleft() for _ in range(min(BATCH_MAX, len(self._queue)))]
            self._hurry.wait(pause)

    def _run(self) -> None:
        from prefect.client.orchestration import get_client

        try:
            with get_client(sync_client=True) as client:
                while batch := self._next():
                    read = _prefetch(batch)
                    for item in batch:
                        try:
                            _write(client, item, read)
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
        self._hurry.set()
        try:
            with self._lock:
                return self._idle.wait_for(lambda: not self._pending, timeout)
        finally:
            self._hurry.clear()

    def pending(self) -> int:
        with self._lock:
            return self._pending

    def _at_exit(self) -> None:
        if not self.flush(EXIT_TIMEOUT):
            log.warning("prefect-dbos: %d artifact(s) not written to the Prefect API at exit", self.pending())


def _prefetch(batch: list[_Queued]) -> dict[Any, dict[str, Any]]:
    """What the batch's artifacts read, one call per reading function for all their ids."""
    ids: dict[Any, tuple[Callable[[list[str]], dict[str, Any]], list[str]]] = {}
    for item in batch:
        if item.prefetch is not None:
            group, fetch, wid = item.prefetch
            ids.setdefault(group, (fetch, []))[1].append(wid)
    read: dict[Any, dict[str, Any]] = {}
    for group, (fetch, wanted) in ids.items():
        try:
            read[group] = fetch(wanted)
        except Exception as exc:  # noqa: BLE001 - each artifact then reads (and fails) alone
            log.warning("prefect-dbos could not read its artifacts' data: %s: %s", type(exc).__name__, exc)
    return read


def _write(client: Any, item: _Queued, read: dict[Any, dict[str, Any]]) -> None:
    from prefect.client.schemas.actions import ArtifactCreate

    try:
        if item.prefetch is None:
            data = item.build(None)
        else:
            group, fetch, wid = item.prefetch
            data = item.build((read[group] if group in read else fetch([wid])).get(wid))
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


def write_later(
    kind: str, key: str, description: str, build: Callable[[Any], str], *, prefetch: Prefetch | None = None
) -> None:
    """Queue an artifact of the current task (or flow) run; ``build`` makes its data in the writer's
    thread. Returns at once.

    :param build: called with this artifact's entry of what ``prefetch`` read (None without one).
    :param prefetch: ``(group, fetch, id)``: the batch's artifacts of one ``group`` (hashable) are read
        in one ``fetch([id, ...])`` returning ``{id: value}`` (e.g. the last steps of many workflows
        of one database in one statement).
    """
    from prefect.utilities.context import get_task_and_flow_run_ids

    task_run_id, flow_run_id = get_task_and_flow_run_ids()
    _WRITER.submit(_Queued(kind, key, description, build, task_run_id, flow_run_id, prefetch))


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
