"""How an ended DBOS workflow becomes a task result or a task failure (docs/architecture.md, "The two-engine contract").

The rules are the core's (:func:`dbos_orchestrator.outcome.workflow_result` and
:func:`~dbos_orchestrator.outcome.batch_result`, which prefect-dbos uses too); this module binds
them to Airflow: a failure raises :class:`dbos_airflow.exceptions.DBOSWorkflowFailedError`, which
also fails the task instance.
Shared by operators and sensors in sync and deferred mode, so both modes decide alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dbos_orchestrator import outcome as _core
from dbos_orchestrator.status import FAILURE_STATUSES, SUCCESS_STATUSES, DBOSWorkflowStatus

from dbos_airflow.exceptions import DBOSWorkflowFailedError

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Sequence

    from dbos_orchestrator.store.values import ValueReader
    from dbos_orchestrator.waiting.batch import BatchCounts

__all__ = ["batch_result", "workflow_result"]


def workflow_result(
    status: dict[str, Any],
    reader: ValueReader,
    *,
    success_statuses: Collection[DBOSWorkflowStatus] = SUCCESS_STATUSES,
    failure_statuses: Collection[DBOSWorkflowStatus] = FAILURE_STATUSES,
    log: Callable[[str], Any] | None = None,
) -> Any:
    """The output of the ended workflow, or :class:`DBOSWorkflowFailedError` naming its status, its
    own error and its id (:func:`dbos_orchestrator.outcome.workflow_result`).

    :param status: the workflow's status dict (the hook's ``require_workflow``).
    :param reader: the connection's safe value reader (the hook's ``value_reader()``).
    :param success_statuses: the statuses the task counts as success.
    :param failure_statuses: the statuses it counts as failure (besides every failure status).
    :param log: given, gets one line saying how the workflow ended.
    """
    return _core.workflow_result(
        status,
        reader,
        success_statuses=success_statuses,
        failure_statuses=failure_statuses,
        log=log,
        failed=DBOSWorkflowFailedError,
    )


def batch_result(
    counts: BatchCounts,
    failures: Sequence[tuple[int, str, str | None]],
    reader: ValueReader,
    *,
    fail_fast: bool = False,
    cancelled: int | None = None,
) -> None:
    """The failure policy of a batch (:func:`dbos_orchestrator.outcome.batch_result`, docs/fanout.md,
    "Failure policy"), failing the task instance.

    :raises DBOSWorkflowFailedError: an item ended in anything but success (or has no workflow).
    """
    _core.batch_result(
        counts, failures, reader, fail_fast=fail_fast, cancelled=cancelled, failed=DBOSWorkflowFailedError
    )
