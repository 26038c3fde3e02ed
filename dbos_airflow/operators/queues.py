"""Operators for DBOS' database-backed queues: register or update one, list them with their
backlog, delete one. Thin over :mod:`dbos_orchestrator.operations.queues` (docs/operations.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dbos_orchestrator.forms import as_bool, as_json, as_text
from dbos_orchestrator.operations.queues import delete_queue, list_queues, register_queue

from dbos_airflow.operators.base import DBOSBaseOperator, dbos_template_fields

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

__all__ = ["DBOSDeleteQueueOperator", "DBOSListQueuesOperator", "DBOSRegisterQueueOperator", "queue_lines"]


def queue_lines(queues: list[dict[str, Any]]) -> list[str]:
    """One log line per queue: its limits and its backlog by status."""
    out = []
    for q in queues:
        limits = ", ".join(
            f"{k}={q[k]}"
            for k in ("global_concurrency", "worker_concurrency", "partition_concurrency", "limiter")
            if q.get(k) is not None
        )
        backlog = ", ".join(f"{s} {n}" for s, n in q.get("backlog", {}).items())
        out.append(f"{q['name']}: {limits or 'no limits'}" + (f"; backlog {backlog}" if backlog else ""))
    return out


class DBOSRegisterQueueOperator(DBOSBaseOperator):
    """
    Create a DBOS queue or update its limits (idempotent: a retry writes the same row). Every worker of
    its application picks a new queue up within about a second. Returns the queue's settings.

    :param queue_name: the queue (templated).
    :param global_concurrency: most workflows of the queue running at once across all workers.
    :param worker_concurrency: most running at once on one worker.
    :param partition_concurrency: most running at once per partition (makes the queue partitioned).
    :param partition_worker_concurrency: most running at once per partition on one worker.
    :param limiter: ``{"limit": n, "period": seconds}``: at most n starts per rolling period.
    :param partition_limiter: the same, per partition.
    :param polling_interval_sec: how often workers look for work on it (default 1 s).
    :param application_name: the application that owns it (default: the connection's).
    :param dbos_conn_id: the ``dbos`` connection.
    """

    template_fields: Sequence[str] = dbos_template_fields(
        "queue_name",
        "global_concurrency",
        "worker_concurrency",
        "partition_concurrency",
        "partition_worker_concurrency",
        "limiter",
        "partition_limiter",
    )

    def __init__(
        self,
        *,
        queue_name: str,
        global_concurrency: int | str | None = None,
        worker_concurrency: int | str | None = None,
        partition_concurrency: int | str | None = None,
        partition_worker_concurrency: int | str | None = None,
        limiter: dict[str, Any] | str | None = None,
        partition_limiter: dict[str, Any] | str | None = None,
        polling_interval_sec: float | None = None,
        application_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.queue_name = queue_name
        self.global_concurrency = global_concurrency
        self.worker_concurrency = worker_concurrency
        self.partition_concurrency = partition_concurrency
        self.partition_worker_concurrency = partition_worker_concurrency
        self.limiter = limiter
        self.partition_limiter = partition_limiter
        self.polling_interval_sec = polling_interval_sec
        self.application_name = application_name

    def execute_dbos(self, context: Context) -> dict[str, Any]:
        def rate(name: str, value: Any) -> Any:
            return as_json(name, value, dict) if isinstance(value, str) and value.strip() else (value or None)

        def limit(value: Any) -> Any:
            return None if value in (None, "", "None") else value

        queue = register_queue(
            self.hook.get_client(),
            as_text(self.queue_name),
            global_concurrency=limit(self.global_concurrency),
            worker_concurrency=limit(self.worker_concurrency),
            partition_concurrency=limit(self.partition_concurrency),
            partition_worker_concurrency=limit(self.partition_worker_concurrency),
            limiter=rate("limiter", self.limiter),
            partition_limiter=rate("partition_limiter", self.partition_limiter),
            polling_interval_sec=self.polling_interval_sec,
            application_name=self.application_name,
        )
        self.log.info("Registered DBOS queue %s", queue_lines([queue])[0])
        return queue


class DBOSListQueuesOperator(DBOSBaseOperator):
    """
    List every registered DBOS queue with its limits and its backlog (ENQUEUED, DELAYED, PENDING
    counts), one log line each; returns the list.

    :param dbos_conn_id: the ``dbos`` connection.
    """

    def execute_dbos(self, context: Context) -> list[dict[str, Any]]:
        queues = list_queues(self.hook.get_client())
        for line in queue_lines(queues) or ["no DBOS queue is registered"]:
            self.log.info("%s", line)
        return queues


class DBOSDeleteQueueOperator(DBOSBaseOperator):
    """
    Delete a DBOS queue. Its active workflows would never run again, so a queue that still holds
    any is refused unless ``force``. Idempotent: a queue already gone is logged, not an error.
    Returns whether this try deleted it.

    :param queue_name: the queue (templated).
    :param force: delete it even with active workflows on it (templated).
    :param dbos_conn_id: the ``dbos`` connection.
    """

    template_fields: Sequence[str] = dbos_template_fields("queue_name", "force")

    def __init__(self, *, queue_name: str, force: bool | str = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.queue_name = queue_name
        self.force = force

    def execute_dbos(self, context: Context) -> bool:
        name = as_text(self.queue_name)
        deleted = delete_queue(self.hook.get_client(), name, force=as_bool("force", self.force))
        self.log.info("DBOS queue %s %s", name, "deleted" if deleted else "does not exist (already deleted?)")
        return deleted
