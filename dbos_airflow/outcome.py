"""How a waited-on DBOS workflow or event becomes a task result or a task failure.

Shared by operators and sensors in sync and deferred mode, so both modes decide alike and
fail closed: an unknown status or a malformed trigger event never becomes success.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowException

from dbos_airflow.status import DBOSWorkflowStatus
from dbos_airflow.triggers.dbos import (
    ENDED_WITHOUT_EVENT,
    ERROR,
    EVENT_PUBLISHED,
    NOT_FOUND_EVENT,
    TIMEOUT,
    WORKFLOW_ENDED,
)

if TYPE_CHECKING:
    from collections.abc import Collection

    from dbos_airflow.hooks.dbos import DBOSHook

EVENT_KINDS = frozenset({WORKFLOW_ENDED, EVENT_PUBLISHED, ENDED_WITHOUT_EVENT, NOT_FOUND_EVENT, TIMEOUT, ERROR})
SUCCESS_STATUSES = ("SUCCESS",)
FAILURE_STATUSES = ("ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED")


class DBOSTriggerEventError(AirflowException):
    """A trigger event that is missing or malformed."""


def validate_trigger_event(event: Any, expected_workflow_id: str | None = None) -> dict[str, Any]:
    """Return the event if it is well-formed, else raise (fail closed)."""
    if event is None:
        raise DBOSTriggerEventError("Trigger error: event is None")
    if not isinstance(event, dict) or event.get("kind") not in EVENT_KINDS:
        raise DBOSTriggerEventError(f"Unexpected trigger event: {event!r}")
    if not event.get("workflow_id") or (expected_workflow_id and event["workflow_id"] != expected_workflow_id):
        raise DBOSTriggerEventError(f"Trigger event for the wrong workflow: {event!r}")
    if event["kind"] == WORKFLOW_ENDED:
        DBOSWorkflowStatus.parse(str(event.get("status")))
    return event


def not_found_message(workflow_id: str, hook: DBOSHook) -> str:
    return f"no DBOS workflow with id {workflow_id!r} in {hook.get_client().target}"


def still_waiting_message(status: dict[str, Any], waited: float | None) -> str:
    """Why a wait ran out, with the likely causes when the workflow was never picked up."""
    wid, state = status["workflow_id"], status["status"]
    after = f" after {waited:.0f}s" if waited is not None else ""
    message = f"DBOS workflow {wid} is still {state}{after}"
    if state in ("ENQUEUED", "DELAYED"):
        message += (
            ": no DBOS worker picked it up. Likely causes: no worker is running for queue "
            f"{status.get('queue_name')!r}, the queue name is wrong, or app_version "
            f"{status.get('app_version')!r} matches no running application version"
        )
    elif state == "PENDING" and not status.get("executor_id"):
        message += ": it was never started; check that workflow_name " f"{status.get('name')!r} is registered"
    elif state == "PENDING":
        message += (
            f" on executor {status['executor_id']!r}; if it never progresses, check that workflow "
            f"{status.get('name')!r} is registered in that application"
        )
    return message


def workflow_result(
    hook: DBOSHook,
    workflow_id: str,
    *,
    success_statuses: Collection[str] = SUCCESS_STATUSES,
    failure_statuses: Collection[str] = FAILURE_STATUSES,
) -> Any:
    """The output of an ended workflow, or an exception naming its id, status and own error."""
    status = hook.get_workflow_status(workflow_id, load_output=True)
    if status is None:
        raise AirflowException(not_found_message(workflow_id, hook))
    state = DBOSWorkflowStatus.parse(status["status"]).value
    if state in success_statuses:
        return status.get("output")
    if state in failure_statuses or DBOSWorkflowStatus(state).is_failure():
        detail = f": {status['error']}" if status.get("error") else ""
        raise AirflowException(f"DBOS workflow {workflow_id} ended {state}{detail}")
    raise AirflowException(f"DBOS workflow {workflow_id} ended {state}, which is not a success status here")


def event_result(event: dict[str, Any], hook: DBOSHook, expected_value: Any = None) -> Any:
    """The value of a published-event trigger event, or an exception saying why there is none."""
    wid, key = event["workflow_id"], event.get("key")
    kind = event["kind"]
    if kind == EVENT_PUBLISHED:
        return event.get("value")
    if kind == ENDED_WITHOUT_EVENT:
        if "value" in event:
            raise AirflowException(
                f"DBOS workflow {wid} ended {event.get('status')} with event {key!r}={event['value']!r}, "
                f"not the expected {expected_value!r}"
            )
        raise AirflowException(f"DBOS workflow {wid} ended {event.get('status')} without publishing event {key!r}")
    raise_for_event(event, hook)
    raise DBOSTriggerEventError(f"Unexpected trigger event for an event wait: {event!r}")


def raise_for_event(event: dict[str, Any], hook: DBOSHook) -> None:
    """Raise for the kinds every wait shares: not found, error (timeouts are the caller's)."""
    if event["kind"] == NOT_FOUND_EVENT:
        raise AirflowException(not_found_message(event["workflow_id"], hook))
    if event["kind"] == ERROR:
        raise AirflowException(f"Waiting for DBOS workflow {event['workflow_id']} failed: {event.get('message')}")
