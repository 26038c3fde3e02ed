"""DBOSTaskMixin.defer_unless_known: the one "check in the worker, then defer" of every waiting
operator and sensor (dbos_airflow/contract/deferral.py; docs/architecture.md, "Deferring").

The check is a plain function here: what it reads is the callers' (tests/test_deferral.py and
tests/test_batch_waits.py run them against a real DBOS worker); this is the decision around it, with
Airflow's real ``defer`` (it raises ``TaskDeferred``) and the real trigger.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import pytest
from airflow.sdk.exceptions import TaskDeferred

from dbos_airflow.contract.deferral import HOLD_EVENT_SECONDS
from dbos_airflow.operators.base import DBOSBaseOperator
from dbos_airflow.triggers.dbos import DBOSWorkflowTrigger

TRIGGER = partial(DBOSWorkflowTrigger, workflow_id="wf-1", dbos_conn_id="dbos_default")


@pytest.fixture
def task(monkeypatch: pytest.MonkeyPatch) -> DBOSBaseOperator:
    monkeypatch.setattr("dbos_airflow.operators.base.CHECK_IN_WORKER_SECONDS", 0.5)
    return DBOSBaseOperator(task_id="t")


def answers_after(n: int, answer: Any) -> Any:
    calls = []

    def check() -> Any:
        calls.append(1)
        return answer if len(calls) >= n else None

    check.calls = calls  # type: ignore[attr-defined]
    return check


def test_a_known_answer_finishes_in_the_worker(task: DBOSBaseOperator, capsys: pytest.CaptureFixture[str]) -> None:
    check = answers_after(2, {"status": "SUCCESS"})
    got = task.defer_unless_known(
        check, TRIGGER, timeout=None, on_timeout=lambda: None, known=lambda s: f"workflow is {s['status']}"
    )
    assert got == {"status": "SUCCESS"} and len(check.calls) == 2
    out = capsys.readouterr()
    assert "workflow is SUCCESS: finishing in the worker, no deferral" in out.out + out.err


def test_no_answer_defers_with_the_deadline_and_the_hold(task: DBOSBaseOperator) -> None:
    check = answers_after(10**6, "never")
    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        task.defer_unless_known(check, TRIGGER, timeout=60.0, on_timeout=lambda: pytest.fail("not timed out"))
    after = time.time()
    assert len(check.calls) >= 2  # checked more than once in the worker first
    kwargs = deferred.value.trigger.serialize()[1]
    assert before + 60.0 <= kwargs["end_time"] <= after + 60.0  # wall clock, from before the check
    assert before + HOLD_EVENT_SECONDS <= kwargs["not_before"] <= time.time() + HOLD_EVENT_SECONDS
    assert deferred.value.method_name == "execute_complete" and deferred.value.timeout is None


def test_without_a_timeout_the_trigger_has_no_deadline(task: DBOSBaseOperator) -> None:
    with pytest.raises(TaskDeferred) as deferred:
        task.defer_unless_known(lambda: None, TRIGGER, timeout=None, on_timeout=lambda: pytest.fail("no timeout"))
    assert deferred.value.trigger.serialize()[1]["end_time"] is None


def test_a_timeout_within_the_check_ends_in_the_worker(task: DBOSBaseOperator) -> None:
    """The task's own timeout ran out while checking: no deferral to a trigger that could only time out."""
    started = time.monotonic()
    got = task.defer_unless_known(lambda: None, TRIGGER, timeout=0.2, on_timeout=lambda: "gave up")
    assert got == "gave up"
    assert 0.2 <= time.monotonic() - started < 0.5 + 5  # the timeout bounded the check, not the 0.5 s budget


def test_keep_checking_stays_in_the_worker_past_the_budget(task: DBOSBaseOperator) -> None:
    """Rule 3 (a batch ending at its rate before a deferral's event could): checked once a second more."""
    found_at = time.monotonic() + 1.2
    got = task.defer_unless_known(
        lambda: "done" if time.monotonic() >= found_at else None,
        TRIGGER,
        timeout=None,
        on_timeout=lambda: pytest.fail("no timeout"),
        keep_checking=lambda: True,
    )
    assert got == "done"


def test_keep_checking_false_defers(task: DBOSBaseOperator) -> None:
    asked = []
    with pytest.raises(TaskDeferred):
        task.defer_unless_known(
            lambda: None,
            TRIGGER,
            timeout=None,
            on_timeout=lambda: pytest.fail("no timeout"),
            keep_checking=lambda: bool(asked.append(1)),
        )
    assert asked == [1]
