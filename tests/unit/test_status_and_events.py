"""Pure logic: statuses and the trigger-event contract (no database, no Airflow run)."""

from __future__ import annotations

import pytest
from dbos_orchestrator.status import (
    ACTIVE_STATUSES,
    FAILURE_STATUSES,
    SUCCESS_STATUSES,
    TERMINAL_STATUSES,
    DBOSWorkflowStatus,
)

from dbos_airflow.contract.events import TriggerEventKind, trigger_event_payload, validate_trigger_event
from dbos_airflow.exceptions import DBOSTriggerEventError


def test_every_status_is_exactly_one_of_active_success_failure() -> None:
    for status in DBOSWorkflowStatus:
        assert [status in s for s in (ACTIVE_STATUSES, SUCCESS_STATUSES, FAILURE_STATUSES)].count(True) == 1
        assert status.is_terminal() == (status in TERMINAL_STATUSES) != status.is_active()


def test_parse_accepts_members_and_names_and_fails_closed() -> None:
    assert DBOSWorkflowStatus.parse("ERROR") is DBOSWorkflowStatus.ERROR
    assert DBOSWorkflowStatus.parse(DBOSWorkflowStatus.PENDING) is DBOSWorkflowStatus.PENDING
    with pytest.raises(ValueError, match="unknown DBOS workflow status 'SUCEEDED'"):
        DBOSWorkflowStatus.parse("SUCEEDED")
    with pytest.raises(ValueError, match="'done'"):
        DBOSWorkflowStatus.parse_all(["SUCCESS", "done"])


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


def test_resumable_is_cancelled_or_dead_lettered() -> None:
    """The resume operator and the view's button share this rule (DBOSWorkflowStatus.is_resumable)."""
    resumable = {s for s in DBOSWorkflowStatus if s.is_resumable()}
    assert resumable == {DBOSWorkflowStatus.CANCELLED, DBOSWorkflowStatus.MAX_RECOVERY_ATTEMPTS_EXCEEDED}
    assert all(s.is_terminal() for s in resumable)
