"""How an ended DBOS workflow becomes a task result or a task failure (docs/architecture.md, "The two-engine contract").

Shared by operators and sensors in sync and deferred mode, so both modes decide alike and fail
closed: an unknown status never becomes success. The caller reads (the hook's
``require_workflow`` and ``value_reader``); this module decides. The sentences themselves are
:mod:`dbos_orchestrator.messages`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dbos_orchestrator.messages import ended_message
from dbos_orchestrator.status import FAILURE_STATUSES, SUCCESS_STATUSES, DBOSWorkflowStatus

from dbos_airflow.exceptions import DBOSWorkflowFailedError

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

    from dbos_orchestrator.store.values import ValueReader

__all__ = ["workflow_result"]


def workflow_result(
    status: dict[str, Any],
    reader: ValueReader,
    *,
    success_statuses: Collection[DBOSWorkflowStatus] = SUCCESS_STATUSES,
    failure_statuses: Collection[DBOSWorkflowStatus] = FAILURE_STATUSES,
    log: Callable[[str], Any] | None = None,
) -> Any:
    """The output of the ended workflow ``status`` describes, or an error naming its status, its own
    error and its id.

    :param status: the workflow's status dict (the hook's ``require_workflow``: a missing id has
        already failed there).
    :param reader: the connection's safe value reader (the hook's ``value_reader()``).
    :raises DBOSWorkflowFailedError: it ended in a failure status, or in one not counted as success.
    :param log: given, gets one line saying how the workflow ended (:func:`ended_message`).
    """
    workflow_id = status["workflow_id"]
    state = DBOSWorkflowStatus.parse(status["status"])
    if state in success_statuses:
        output = reader.output(workflow_id)
        if log is not None:
            log(ended_message(status, result=output))
        return output
    if state in failure_statuses or state.is_failure():
        error = reader.error_message(workflow_id)  # the output is not decoded: a failure is described
        if log is not None:
            log(ended_message(status, error=error))
        detail = f": {error}" if error else ""
        raise DBOSWorkflowFailedError(f"DBOS workflow ended {state.value}{detail} (workflow {workflow_id})")
    raise DBOSWorkflowFailedError(
        f"DBOS workflow ended {state.value}, which this task does not count as success (workflow {workflow_id})"
    )
