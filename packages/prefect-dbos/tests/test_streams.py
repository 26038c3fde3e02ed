"""Streams from Prefect (packages/prefect-dbos/README.md, "Streams"): aread_stream / read_stream log
each value and return them, await_workflow(stream_to_log=) logs a stream while it waits, a numeric
stream drives a progress artifact; bad input fails naming it. Real DBOS worker (tests/dbos_app.py
``wf_stream``), Postgres and Prefect test server."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from conftest import QUEUE
from dbos_orchestrator.exceptions import DBOSOptionsError, DBOSUnsafeValueError, DBOSWorkflowNotFoundError
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from prefect_dbos import aenqueue_workflow, aread_stream, await_workflow, read_stream
from prefect_dbos.streams import progress_artifact_key

LINE = re.compile(r"stream '([^']+)' #(\d+): ")


def _offsets(caplog: pytest.LogCaptureFixture, key: str) -> list[int]:
    found = []
    for record in caplog.records:
        m = LINE.search(record.getMessage())
        if m and m.group(1) == key:
            found.append(int(m.group(2)))
    return found


async def test_aread_stream_logs_each_value_once_and_drives_a_progress_artifact(
    database: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)

    @flow
    async def follow() -> tuple[str, Any]:
        wid = await aenqueue_workflow(database, QUEUE, "wf_stream", ["pct", 40, 0.02], {"numeric": True})
        return wid, await aread_stream(database, wid, "pct")

    wid, values = await follow()
    assert values == [100 * (i + 1) / 40 for i in range(40)]
    assert _offsets(caplog, "pct") == list(range(40))
    assert any("40 value(s) read; the stream was closed" in r.getMessage() for r in caplog.records)
    async with get_client() as client:
        (artifact,) = await client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[progress_artifact_key(wid, "pct")]))
        )
    assert artifact.type == "progress" and float(artifact.data) == 100.0  # type: ignore[arg-type]


def test_read_stream_sync_twin_returns_the_last_value_and_fails_a_failed_workflow(database: Any) -> None:
    @flow
    def sync_flow() -> Any:
        from prefect_dbos import enqueue_workflow

        ok = enqueue_workflow(database, QUEUE, "wf_stream", ["k", 5, 0.0])
        last = read_stream(database, ok, "k", return_values="last")
        bad = enqueue_workflow(database, QUEUE, "wf_stream", ["k", 2, 0.0], {"fail": True})
        failed = read_stream(database, bad, "k", return_state=True)
        return last, failed

    last, failed = sync_flow()
    assert last == {"i": 4}
    with pytest.raises(Exception, match=r"ended ERROR: AppError: stream k failed after 2 values"):
        failed.result()


async def test_await_workflow_logs_the_stream_while_it_waits(database: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)

    @flow
    async def waiting() -> Any:
        wid = await aenqueue_workflow(database, QUEUE, "wf_stream", ["log", 30, 0.02])
        return await await_workflow(database, wid, stream_to_log="log")

    assert await waiting() == 30
    assert _offsets(caplog, "log") == list(range(30))


async def test_bad_input_fails_naming_it(database: Any) -> None:
    @flow
    async def bad(workflow_id: str, key: str, offset: int, returned: str = "all") -> Any:
        return await aread_stream(database, workflow_id, key, offset=offset, return_values=returned)

    with pytest.raises(DBOSOptionsError, match="offset must be >= 0"):
        await bad("w", "k", -1)
    with pytest.raises(DBOSOptionsError, match="return_values must be one of all, last, none"):
        await bad("w", "k", 0, "first")
    with pytest.raises(DBOSWorkflowNotFoundError, match="no-such-stream-workflow"):
        await bad("no-such-stream-workflow", "k", 0)

    @flow
    async def pickled() -> Any:
        wid = await aenqueue_workflow(database, QUEUE, "wf_stream_pickled", ["p"])
        return await aread_stream(database, wid, "p")

    with pytest.raises(
        DBOSUnsafeValueError, match="stored as 'py_pickle'.*allow_pickle=True on the DBOSSystemDatabase"
    ):
        await pickled()
