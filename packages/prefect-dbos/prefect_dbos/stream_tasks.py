"""Prefect tasks that follow a DBOS workflow's stream into the task log (async, with a sync twin).

What they do is :func:`prefect_dbos.streams.read_stream_values` (arguments checked at once by
:class:`~prefect_dbos.streams.StreamRead`); ``await_workflow(stream_to_log=...)``
(:mod:`prefect_dbos.tasks`) logs a stream while it waits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.utilities.asyncutils import run_coro_as_sync

from prefect_dbos.streams import StreamRead, read_stream_values

if TYPE_CHECKING:
    from prefect_dbos.database import DBOSSystemDatabase

__all__ = ["aread_stream", "read_stream"]


@task(name="read-dbos-stream", cache_policy=NO_CACHE)
async def aread_stream(
    database: DBOSSystemDatabase,
    workflow_id: str,
    key: str,
    *,
    offset: int = 0,
    return_values: str = "all",
    timeout: float | None = None,
    progress_artifact: bool = True,
) -> Any:
    """Log each value of the workflow's stream ``key`` as it arrives (one line per value, long values
    cut with a marker); end when the stream is closed or the workflow stopped; return the values.

    Values are read through the block's safe reader (pickles refused unless ``allow_pickle``). A
    workflow that ended in failure fails the task with its own error after its values were logged;
    one that ended without writing ``key`` fails naming it; an unknown workflow fails at once.

    :param offset: the first offset to read (>= 0).
    :param return_values: ``"all"`` (at most 10,000 values), ``"last"`` or ``"none"``.
    :param timeout: seconds to wait for the next value (None: as long as it takes).
    :param progress_artifact: when the stream's values are numbers (0-100), show the last one in a
        Prefect progress artifact (created once, then updated).
    """
    read = StreamRead(workflow_id, key, offset, return_values, timeout, progress_artifact)
    return await read_stream_values(database, read, logger=get_run_logger())


@task(name="read-dbos-stream", cache_policy=NO_CACHE)
def read_stream(
    database: DBOSSystemDatabase,
    workflow_id: str,
    key: str,
    *,
    offset: int = 0,
    return_values: str = "all",
    timeout: float | None = None,
    progress_artifact: bool = True,
) -> Any:
    """Sync twin of :func:`aread_stream` (same parameters)."""
    read = StreamRead(workflow_id, key, offset, return_values, timeout, progress_artifact)
    return run_coro_as_sync(read_stream_values(database, read, logger=get_run_logger()))
