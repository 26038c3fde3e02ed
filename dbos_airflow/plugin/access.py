"""The one access rule of the DBOS views (docs/ui.md, "Permissions"), asked of Airflow's auth manager.

Reading a workflow (``GET``) or acting on it (``PUT``: cancel, resume, fork):

* a workflow an Airflow task owns (:mod:`dbos_airflow.contract.ownership`), read through the
  connection its owner record names, needs that method on its **owning DAG** (``is_authorized_dag``
  with the DAG's id and team) and nothing else: it is read like the task's logs and changed like
  its clear button (Airflow lets most people read no connection: the simple auth manager only
  ``op`` and ``admin``). The record is DBOS' own, written when the task enqueued the workflow;
  no Airflow user can rewrite it;
* read through another connection, it also needs **read on each connection** (the one read
  through and the record's: ``is_authorized_connection`` GET);
* a workflow no Airflow task owns needs read on the connection and that method on **all DAGs**:
  the auth manager's DAG-wide permission (``is_authorized_dag`` without details) *and* every DAG
  in Airflow's metadata database (``get_authorized_dag_ids``), so a team- or DAG-scoped user
  never has it.

Listing a connection's workflows (the DBOS page) needs read on the connection
(:func:`may_list`), and shows every workflow only to a reader of all DAGs
(:func:`readable_dag_ids`). A task's tab lists its workflows to a reader of its DAG when DBOS
records every one of them as started by that task instance through that connection
(:func:`may_open_task`). The tab, the DBOS page, the single-workflow view and every action call
these functions and :func:`decide`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from airflow.api_fastapi.auth.managers.models.base_user import BaseUser

    from dbos_airflow.contract.ownership import Owner

Method = Literal["GET", "PUT"]
READ: Method = "GET"
ACT: Method = "PUT"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.allowed


def _manager():  # type: ignore[no-untyped-def]
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager()


def _multi_team() -> bool:
    from airflow.configuration import conf

    return conf.getboolean("core", "multi_team", fallback=False)


def may_use_connection(user: BaseUser, conn_id: str) -> bool:
    """Read access to the connection (the views read DBOS with its credentials)."""
    from airflow.api_fastapi.auth.managers.models.resource_details import ConnectionDetails

    team = None
    if _multi_team():
        from airflow.models.connection import Connection

        team = Connection.get_team_name(conn_id)
    return bool(_manager().is_authorized_connection(method=READ, details=ConnectionDetails(conn_id, team), user=user))


def may_dag(user: BaseUser, dag_id: str, method: Method) -> bool:
    """``method`` on one DAG, with its team (as Airflow's ``requires_access_dag`` asks)."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
    from airflow.models.dag import DagModel

    team = DagModel.get_team_name(dag_id) if _multi_team() else None
    return bool(_manager().is_authorized_dag(method=method, details=DagDetails(id=dag_id, team_name=team), user=user))


def may_all_dags(user: BaseUser, method: Method) -> bool:
    """``method`` on every DAG: the DAG-wide permission and each DAG Airflow knows."""
    import sqlalchemy as sa
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    manager = _manager()
    if not manager.is_authorized_dag(method=method, user=user):
        return False
    with create_session() as session:
        every = set(session.scalars(sa.select(DagModel.dag_id)))
        allowed = manager.get_authorized_dag_ids(user=user, method=method, session=session)
    return every <= set(allowed)


def readable_dag_ids(user: BaseUser) -> set[str] | None:
    """The DAGs whose workflows the DBOS page may list to ``user``; None: every workflow."""
    if may_all_dags(user, READ):
        return None
    return set(_manager().get_authorized_dag_ids(user=user, method=READ))


def _connection_refused(conn_id: str) -> Decision:
    return Decision(False, f"you may not read the connection {conn_id!r}")


def may_list(user: BaseUser, conn_id: str) -> Decision:
    """Listing the workflows of ``conn_id`` (the DBOS page): read on the connection."""
    return Decision(True) if may_use_connection(user, conn_id) else _connection_refused(conn_id)


def may_open_task(user: BaseUser, dag_id: str, conn_id: str, *, owned_here: bool) -> Decision:
    """A task instance's tab listing its workflows read through ``conn_id``: read on its DAG, and
    read on the connection unless DBOS records each listed workflow as started by this task
    instance through ``conn_id`` (``owned_here``; else the tab follows the task's XCom pointer)."""
    if not may_dag(user, dag_id, READ):
        return Decision(False, "you may not read this DAG")
    if owned_here:
        return Decision(True)
    return may_list(user, conn_id)


def decide(user: BaseUser, owner: Owner | None, conn_id: str, method: Method) -> Decision:
    """Whether ``user`` may read (GET) or act on (PUT) a workflow of ``owner`` through ``conn_id``."""
    verb = "read" if method == READ else "change"
    if owner is None or owner.conn_id != conn_id:
        for conn in dict.fromkeys([conn_id, *([owner.conn_id] if owner else [])]):
            if not may_use_connection(user, conn):
                return _connection_refused(conn)
    if owner is None:
        if may_all_dags(user, method):
            return Decision(True)
        return Decision(False, f"no Airflow task owns this workflow: only users who may {verb} all DAGs may {verb} it")
    if may_dag(user, owner.dag_id, method):
        return Decision(True)
    return Decision(False, f"you may not {verb} the DAG that owns this workflow")
