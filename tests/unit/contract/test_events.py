"""The trigger-event contract (dbos_airflow/contract/events.py): payloads are JSON, validated, and fail closed."""

from __future__ import annotations

import pytest
from dbos_orchestrator.status import (
    DBOSWorkflowStatus,
)

from dbos_airflow.contract.events import TriggerEventKind, trigger_event_payload, validate_trigger_event
from dbos_airflow.exceptions import DBOSTriggerEventError


def test_a_built_payload_validates_and_keeps_its_fields() -> None:
    payload = trigger_event_payload(TriggerEventKind.WORKFLOW_ENDED, "w1", status=DBOSWorkflowStatus.SUCCESS)
    assert payload == {"kind": "workflow_ended", "workflow_id": "w1", "status": "SUCCESS"}  # JSON only
    event = validate_trigger_event(payload, "w1")
    assert event["kind"] is TriggerEventKind.WORKFLOW_ENDED and event["status"] == "SUCCESS"


@pytest.mark.parametrize(
    ("event", "expected", "message"),
    [
        (None, "w", "no event"),
        ("workflow_ended", "w", "must be a dict"),
        ({"kind": "done", "workflow_id": "w"}, "w", "unknown kind 'done'"),
        ({"kind": "timeout"}, "w", "names no workflow"),
        ({"kind": "timeout", "workflow_id": "other"}, "w", "for workflow 'other', not the awaited 'w'"),
        ({"kind": "workflow_ended", "workflow_id": "w"}, "w", "lacks status"),
        ({"kind": "workflow_ended", "workflow_id": "w", "status": "FINE"}, "w", "unknown DBOS workflow status 'FINE'"),
        ({"kind": "event_published", "workflow_id": "w", "key": "k"}, "w", "lacks value"),
        ({"kind": "error", "workflow_id": "w"}, "w", "lacks message"),
    ],
)
def test_malformed_or_foreign_events_fail_closed(event: object, expected: str, message: str) -> None:
    with pytest.raises(DBOSTriggerEventError, match=message):
        validate_trigger_event(event, expected)


def test_trigger_event_error_fails_an_airflow_task() -> None:
    from airflow.sdk.exceptions import AirflowException

    assert issubclass(DBOSTriggerEventError, AirflowException)
