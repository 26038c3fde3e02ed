"""The trigger-event contract: what a DBOS trigger yields and what ``execute_complete`` accepts.

A trigger yields exactly one payload built by :func:`trigger_event_payload`; the operator or
sensor that deferred passes it to :func:`validate_trigger_event` before anything else. The
validator fails closed: an unknown kind, a missing or foreign workflow id, or an unknown status
never becomes success. No Airflow import (the payload is a plain JSON dict).

=====================  ======================================  ===============================
kind                   extra keys                              meaning
=====================  ======================================  ===============================
``workflow_ended``     ``status``                              the workflow left the active set
``event_published``    ``key``, ``value``                      the awaited event is there
``ended_without_event``  ``key``, ``status``, optional ``value``  ended before publishing it
``not_found``          (``key``)                               no workflow with that id
``timeout``            (``key``)                               the wait's own deadline passed
``error``              ``message`` (``key``)                   the wait itself failed
=====================  ======================================  ===============================
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from dbos_airflow.exceptions import DBOSTriggerEventError
from dbos_airflow.status import DBOSWorkflowStatus

__all__ = ["TriggerEventKind", "trigger_event_payload", "validate_trigger_event"]


class TriggerEventKind(str, Enum):
    """The ``kind`` of a DBOS trigger event."""

    WORKFLOW_ENDED = "workflow_ended"
    EVENT_PUBLISHED = "event_published"
    ENDED_WITHOUT_EVENT = "ended_without_event"
    NOT_FOUND = "not_found"
    TIMEOUT = "timeout"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


# Keys each kind must carry besides ``kind`` and ``workflow_id``.
_REQUIRED: dict[TriggerEventKind, tuple[str, ...]] = {
    TriggerEventKind.WORKFLOW_ENDED: ("status",),
    TriggerEventKind.EVENT_PUBLISHED: ("key", "value"),
    TriggerEventKind.ENDED_WITHOUT_EVENT: ("key", "status"),
    TriggerEventKind.NOT_FOUND: (),
    TriggerEventKind.TIMEOUT: (),
    TriggerEventKind.ERROR: ("message",),
}


def trigger_event_payload(kind: TriggerEventKind, workflow_id: str, **payload: Any) -> dict[str, Any]:
    """The JSON payload of one trigger event (``status`` is stored as its string)."""
    if isinstance(payload.get("status"), DBOSWorkflowStatus):
        payload["status"] = payload["status"].value
    return {"kind": kind.value, "workflow_id": workflow_id, **payload}


def validate_trigger_event(event: Any, expected_workflow_id: str | None) -> dict[str, Any]:
    """The event, with ``kind`` as a :class:`TriggerEventKind`, if it is well-formed; else raise.

    :param expected_workflow_id: the workflow the task deferred on; an event for another one
        (or without one) is refused. ``None`` only where the task cannot know it.
    """
    if event is None:
        raise DBOSTriggerEventError("DBOS trigger returned no event (None); refusing to treat it as success")
    if not isinstance(event, dict):
        raise DBOSTriggerEventError(f"DBOS trigger event must be a dict, got {type(event).__name__}: {event!r}")
    try:
        kind = TriggerEventKind(event.get("kind"))
    except ValueError:
        kind_text = event.get("kind")
        raise DBOSTriggerEventError(f"DBOS trigger event has an unknown kind {kind_text!r}: {event!r}") from None
    workflow_id = event.get("workflow_id")
    if not workflow_id or not isinstance(workflow_id, str):
        raise DBOSTriggerEventError(f"DBOS trigger event names no workflow: {event!r}")
    if expected_workflow_id is not None and workflow_id != expected_workflow_id:
        raise DBOSTriggerEventError(
            f"DBOS trigger event is for workflow {workflow_id!r}, not the awaited {expected_workflow_id!r}: {event!r}"
        )
    missing = [k for k in _REQUIRED[kind] if k not in event]
    if missing:
        raise DBOSTriggerEventError(f"DBOS trigger event of kind {kind.value!r} lacks {', '.join(missing)}: {event!r}")
    if "status" in event:
        try:
            DBOSWorkflowStatus.parse(event["status"])
        except ValueError as exc:
            raise DBOSTriggerEventError(f"DBOS trigger event: {exc}") from None
    return {**event, "kind": kind}
