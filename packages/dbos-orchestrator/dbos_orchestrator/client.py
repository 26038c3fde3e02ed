"""The documented ``DBOSClient`` API, restored on top of the maintained ``dbos.DBOSClient``.

dbos 3.x made the constructor keyword-only (``system_database_url=``) and renamed the
``workflow_class_name`` enqueue option to ``class_name``. This module keeps the documented
API working as written::

    client = DBOSClient(os.environ["DBOS_DATABASE_URL"])   # system DB: <database>_dbos_sys
    handle = client.enqueue({"queue_name": "q", "workflow_name": "wf"}, 21)
    handle.get_result()

Everything else is ``dbos.DBOSClient`` unchanged: this class only translates arguments and
turns driver errors into :mod:`dbos_orchestrator.exceptions` that name what is wrong. Used on its
own it also decodes like dbos: rows tagged ``py_pickle`` are unpickled. Inside Airflow, the
hook and everything built on it read stored values through :mod:`dbos_orchestrator.store.values`
instead, which refuses pickles unless the connection opts in. No Airflow import here.
"""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING, Any

import dbos
import sqlalchemy as sa

from dbos_orchestrator.database_urls import (
    system_database_url_for,
    with_connect_timeout,
)
from dbos_orchestrator.diagnostics import ErrorDescriber, explain_encoding, explain_message
from dbos_orchestrator.exceptions import DBOSOptionsError
from dbos_orchestrator.options import (
    AnyEnqueueOptions,
    to_dbos_options,
)

if TYPE_CHECKING:
    from dbos import WorkflowHandle, WorkflowHandleAsync

__all__ = ["DBOSClient"]


class DBOSClient(dbos.DBOSClient):
    """``DBOSClient(database_url, *, system_database=None)``, as documented.

    :param database_url: URL of the application database; the system database is
        ``<its database>_dbos_sys`` on the same server. A ``sqlite:///path`` URL is used as
        the system database itself.
    :param system_database: name of the system database when it is not the default.
    :param system_database_url: the dbos 3.x form: the system database's own URL
        (Postgres or ``sqlite:///path``). Give it instead of ``database_url``.
    :param dbos_kwargs: any other keyword of ``dbos.DBOSClient`` (``dbos_system_schema``,
        ``application_name``, ``use_listen_notify``, ``retry_connection_errors``, ...).
    """

    def __init__(
        self,
        database_url: str | None = None,
        *,
        system_database: str | None = None,
        system_database_url: str | None = None,
        **dbos_kwargs: Any,
    ) -> None:
        if database_url and system_database_url:
            raise DBOSOptionsError("give either database_url or system_database_url, not both")
        if system_database_url is None:
            if not database_url:
                raise DBOSOptionsError("DBOSClient needs a database_url (application database) or system_database_url")
            system_database_url = system_database_url_for(database_url, system_database)
        elif system_database:
            raise DBOSOptionsError("system_database goes with database_url, not system_database_url")
        self.system_database_url = with_connect_timeout(system_database_url)
        url = sa.make_url(self.system_database_url)
        self.schema = None if url.get_backend_name() == "sqlite" else dbos_kwargs.get("dbos_system_schema") or "dbos"
        self._describer = ErrorDescriber(url, self.schema)
        try:
            super().__init__(system_database_url=self.system_database_url, **dbos_kwargs)
        except Exception as exc:  # noqa: BLE001 - re-raised, described when we can
            raise self._describer.describe(exc) or exc from None
        sa.event.listen(self._sys_db.engine, "handle_error", self._describer.on_error, retval=True)

    @property
    def target(self) -> str:
        """``host:port/database`` (or the SQLite path) of the system database, without password."""
        return self._describer.target

    @property
    def system_database_engine(self) -> sa.Engine:
        """The client's SQLAlchemy engine (schema already mapped), for read-only probes."""
        return self._sys_db.engine

    # -- the documented methods: options mapped, arguments checked ------------------------

    def enqueue(self, options: AnyEnqueueOptions, *args: Any, **kwargs: Any) -> WorkflowHandle[Any]:
        mapped = to_dbos_options(options)
        try:
            return super().enqueue(mapped, *args, **kwargs)
        except (TypeError, ValueError, AttributeError, pickle.PicklingError) as exc:
            raise explain_encoding(exc, mapped, args, kwargs) from exc

    async def enqueue_async(self, options: AnyEnqueueOptions, *args: Any, **kwargs: Any) -> WorkflowHandleAsync[Any]:
        mapped = to_dbos_options(options)
        try:
            return await super().enqueue_async(mapped, *args, **kwargs)
        except (TypeError, ValueError, AttributeError, pickle.PicklingError) as exc:
            raise explain_encoding(exc, mapped, args, kwargs) from exc

    def enqueue_in_transaction(
        self, conn_or_session: Any, options: AnyEnqueueOptions, *args: Any, **kwargs: Any
    ) -> WorkflowHandle[Any]:
        mapped = to_dbos_options(options)
        try:
            return super().enqueue_in_transaction(conn_or_session, mapped, *args, **kwargs)
        except (TypeError, ValueError, AttributeError, pickle.PicklingError) as exc:
            raise explain_encoding(exc, mapped, args, kwargs) from exc

    def send(self, destination_id: str, message: Any, *args: Any, **kwargs: Any) -> None:
        try:
            super().send(destination_id, message, *args, **kwargs)
        except (TypeError, ValueError, AttributeError, pickle.PicklingError) as exc:
            raise explain_message(exc, destination_id, message, args, kwargs) from exc

    async def send_async(self, destination_id: str, message: Any, *args: Any, **kwargs: Any) -> None:
        try:
            await super().send_async(destination_id, message, *args, **kwargs)
        except (TypeError, ValueError, AttributeError, pickle.PicklingError) as exc:
            raise explain_message(exc, destination_id, message, args, kwargs) from exc
