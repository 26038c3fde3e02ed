"""The artifact writer (prefect_dbos/artifacts.py): it yields to wake-ups, reads a batch's data in one
call and writes every artifact to the Prefect API (the session's real test server)."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

import prefect_dbos.artifacts
from prefect_dbos.artifacts import BATCH_MAX, aflush_artifacts, pending_artifacts, write_later


async def _written(keys: list[str]) -> dict[str, str]:
    async with get_client() as client:
        found = await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys)))
    return {str(a.key): str(a.data) for a in found}


async def _drained(limit: float) -> float:
    """Seconds until nothing is queued (without a flush: the writer's own pace)."""
    started = time.monotonic()
    while pending_artifacts():
        assert time.monotonic() - started < limit, f"{pending_artifacts()} artifact(s) still queued after {limit} s"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def test_a_batch_reads_its_data_in_one_call_and_every_artifact_is_written() -> None:
    assert await aflush_artifacts(timeout=60)
    calls: list[list[str]] = []

    def fetch(ids: list[str]) -> dict[str, str]:
        calls.append(list(ids))
        return {i: f"value-{i}" for i in ids}

    token = secrets.token_hex(4)
    keys = [f"batch-{token}-{n}" for n in range(120)]
    for n, key in enumerate(keys):
        write_later("markdown", key, "a test artifact", lambda value: f"read: {value}", prefetch=("g", fetch, str(n)))
    assert await aflush_artifacts(timeout=120)
    assert await _written(keys) == {key: f"read: value-{n}" for n, key in enumerate(keys)}
    assert sorted(i for call in calls for i in call) == sorted(str(n) for n in range(120))
    assert max(len(c) for c in calls) <= BATCH_MAX and len(calls) <= 12, [len(c) for c in calls]


async def test_the_writer_waits_while_artifacts_keep_coming(monkeypatch: pytest.MonkeyPatch) -> None:
    """Artifacts queued every 0.1 s (waits ending) are held until none came for QUIET_SECONDS."""
    assert await aflush_artifacts(timeout=60)
    monkeypatch.setattr(prefect_dbos.artifacts, "QUIET_SECONDS", 5.0)
    token = secrets.token_hex(4)
    keys = [f"quiet-{token}-{n}" for n in range(10)]
    for key in keys:
        write_later("markdown", key, "a test artifact", lambda _: "held")
        await asyncio.sleep(0.1)
    assert pending_artifacts() == len(keys)  # none written while they kept coming
    waited = await _drained(60)
    assert waited >= 5.0 - 0.1 * len(keys) - 0.2, waited  # not before 5 s after the last one was queued
    assert set(await _written(keys)) == set(keys)


async def test_a_steady_stream_holds_an_artifact_at_most_max_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    assert await aflush_artifacts(timeout=60)
    monkeypatch.setattr(prefect_dbos.artifacts, "QUIET_SECONDS", 600.0)
    monkeypatch.setattr(prefect_dbos.artifacts, "MAX_DELAY_SECONDS", 1.0)
    key = f"delayed-{secrets.token_hex(4)}"
    write_later("markdown", key, "a test artifact", lambda _: "late but written")
    await _drained(60)
    written: dict[str, Any] = await _written([key])
    assert written == {key: "late but written"}
