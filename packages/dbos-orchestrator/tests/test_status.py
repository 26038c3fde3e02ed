"""DBOS workflow statuses (dbos_orchestrator/status.py): each is active, success or failure; parsing fails
closed.
"""

from __future__ import annotations

import pytest
from dbos_orchestrator.status import (
    ACTIVE_STATUSES,
    FAILURE_STATUSES,
    SUCCESS_STATUSES,
    TERMINAL_STATUSES,
    DBOSWorkflowStatus,
)
from dbos_orchestrator.status import DBOSWorkflowStatus as S


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


def test_resumable_is_cancelled_or_dead_lettered() -> None:
    """The resume operator and the view's button share this rule (DBOSWorkflowStatus.is_resumable)."""
    resumable = {s for s in DBOSWorkflowStatus if s.is_resumable()}
    assert resumable == {DBOSWorkflowStatus.CANCELLED, DBOSWorkflowStatus.MAX_RECOVERY_ATTEMPTS_EXCEEDED}
    assert all(s.is_terminal() for s in resumable)


def test_statuses_fail_closed() -> None:
    assert S.parse("SUCCESS") is S.SUCCESS and S.SUCCESS.is_terminal() and not S.PENDING.is_terminal()
    for unknown in ("WHAT", None):
        with pytest.raises(ValueError, match="unknown DBOS workflow status"):
            S.parse(unknown)
