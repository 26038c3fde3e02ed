"""The DBOSSystemDatabase block's TLS and pooler fields (prefect_dbos/database.py), issue 29.

Against a private Postgres with ``ssl = on`` (dbos_testkit.private_postgres, certificates made
with ``openssl`` by dbos_testkit.tls_certs) whose pg_hba.conf wants a client certificate over
TLS and refuses TCP without TLS; the tests' DBOS worker runs on it with a client certificate.
The block gives the CA, the certificate and the key as PEM text.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from conftest import QUEUE, Worker
from dbos_testkit.private_postgres import PrivatePostgres
from dbos_testkit.tls_certs import make_certificates
from prefect import flow
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

DATABASE = "prefect_tls_dbos_sys"


@pytest.fixture(scope="module")
def tls_block(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DBOSSystemDatabase, PrivatePostgres]]:
    base = tmp_path_factory.mktemp("tls")
    certs = make_certificates(base / "ca")
    pg = PrivatePostgres(tls=certs, hba=["hostssl all postgres 127.0.0.1/32 cert", "host all all 127.0.0.1/32 reject"])
    pg.start()
    try:
        pg.url(DATABASE)
        query = f"sslmode=verify-full&sslrootcert={certs.ca}&sslcert={certs.client_cert}&sslkey={certs.client_key}"
        worker = Worker(f"postgresql://postgres@127.0.0.1:{pg.port}/{DATABASE}?{query}")
        try:
            worker.wait_for("WORKER READY", 90)
            block = DBOSSystemDatabase(
                host="127.0.0.1",
                port=pg.port,
                username="postgres",
                database=DATABASE,
                sslmode="verify-full",
                sslrootcert=certs.ca.read_text(),
                sslcert=certs.client_cert.read_text(),
                sslkey=SecretStr(certs.client_key.read_text()),
            )
            yield block, pg
        finally:
            worker.stop()
    finally:
        pg.close()


def test_tasks_and_waits_over_verify_full_with_a_client_certificate(tls_block: Any) -> None:
    block, pg = tls_block

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

    assert tls_flow() == {"result": 42, "event": "v", "bulk": [2, 4]}
    with pg.admin() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT s.ssl, coalesce(s.version, '') FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) "
                "WHERE a.datname = :db AND a.client_addr IS NOT NULL"
            ),
            {"db": DATABASE},
        ).all()
    assert rows and all(ssl and version.startswith("TLSv1.") for ssl, version in rows), rows


def test_key_material_stays_out_of_the_url_the_repr_and_errors(tls_block: Any) -> None:
    block, _ = tls_block
    key_line = block.sslkey.get_secret_value().splitlines()[1]
    url = block.client_kwargs()["system_database_url"]
    assert key_line not in url and key_line not in repr(block)
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
