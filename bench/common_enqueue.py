"""Shared by P1 and P2: the plain client, options, and cleanup of the unpolled queue."""

from __future__ import annotations

from typing import Any

from bench.harness import Env

UNPOLLED_QUEUE = "bench_nobody"  # bench/app.py never polls it: enqueued rows just sit there


def plain_client(env: Env) -> Any:
    import dbos

    return dbos.DBOSClient(system_database_url=env.system_database_url)


def portable_options() -> dict[str, Any]:
    from dbos import WorkflowSerializationFormat

    return {
        "workflow_name": "noop",
        "queue_name": UNPOLLED_QUEUE,
        "serialization_type": WorkflowSerializationFormat.PORTABLE,
    }


def clean(env: Env) -> None:
    """Empty the workflow tables (a fresh bench database: only the benchmark's rows are there), so
    every round starts from the same, bloat-free table: DELETE would leave dead index entries."""
    env.sql("TRUNCATE dbos.workflow_status, dbos.workflow_input CASCADE")
