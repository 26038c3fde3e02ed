"""The retry rule (dbos_orchestrator/retry.py): what a retried task does with the workflow it started."""

from __future__ import annotations

import pytest
from dbos_orchestrator.exceptions import DBOSOptionsError
from dbos_orchestrator.retry import Reattach, check_retry_mode, reattach, rerun_start_step
from dbos_orchestrator.status import DBOSWorkflowStatus as S


@pytest.mark.parametrize(
    ("status", "mode", "action"),
    [
        (S.PENDING, "fail", Reattach.LEAVE_RUNNING),
        (S.ENQUEUED, "resume", Reattach.LEAVE_RUNNING),
        (S.SUCCESS, "restart", Reattach.LEAVE_ENDED),  # a success is never re-run
        (S.ERROR, "resume", Reattach.RESUME),
        (S.CANCELLED, "restart", Reattach.RESTART),
        (S.MAX_RECOVERY_ATTEMPTS_EXCEEDED, "fail", Reattach.FAIL),
    ],
)
def test_reattach_follows_retry_mode(status: S, mode: str, action: Reattach) -> None:
    """docs/architecture.md, "The two-engine contract": a retry re-attaches or re-runs by retry_mode."""
    assert reattach(status, mode) is action


def test_retry_mode_is_checked() -> None:
    assert check_retry_mode("resume") == "resume"
    with pytest.raises(DBOSOptionsError, match="retry_mode='again'; use one of resume, restart, fail"):
        check_retry_mode("again")


def test_rerun_starts_at_the_first_failed_or_unfinished_step() -> None:
    assert rerun_start_step([(1, True), (2, False), (3, False)], from_failed_step=True) == 2
    assert rerun_start_step([(1, True), (2, True)], from_failed_step=True) == 3
    assert rerun_start_step([], from_failed_step=True) == 1
    assert rerun_start_step([(1, True), (2, False)], from_failed_step=False) == 1
