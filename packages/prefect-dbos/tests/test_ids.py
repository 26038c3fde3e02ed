"""How workflow ids are derived from the run and the call (packages/prefect-dbos/README.md, "Retries")."""

from __future__ import annotations

import pytest
from dbos_orchestrator.exceptions import DBOSOptionsError
from prefect import flow, task

from prefect_dbos.ids import RunIdentity, call_digest, derived_key, derived_workflow_id, flow_run_prefix


def _run(scope: str = "a1", memo: str | None = None, salt: str = "") -> RunIdentity:
    return RunIdentity("fr", ("flow", "fr", scope), salt, memo)


def test_identical_calls_are_numbered_and_a_new_attempt_numbers_them_again() -> None:
    first = [derived_workflow_id("q", "wf", [1], {"a": 1}, run=_run("1")) for _ in range(2)]
    again = [derived_workflow_id("q", "wf", [1], {"a": 1}, run=_run("2")) for _ in range(2)]
    assert first == again and first[0] != first[1]
    assert all(wid.startswith(flow_run_prefix("fr")) for wid in first)


def test_a_retried_task_run_keeps_its_number() -> None:
    a = derived_workflow_id("q", "wf", [2], run=_run("3", memo="t1"))
    b = derived_workflow_id("q", "wf", [2], run=_run("3", memo="t2"))
    assert derived_workflow_id("q", "wf", [2], run=_run("3", memo="t1")) == a != b


def test_the_digest_covers_the_call_not_the_order_of_keyword_arguments() -> None:
    assert call_digest("q", "wf", None, [1], {"a": 1, "b": 2}) == call_digest("q", "wf", None, [1], {"b": 2, "a": 1})
    assert call_digest("q", "wf", None, [1], {}) != call_digest("q2", "wf", None, [1], {})
    assert call_digest("q", "wf", None, [1], {}) != call_digest("q", "wf", "Cls", [1], {})


def test_subflow_calls_differ_by_their_salt_and_keys_win() -> None:
    one = derived_workflow_id("q", "wf", [3], run=_run("4", salt="parent-task-1"))
    two = derived_workflow_id("q", "wf", [3], run=_run("4", salt="parent-task-2"))
    assert one != two
    assert derived_workflow_id("q", "wf", [3], key="order-7", run=_run("4")) == "prefect-fr-order-7"
    assert derived_key("send", "wf-1", "topic", "hi", run=_run("5")).startswith("prefect-fr-send-")
    with pytest.raises(DBOSOptionsError, match="key must be a non-empty string"):
        derived_workflow_id("q", "wf", [], key=" ", run=_run())


@task(name="enqueue-dbos-probe")
def _own_task() -> str | None:
    """Stands for one of this package's tasks (its name has their prefix)."""
    from prefect.context import TaskRunContext

    from prefect_dbos import ids

    caller = ids._calling_task_run(TaskRunContext.get())
    return None if caller is None else str(caller.id)


@task
def _users_task() -> tuple[str, str | None]:
    from prefect.runtime import task_run

    return str(task_run.id), _own_task()


@flow
def _calls() -> tuple[tuple[str, str | None], str | None]:
    return _users_task(), _own_task()


def test_the_calling_task_run_is_the_one_prefect_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Found through the context's private token, checked against the public task_inputs["__parents__"]."""
    (user_task_id, found), from_flow = _calls()
    assert found == user_task_id
    assert from_flow is None  # Prefect recorded no caller: no private attribute is read
    monkeypatch.setattr("prefect_dbos.ids.CALLER_TOKEN", "_token_of_another_prefect")
    with pytest.raises(DBOSOptionsError, match="pass key= or workflow_id="):
        _users_task()
    assert _own_task() is None
