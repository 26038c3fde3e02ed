"""Following a DBOS workflow's stream (``DBOS.write_stream``) from a Prefect task.

The values are read through the core's safe reader (pickles refused unless the block allows
them), a page at a time together with the workflow's status; between pages the task waits on the
database's shared waiter (one statement for every stream wait of the process, woken by DBOS'
stream notifications on Postgres). Each value is one log line (long values cut, with a marker);
a stream of numbers also drives a Prefect progress artifact. The read ends when the stream is
closed or the workflow stopped; a workflow that ended in failure fails the task with its own
error (the core's outcome rule). Imports the core directly (the package's final layout).
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dbos_orchestrator.exceptions import DBOSOptionsError, DBOSWaitTimeoutError, DBOSWorkflowFailedError
from dbos_orchestrator.messages import stream_ended_message, stream_value_line
from dbos_orchestrator.status import SUCCESS_STATUSES
from dbos_orchestrator.store.streams import PAGE_SIZE, check_stream_args

if TYPE_CHECKING:
    from uuid import UUID

    from prefect_dbos.database import DBOSSystemDatabase

RETURN_VALUES = ("all", "last", "none")
MAX_RETURN_VALUES = 10_000  # return_values="all": more fails the task (every value was logged)


def progress_artifact_key(workflow_id: str, key: str) -> str:
    """The progress artifact's key: lowercase letters, digits and dashes (what Prefect accepts)."""
    return re.sub(r"[^a-z0-9]+", "-", f"dbos-stream-{key}-{workflow_id}".lower()).strip("-")[:200]


class _Progress:
    """A Prefect progress artifact fed by a stream's numeric values (0-100); other values are ignored."""

    def __init__(self, workflow_id: str, key: str, enabled: bool) -> None:
        self.workflow_id, self.key, self.enabled = workflow_id, key, enabled
        self.artifact: UUID | None = None

    async def update(self, values: list[Any]) -> None:
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if not self.enabled or not numbers:
            return
        from prefect.artifacts import acreate_progress_artifact, aupdate_progress_artifact

        progress = float(min(100.0, max(0.0, numbers[-1])))
        described = f"DBOS stream {self.key!r} of workflow {self.workflow_id}"
        if self.artifact is None:
            self.artifact = await acreate_progress_artifact(
                progress, key=progress_artifact_key(self.workflow_id, self.key), description=described
            )
        else:
            await aupdate_progress_artifact(self.artifact, progress)


@dataclass(frozen=True)
class StreamRead:
    """What to read of a workflow's stream and what to return; checked when made (at once).

    :param offset: the first offset to read (>= 0).
    :param return_values: ``"all"`` (at most :data:`MAX_RETURN_VALUES`), ``"last"`` or ``"none"``.
    :param timeout: seconds to wait for the next value (None: as long as it takes).
    :param progress_artifact: numbers (0-100) drive a Prefect progress artifact.
    :raises DBOSOptionsError: a bad argument, named.
    """

    workflow_id: str
    key: str
    offset: int = 0
    return_values: str = "all"
    timeout: float | None = None
    progress_artifact: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "offset", check_stream_args(self.workflow_id, self.key, self.offset))
        if self.return_values not in RETURN_VALUES:
            raise DBOSOptionsError(
                f"return_values must be one of {', '.join(RETURN_VALUES)}; got {self.return_values!r}"
            )


async def read_stream_values(
    database: DBOSSystemDatabase, read: StreamRead, *, logger: Any, follow_only: bool = False
) -> Any:
    """Log each value of the stream from ``read.offset`` as it arrives until the stream is closed or
    the workflow stopped; return the values (``"all"``), the last one (``"last"``) or None (``"none"``).

    :raises DBOSWorkflowNotFoundError: no such workflow (at the first read).
    :raises DBOSWorkflowFailedError: the workflow ended in failure (after its values were logged),
        or ended without ever writing the stream.
    :raises DBOSUnsafeValueError: a value is pickled and the block does not allow pickles.
    :raises DBOSWaitTimeoutError: ``read.timeout`` seconds passed first.
    :param follow_only: only log (``stream_to_log=`` of a wait): how the workflow ended, or a stream
        never written, is the wait's business, not an error here.
    """
    workflow_id, key, return_values, timeout = read.workflow_id, read.key, read.return_values, read.timeout
    start = next_offset = read.offset
    service = database.service()
    reader = service.value_reader()
    waiter = await database.waiter()
    progress = _Progress(workflow_id, key, read.progress_artifact)
    deadline = None if timeout is None else time.time() + timeout
    kept: list[Any] = []
    while True:
        page = await asyncio.to_thread(reader.stream_page, workflow_id, key, next_offset)
        if page.status is None:
            await asyncio.to_thread(service.require_workflow, workflow_id)  # raises, naming the workflow and database
        for i, value in enumerate(page.values):
            logger.info("%s", stream_value_line(key, page.offset + i, value))
        if return_values == "all":
            kept.extend(page.values)
            if len(kept) > MAX_RETURN_VALUES:
                raise DBOSWorkflowFailedError(
                    f"stream {key!r} of DBOS workflow {workflow_id} holds more than {MAX_RETURN_VALUES:,} values "
                    f"from offset {start}: too many to return (every value was logged); "
                    'use return_values="last" or "none"'
                )
        elif page.values:
            kept = page.values[-1:]
        await progress.update(page.values)
        next_offset = page.next_offset
        if len(page.values) >= PAGE_SIZE:
            continue
        if page.closed or (not page.values and page.ended):
            break
        try:
            await waiter.streams.observe(workflow_id, key, next_offset, deadline=deadline)
        except DBOSWaitTimeoutError:
            raise DBOSWaitTimeoutError(
                f"timed out after {timeout}s reading stream {key!r} of DBOS workflow {workflow_id} "
                f"({next_offset - start} value(s) read)"
            ) from None
    read = next_offset - start - (1 if page.closed else 0)
    logger.info("%s", stream_ended_message(workflow_id, key, read, page.closed, page.status))
    status = page.status
    if follow_only:
        return None
    if status is not None and not status.is_active() and status not in SUCCESS_STATUSES:
        await asyncio.to_thread(service.result, workflow_id)  # raises the workflow's own error
    if next_offset == 0 and not page.closed:
        raise DBOSWorkflowFailedError(
            f"DBOS workflow ended {status} without writing stream {key!r} (workflow {workflow_id})"
        )
    if return_values == "none":
        return None
    if return_values == "last":
        return kept[-1] if kept else None
    return kept
