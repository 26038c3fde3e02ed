"""Operators for DBOS application versions: list them, promote one to latest (blue/green) with the
previous latest in XCom for a rollback. Thin over :mod:`dbos_orchestrator.operations.versions`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dbos_orchestrator.forms import as_text
from dbos_orchestrator.operations.versions import list_versions, promote_version

from dbos_airflow.operators.base import DBOSBaseOperator, dbos_template_fields

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

__all__ = ["DBOSListApplicationVersionsOperator", "DBOSPromoteApplicationVersionOperator"]


class DBOSListApplicationVersionsOperator(DBOSBaseOperator):
    """
    List the application versions DBOS workers registered, newest (latest) first; returns them.

    :param dbos_conn_id: the ``dbos`` connection.
    """

    def execute_dbos(self, context: Context) -> list[dict[str, Any]]:
        versions = list_versions(self.hook.get_client())
        for v in versions:
            self.log.info("%s%s", v["version_name"], " (latest)" if v["latest"] else "")
        return versions


class DBOSPromoteApplicationVersionOperator(DBOSBaseOperator):
    """
    Make a version the latest: workflows enqueued without ``app_version`` then run only on its
    workers (blue/green). Returns ``{"latest", "previous"}`` and pushes the previous latest as XCom
    key ``previous``, so a later task can roll back with
    ``version_name="{{ ti.xcom_pull(task_ids='promote', key='previous') }}"``. An unknown version
    fails naming the known ones; a retry (already latest) changes nothing and reports the same previous.

    :param version_name: the version to promote (templated).
    :param application_name: the application it belongs to (default: the connection's).
    :param dbos_conn_id: the ``dbos`` connection.
    """

    template_fields: Sequence[str] = dbos_template_fields("version_name")

    def __init__(self, *, version_name: str, application_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.version_name = version_name
        self.application_name = application_name

    def execute_dbos(self, context: Context) -> dict[str, Any]:
        done = promote_version(
            self.hook.get_client(), as_text(self.version_name), application_name=self.application_name
        )
        context["ti"].xcom_push(key="previous", value=done["previous"])
        self.log.info("DBOS application version %s is the latest (previous: %s)", done["latest"], done["previous"])
        return done
