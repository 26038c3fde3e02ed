"""One trace across Prefect and DBOS: a flow run traced by OpenTelemetry (a child process, see
tests/traced_flow.py) enqueues workflows on a DBOS worker exporting OTLP/HTTP to a receiver on
loopback; each workflow's root span must be the child of Prefect's own span of the enqueuing task run."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from conftest import Worker
from dbos_testkit.otlp_receiver import OTLPReceiver

if TYPE_CHECKING:
    from collections.abc import Iterator

    from dbos_testkit.otlp_receiver import ReceivedSpan

TESTS = Path(__file__).resolve().parent
SPAN_WAIT = 90


@pytest.fixture(scope="module")
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as found:
        yield found


@pytest.fixture(scope="module")
def traced_database_url(postgres_server_url: str, receiver: OTLPReceiver) -> Iterator[str]:
    """A DBOS worker exporting its spans to ``receiver``, on a system database of its own (dropped)."""
    server = sa.make_url(postgres_server_url)
    name = f"prefect_dbos_otel_{secrets.token_hex(4)}_dbos_sys"
    url = server.set(database=name).render_as_string(hide_password=False)
    worker = Worker(url, DBOS_TEST_OTLP_TRACES_ENDPOINT=receiver.endpoint)
    try:
        worker.wait_for("WORKER READY", 90)
        yield url
    finally:
        worker.stop()
        engine = sa.create_engine(server.set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


def _span_of(receiver: OTLPReceiver, workflow_id: str) -> ReceivedSpan:
    return receiver.wait_for_span(
        lambda s: s.service == "dbos-airflow-tests" and s.attributes.get("operationUUID") == workflow_id,
        SPAN_WAIT,
        f"of workflow {workflow_id}",
    )


def test_the_workflow_span_is_a_child_of_the_prefect_task_span(
    prefect_server: str, traced_database_url: str, receiver: OTLPReceiver
) -> None:
    env = {**os.environ, "PREFECT_API_URL": prefect_server}
    done = subprocess.run(
        [sys.executable, str(TESTS / "traced_flow.py"), traced_database_url, receiver.endpoint],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ids = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("IDS "))[4:])
    for workflow_id, task_name in [
        (ids["one"], "enqueue-dbos-workflow"),
        *((w, "enqueue-dbos-workflows") for w in ids["many"]),
    ]:
        span = _span_of(receiver, workflow_id)
        parent = receiver.wait_for_span(lambda s, p=span: s.span_id == p.parent_span_id, SPAN_WAIT, "parent")
        assert parent.service == "prefect" and parent.trace_id == span.trace_id
        assert parent.attributes.get("prefect.run.type") == "task" and parent.name.startswith(task_name)
    # The block's trace_url: the enqueuing task run links to the trace it shares with the workflow.
    asyncio.run(_check_trace_artifact(ids["one"], _span_of(receiver, ids["one"]).trace_id))


async def _check_trace_artifact(workflow_id: str, trace_id: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from prefect_dbos.links import artifact_key

    async with get_client() as client:
        key = artifact_key("trace", workflow_id)
        (artifact,) = await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    assert f"http://traces.example/{trace_id}" in str(artifact.data)
