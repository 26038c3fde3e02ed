"""The DBOSSystemDatabase block's TLS and pooler fields (prefect_dbos/database.py), issue 29.

Against a private Postgres with ``ssl = on`` (dbos_testkit.tls_server, certificates made with
``openssl``) whose pg_hba.conf wants a client certificate over TLS and refuses TCP without TLS; the
tests' DBOS worker runs on it with a client certificate. The block gives the CA, the certificate and
the key as PEM text; the key is in none of the flow run's logs or artifacts, the URL, the repr, or errors.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from conftest import QUEUE, Worker
from dbos_testkit.tls_server import TLSServer, tls_server
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, LogFilter, LogFilterFlowRunId
from prefect.logging.handlers import APILogHandler
from pydantic import SecretStr, ValidationError

from prefect_dbos import (
    DBOSSystemDatabase,
    enqueue_workflow,
    enqueue_workflows,
    wait_for_workflow,
    wait_for_workflow_event,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from uuid import UUID

DATABASE = "prefect_tls_dbos_sys"


@pytest.fixture(scope="module")
def tls_block(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DBOSSystemDatabase, TLSServer]]:
    with tls_server(tmp_path_factory.mktemp("tls"), DATABASE) as tls:
        worker = Worker(tls.url("postgres", **tls.client_certificate_query()))
        try:
            worker.wait_for("WORKER READY", 90)
            pem = tls.client_certificate_pem()
            block = DBOSSystemDatabase(
                host="127.0.0.1",
                port=tls.port,
                username="postgres",
                database=DATABASE,
                sslmode="verify-full",
                sslrootcert=pem["sslrootcert"],
                sslcert=pem["sslcert"],
                sslkey=SecretStr(pem["sslkey"]),
            )
            yield block, tls
        finally:
            worker.stop()


async def _kept_by_prefect(flow_run_id: UUID) -> list[str]:
    """The flow run's log lines and artifacts (theirs and their tasks'), as text."""
    await APILogHandler.aflush()
    async with get_client() as client:
        logs = await client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return [log.message for log in logs] + [f"{a.key} {a.description} {a.data}" for a in artifacts]


def test_tasks_and_waits_over_verify_full_with_a_client_certificate(tls_block: Any) -> None:
    block, tls = tls_block

    @flow
    def tls_flow() -> dict[str, Any]:
        wid = enqueue_workflow(block, QUEUE, "wf_double", [21])
        setter = enqueue_workflow(block, QUEUE, "wf_set_event_later", ["k", "v", 1])
        bulk = enqueue_workflows(block, QUEUE, "wf_double", [[1], [2]])
        return {
            "result": wait_for_workflow(block, wid),
            "event": wait_for_workflow_event(block, setter, "k", timeout=60),
            "bulk": [wait_for_workflow(block, i) for i in bulk],
        }

    state = tls_flow(return_state=True)
    assert state.result() == {"result": 42, "event": "v", "bulk": [2, 4]}
    rows = tls.provider_connections()
    assert rows and all(ssl and version.startswith("TLSv1.") for _, ssl, version, _ in rows), rows
    kept = asyncio.run(_kept_by_prefect(state.state_details.flow_run_id))
    assert any("wf_double" in text for text in kept), kept  # the sweep has the summaries to look at
    key_lines = tls.key_lines()
    assert [text[:300] for text in kept if any(line in text for line in key_lines)] == []


def test_key_material_stays_out_of_the_url_the_repr_and_errors(tls_block: Any) -> None:
    block, tls = tls_block
    key_line = block.sslkey.get_secret_value().splitlines()[1]
    url = block.client_kwargs()["system_database_url"]
    assert key_line not in url and key_line not in repr(block)
    wrong_ca = DBOSSystemDatabase(
        **{**block.model_dump(exclude={"sslrootcert", "sslkey"}), "sslrootcert": tls.other.ca.read_text()},
        sslkey=block.sslkey,
    )

    @flow
    def refused() -> str:
        return enqueue_workflow(wrong_ca, QUEUE, "wf_double", [1])

    state = refused(return_state=True)
    with pytest.raises(Exception, match="TLS verification failed") as failed:
        state.result()
    kept = [str(failed.value), repr(failed.value), *asyncio.run(_kept_by_prefect(state.state_details.flow_run_id))]
    assert any("TLS verification failed" in text for text in kept[2:]), kept  # the error reached the run's log
    assert [text[:300] for text in kept if any(line in text for line in tls.key_lines())] == []
    key_file = str(sa.make_url(url).query["sslkey"])
    assert oct(os.stat(key_file).st_mode & 0o777) == "0o600"
    with pytest.raises(ValidationError) as raised:
        DBOSSystemDatabase(system_database_url="postgresql://u:hunter2@h/d?sslmode=requir")
    assert "sslmode='requir' is not a TLS mode" in str(raised.value) and "hunter2" not in str(raised.value)
    with pytest.raises(ValidationError, match="sslmode"):
        DBOSSystemDatabase(host="h", database="d", sslmode="requir")  # type: ignore[arg-type]


def test_transaction_pooling_reaches_the_client_and_the_key() -> None:
    plain = DBOSSystemDatabase(host="h", database="d")
    pooled = DBOSSystemDatabase(host="h", database="d", transaction_pooling=True)
    assert pooled.client_kwargs()["transaction_pooling"] is True and plain.key() != pooled.key()
