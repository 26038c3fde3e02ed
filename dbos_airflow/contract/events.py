"""The trigger-event contract: what a DBOS trigger yields, and which task result each event becomes.

A trigger yields exactly one payload built by :func:`trigger_event_payload`; the operator or
sensor that deferred passes it to :func:`event_outcome` before anything else, which validates it
(:func:`validate_trigger_event`, fail closed: an unknown kind, a missing or foreign workflow id,
or an unknown status never becomes success) and turns it into the task's result or failure.

=======================  ==========================================  ====================================
kind                     extra keys                                  task result
=======================  ==========================================  ====================================
``workflow_ended``       ``status``                                  the outcome of the ended workflow
                                                                     (:mod:`dbos_orchestrator.outcome`)
``event_published``      ``key``, ``value``                          the event's value
``ended_without_event``  ``key``, ``status``, optional ``value``     fails: ended without (that value of)
                                                                     the event
``not_found``            (``key``)                                   fails: no workflow with that id
``batch_ended``          ``batch``, ``counts``                       the outcome of the batch (every item
                                                                     ended, or one failed with fail_fast):
                                                                     :func:`dbos_orchestrator.outcome.batch_result`;
                                                                     ``workflow_id`` is the batch's key
``queue_below``          ``queue_name``, ``backlog``                 the queue's backlog by status (at most
                                                                     the sensor's ``max_backlog``);
                                                                     ``workflow_id`` is ``queue <name>``
``stream_ended``         ``key``, ``offset``, ``closed``,            the stream's values (closed, or the
                         ``status``                                  workflow stopped: an ended workflow
                                                                     by the outcome rule first)
``timeout``              (``key``)                                   the task's own timeout (an operator
                                                                     cancels: :mod:`~dbos_airflow.contract.kill`)
``error``                ``message`` (``key``)                       fails: the wait itself failed
any kind the task does not accept                                    fails
=======================  ==========================================  ====================================
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Any

from dbos_orchestrator.messages import event_missing_message, workflow_not_found_message
from dbos_orchestrator.status import DBOSWorkflowStatus

from dbos_airflow.exceptions import DBOSTriggerEventError, DBOSWorkflowFailedError, DBOSWorkflowNotFoundError

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

    from dbos_airflow.hooks.dbos import DBOSHook

__all__ = ["TriggerEventKind", "event_outcome", "poke_event", "trigger_event_payload", "validate_trigger_event"]


class TriggerEventKind(str, Enum):
    """The ``kind`` of a DBOS trigger event."""

    WORKFLOW_ENDED = "workflow_ended"
    EVENT_PUBLISHED = "event_published"
    ENDED_WITHOUT_EVENT = "ended_without_event"
    BATCH_ENDED = "batch_ended"
    QUEUE_BELOW = "queue_below"
    STREAM_ENDED = "stream_ended"
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
    TriggerEventKind.BATCH_ENDED: ("batch", "counts"),
    TriggerEventKind.QUEUE_BELOW: ("queue_name", "backlog"),
    TriggerEventKind.STREAM_ENDED: ("key", "offset", "closed", "status"),
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


def event_outcome(
    event: Any,
    *,
    expected_workflow_id: str | None,
    accepted: Collection[TriggerEventKind],
    task: str,
    target: Callable[[], str],
    expected_value: Any = None,
) -> dict[str, Any]:
    """The validated event when it is one the task completes on (``workflow_ended``,
    ``event_published``) or its ``timeout``; else the task's failure (the table above).

    :param accepted: the kinds the task completes on.
    :param task: the task's class name, for the refusal of a kind it does not accept.
    :param target: where the workflow was looked for (called only for ``not_found``).
    :param expected_value: the value an event sensor waited for (``ended_without_event``).
    """
    event = validate_trigger_event(event, expected_workflow_id)
    kind, workflow_id = event["kind"], event["workflow_id"]
    if kind is TriggerEventKind.TIMEOUT:
        return event
    if kind is TriggerEventKind.NOT_FOUND:
        raise DBOSWorkflowNotFoundError(workflow_not_found_message(workflow_id, target()))
    if kind is TriggerEventKind.ERROR:
        raise DBOSTriggerEventError(f"Waiting for DBOS workflow failed: {event['message']} (workflow {workflow_id})")
    if kind not in accepted:
        raise DBOSTriggerEventError(f"{task} cannot complete on a {kind.value!r} event: {event!r}")
    if kind is TriggerEventKind.ENDED_WITHOUT_EVENT:
        raise DBOSWorkflowFailedError(
            event_missing_message(workflow_id, event["key"], event["status"], event.get("value"), expected_value)
        )
    return event


def poke_event(
    hook: DBOSHook, workflow_id: str, key: str, expected_value: Any = None
) -> tuple[bool, Any, DBOSWorkflowStatus]:
    """One look in a worker at event ``key``: ``(published, value, status)``, the same rule as a
    trigger's ``event_published`` / ``ended_without_event`` / ``not_found``.

    The status is read first: a workflow seen terminal can publish nothing after it, so an event
    still missing then (or, with ``expected_value``, a different value) fails the task
    (:class:`DBOSWorkflowFailedError`); a missing workflow raises :class:`DBOSWorkflowNotFoundError`.
    """
    status = DBOSWorkflowStatus.parse(hook.require_workflow(workflow_id)["status"])
    published, value = hook.value_reader().event(workflow_id, key)
    if published and (expected_value is None or value == expected_value):
        return True, value, status
    if status.is_terminal():
        raise DBOSWorkflowFailedError(event_missing_message(workflow_id, key, status, value, expected_value))
    return False, None, status
