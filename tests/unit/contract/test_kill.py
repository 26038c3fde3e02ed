"""The contract's kill rule (dbos_airflow/contract/kill.py; docs/architecture.md, "The two-engine contract"):
which task-instance states mean a person's kill, and when on_kill cancels the workflow.

The retry rule is the core's: packages/dbos-orchestrator/tests/test_retry.py, run in both venvs.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from dbos_airflow.contract import kill
from dbos_airflow.contract import kill as kills


def test_kill_decision(monkeypatch: Any) -> None:
    assert kill.decide_on_kill(object(), cancel_on_kill=False, deferred=False, own_timeout=True) == (False, None)
    assert kill.decide_on_kill(object(), cancel_on_kill=True, deferred=False, own_timeout=True)[0] is True
    monkeypatch.setattr(kill, "current_ti_state", lambda ti, timeout=0: "failed")
    assert kill.decide_on_kill(object(), cancel_on_kill=True, deferred=False)[0] is True
    monkeypatch.setattr(kill, "current_ti_state", lambda ti, timeout=0: "deferred")
    assert kill.decide_on_kill(object(), cancel_on_kill=True, deferred=True)[0] is False
    assert kill.cancel_on_wait_timeout(cancel_on_kill=True) and not kill.cancel_on_wait_timeout(cancel_on_kill=False)


TI = SimpleNamespace(dag_id="d", run_id="r", task_id="t", map_index=-1)


@pytest.mark.parametrize(
    ("state", "sync_cancels", "deferred_cancels"),
    [
        ("failed", True, True),  # mark failed
        ("success", True, True),  # mark success
        ("restarting", True, True),  # cleared while running
        (None, False, True),  # sync: reset by a restarted scheduler; deferred: cleared
        ("scheduled", False, False),  # the next try (sync) / resumed elsewhere (deferred)
        ("queued", False, False),
        ("running", False, False),  # a worker shutting down / resumed elsewhere
        ("up_for_retry", False, True),
        ("deferred", False, False),  # the trigger moved to another triggerer
        (kills.MISSING, True, True),  # the run was deleted
    ],
)
def test_decision_table(
    monkeypatch: pytest.MonkeyPatch, state: str | None, sync_cancels: bool, deferred_cancels: bool
) -> None:
    monkeypatch.setattr(kills, "current_ti_state", lambda ti, timeout=0: state)
    assert kills.killed_by_person(TI, deferred=False)[0] is sync_cancels
    assert kills.killed_by_person(TI, deferred=True)[0] is deferred_cancels


def test_unknown_state_or_no_task_instance_cancels_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreadable(ti: object, timeout: float = 0) -> str:
        raise LookupError("no answer in time")

    monkeypatch.setattr(kills, "current_ti_state", unreadable)
    assert kills.killed_by_person(TI, deferred=False) == (False, "no answer in time; not cancelling")
    assert kills.killed_by_person(None, deferred=True)[0] is False
