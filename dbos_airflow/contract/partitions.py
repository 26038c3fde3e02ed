"""A partitioned DAG run's partition key becomes the enqueued workflow's ``queue_partition_key``.

Airflow 3.3 gives a task its DAG run's partition key as ``context["partition_key"]`` (None or
absent for a run that has none). The one rule, for every enqueue operator
(:meth:`~dbos_airflow.operators.dbos.DBOSBaseEnqueueOperator._options`; docs/operations.md,
"Partitioned DAG runs and partitioned queues"):

* a ``queue_partition_key`` given to the operator (non-empty once rendered) wins;
* else, with ``partition_key_from_run`` (default True), the run's non-empty key is used;
* except when the workflow has a ``deduplication_id``: DBOS does not support deduplication on
  partitioned queues, so no key is added and an INFO line says why.

The key is added whatever the queue's configuration: DBOS 3.4 dequeues a non-partitioned queue
without looking at partition keys (the key is then only recorded on the workflow), while a
partitioned queue never dequeues a workflow without one. Forks and resumes are not enqueues: they
keep the workflow's own key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from dbos_orchestrator.exceptions import DBOSOptionsError
from dbos_orchestrator.forms import as_text

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["check_from_run", "queue_partition_key"]


class _Log(Protocol):
    def info(self, msg: Any, /, *args: Any) -> Any: ...


def check_from_run(value: Any) -> bool:
    """``partition_key_from_run`` as given to an operator: a bool, else a clear error."""
    if not isinstance(value, bool):
        raise DBOSOptionsError(f"partition_key_from_run must be True or False, got {value!r}")
    return value


def queue_partition_key(
    context: Mapping[str, Any],
    *,
    given: Any,
    from_run: bool,
    deduplication_id: Any,
    log: _Log,
) -> Any:
    """The ``queue_partition_key`` an enqueue writes.

    :param context: the task's context (``partition_key``: the DAG run's key, if any).
    :param given: the operator's rendered ``queue_partition_key`` (None or empty: not given).
    :param from_run: the operator's ``partition_key_from_run``.
    :param deduplication_id: the workflow's rendered ``deduplication_id`` (None or empty: none).
    :param log: the task's logger, for the line saying which key was used or why none was.
    """
    if given is not None and as_text(given) != "":
        return given
    run_key = context.get("partition_key")
    if not from_run or not isinstance(run_key, str) or not run_key:
        return given
    if deduplication_id is not None and as_text(deduplication_id) != "":
        log.info(
            "The DAG run's partition key %s is not the workflow's queue_partition_key: the task has a "
            "deduplication_id, and DBOS does not support deduplication on partitioned queues",
            run_key,
        )
        return given
    log.info("The workflow's queue_partition_key is the DAG run's partition key %s", run_key)
    return run_key
