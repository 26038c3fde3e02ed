"""How an ended DBOS workflow becomes a task result or a task failure, and what a wait that
ran out says.

Shared by operators and sensors in sync and deferred mode, so both modes decide alike and fail
closed: an unknown status never becomes success. Values are read through the hook's safe
reader (:mod:`dbos_airflow.values`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dbos_airflow.exceptions import DBOSWorkflowFailedError, DBOSWorkflowNotFoundError, workflow_not_found_message
from dbos_airflow.status import FAILURE_STATUSES, QUEUED_STATUSES, SUCCESS_STATUSES, DBOSWorkflowStatus

if TYPE_CHECKING:
    from collections.abc import Collection

    from dbos_airflow.hooks.dbos import DBOSHook


def still_waiting_message(status: dict[str, Any], waited: float | None) -> str:
    """Why a wait ran out: what the workflow is doing, the likely causes, then its id."""
    wid, state = status["workflow_id"], DBOSWorkflowStatus.parse(status["status"])
    after = f" after {waited:.0f}s" if waited is not None else ""
    name = status.get("name")
    if state in QUEUED_STATUSES:
        version = status.get("app_version")
        version_cause = (
            f", or no running application has app_version {version!r}" if version else " (app_version: any version)"
        )
        cause = (
            f": no DBOS worker picked it up from queue {status.get('queue_name')!r}. Likely causes: no worker is "
            f"running for that queue, the queue name is wrong, or workflow {name!r} is not registered{version_cause}"
        )
    elif state is DBOSWorkflowStatus.PENDING and not status.get("executor_id"):
        cause = f": it never started; check that workflow {name!r} is registered"
    elif state is DBOSWorkflowStatus.PENDING:
        cause = (
            f" on executor {status['executor_id']!r}; if it never progresses, check that workflow {name!r} is "
            "registered in that application"
        )
    else:
        cause = ""
    return f"Gave up waiting: DBOS workflow is still {state.value}{after}{cause} (workflow {wid})"


def workflow_result(
    hook: DBOSHook,
    workflow_id: str,
    *,
    success_statuses: Collection[DBOSWorkflowStatus] = SUCCESS_STATUSES,
    failure_statuses: Collection[DBOSWorkflowStatus] = FAILURE_STATUSES,
) -> Any:
    """The output of an ended workflow, or an error naming its status, its own error and its id.

    :raises DBOSWorkflowNotFoundError: no such workflow.
    :raises DBOSWorkflowFailedError: it ended in a failure status, or in one not counted as success.
    """
    status = hook.get_workflow_status(workflow_id)
    if status is None:
        raise DBOSWorkflowNotFoundError(workflow_not_found_message(workflow_id, hook.get_client().target))
    state = DBOSWorkflowStatus.parse(status["status"])
    if state in success_statuses:
        output, _ = hook.value_reader().output_and_error(workflow_id)
        return output
    if state in failure_statuses or state.is_failure():
        _, error = hook.value_reader().output_and_error(workflow_id)
        detail = f": {error}" if error else ""
        raise DBOSWorkflowFailedError(f"DBOS workflow ended {state.value}{detail} (workflow {workflow_id})")
    raise DBOSWorkflowFailedError(
        f"DBOS workflow ended {state.value}, which this task does not count as success (workflow {workflow_id})"
    )


def event_missing_message(workflow_id: str, key: str, status: Any, value: Any = None, expected: Any = None) -> str:
    """Why an event wait failed: the workflow ended without publishing (the expected value of) ``key``."""
    state = DBOSWorkflowStatus.parse(status).value
    if value is not None and expected is not None:
        return (
            f"DBOS workflow ended {state} with event {key!r}={value!r}, not the expected {expected!r} "
            f"(workflow {workflow_id})"
        )
    return f"DBOS workflow ended {state} without publishing event {key!r} (workflow {workflow_id})"
