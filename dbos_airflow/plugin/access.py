"""The one access rule of the DBOS views (docs/ui.md, "Permissions"), asked of Airflow's auth manager.

Reading a workflow (``GET``) or acting on it (``PUT``: cancel, resume, fork):

* every request needs **read on the connection** it goes through (``is_authorized_connection``
  GET), and on the connection the owner record names;
* a workflow an Airflow task owns (:mod:`dbos_airflow.contract.ownership`) needs that method on its
  **owning DAG** (``is_authorized_dag`` with the DAG's id and team);
* a workflow no Airflow task owns needs that method on **all DAGs**: the auth manager's
  DAG-wide permission (``is_authorized_dag`` without details) *and* every DAG in Airflow's
  metadata database (``get_authorized_dag_ids``), so a team- or DAG-scoped user never has it.

The tab, the DBOS page, the single-workflow view and every action call :func:`decide`.
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


def decide(user: BaseUser, owner: Owner | None, conn_id: str, method: Method) -> Decision:
    """Whether ``user`` may read (GET) or act on (PUT) a workflow of ``owner`` through ``conn_id``."""
    for conn in dict.fromkeys([conn_id, *([owner.conn_id] if owner else [])]):
        if not may_use_connection(user, conn):
            return Decision(False, f"you may not read the connection {conn!r}")
    verb = "read" if method == READ else "change"
    if owner is None:
        if may_all_dags(user, method):
            return Decision(True)
        return Decision(False, f"no Airflow task owns this workflow: only users who may {verb} all DAGs may {verb} it")
    if may_dag(user, owner.dag_id, method):
        return Decision(True)
    return Decision(False, f"you may not {verb} the DAG that owns this workflow")
