"""The contract's retry and kill rules, each one module (docs/architecture.md, "The two-engine contract")."""

from __future__ import annotations

from typing import Any

import pytest
from dbos_orchestrator.exceptions import DBOSOptionsError
from dbos_orchestrator.retry import Reattach, check_retry_mode, reattach, rerun_start_step
from dbos_orchestrator.status import DBOSWorkflowStatus as S

from dbos_airflow.contract import kill


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


def test_kill_decision(monkeypatch: Any) -> None:
    assert kill.decide_on_kill(object(), cancel_on_kill=False, deferred=False, own_timeout=True) == (False, None)
    assert kill.decide_on_kill(object(), cancel_on_kill=True, deferred=False, own_timeout=True)[0] is True
    monkeypatch.setattr(kill, "current_ti_state", lambda ti, timeout=0: "failed")
    assert kill.decide_on_kill(object(), cancel_on_kill=True, deferred=False)[0] is True
    monkeypatch.setattr(kill, "current_ti_state", lambda ti, timeout=0: "deferred")
    assert kill.decide_on_kill(object(), cancel_on_kill=True, deferred=True)[0] is False
    assert kill.cancel_on_wait_timeout(cancel_on_kill=True) and not kill.cancel_on_wait_timeout(cancel_on_kill=False)
