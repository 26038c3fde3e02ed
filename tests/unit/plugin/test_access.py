"""The access rule (dbos_airflow/plugin/access.py) asked of Airflow's own simple auth manager
(docs/ui.md, "Permissions"): its viewers and users read no connection, yet read (and users
change) the workflows their DAGs' tasks own, as they read those tasks' logs."""

from __future__ import annotations

import pytest
from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

from dbos_airflow.contract.ownership import Owner
from dbos_airflow.plugin import access

OWNER = Owner("etl", "manual__1", "run", -1, "dbos_default")


@pytest.fixture(autouse=True)
def simple_auth_manager(monkeypatch: pytest.MonkeyPatch) -> SimpleAuthManager:
    """Airflow's simple auth manager, single team, as the API server would have it."""
    monkeypatch.setenv("AIRFLOW__CORE__MULTI_TEAM", "False")
    manager = SimpleAuthManager()
    monkeypatch.setattr(access, "_manager", lambda: manager)
    return manager


def _user(role: str) -> SimpleAuthManagerUser:
    return SimpleAuthManagerUser(username=role, role=role)


@pytest.mark.parametrize(("role", "reads", "acts"), [("viewer", True, False), ("user", True, True), ("op", True, True)])
def test_an_owned_workflow_follows_its_dag(role: str, reads: bool, acts: bool) -> None:
    user = _user(role)
    assert bool(access.decide(user, OWNER, "dbos_default", access.READ)) is reads
    decision = access.decide(user, OWNER, "dbos_default", access.ACT)
    assert bool(decision) is acts
    if not acts:
        assert decision.reason == "you may not change the DAG that owns this workflow"


@pytest.mark.parametrize("role", ["viewer", "user"])
def test_without_the_connection_nothing_else(role: str) -> None:
    """Read through another connection than the record's, unowned, or listed: the connection's
    read is still needed, and the simple auth manager gives it only to op and admin."""
    user = _user(role)
    through_other = access.decide(user, OWNER, "dbos_other", access.READ)
    assert not through_other and through_other.reason == "you may not read the connection 'dbos_other'"
    unowned = access.decide(user, None, "dbos_default", access.READ)
    assert not unowned and unowned.reason == "you may not read the connection 'dbos_default'"
    assert not access.may_list(user, "dbos_default")
    assert access.may_open_task(user, "etl", "dbos_default", owned_here=True)
    assert not access.may_open_task(user, "etl", "dbos_default", owned_here=False)


def test_op_reads_through_any_connection() -> None:
    op = _user("op")
    assert access.decide(op, OWNER, "dbos_other", access.ACT)
    assert access.may_list(op, "dbos_default")
    assert access.may_open_task(op, "etl", "dbos_default", owned_here=False)
