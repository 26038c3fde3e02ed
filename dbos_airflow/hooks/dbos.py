"""DBOSHook: an Airflow Connection of type ``dbos`` turned into a :class:`DBOSClient`."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from airflow.sdk import BaseHook

from dbos_airflow.exceptions import DBOSAirflowError, DBOSWorkflowNotFoundError
from dbos_airflow.hooks.connection import (
    EXTRA_FIELDS,
    SERIALIZATIONS,
    DBOSConnectionSettings,
    check_serialization,
    serialization_type,
)
from dbos_airflow.status import status_to_dict

__all__ = ["DBOSHook", "DBOSConnectionSettings", "EXTRA_FIELDS", "SERIALIZATIONS", "check_serialization"]

if TYPE_CHECKING:
    from collections.abc import Iterable

    from dbos import WorkflowHandle, WorkflowHandleAsync

    from dbos_airflow.client import DBOSClient, EnqueueOptions
    from dbos_airflow.values import ValueReader

class DBOSHook(BaseHook):
    """
    Interact with a DBOS application through its system database.

    The client is created on first use (never at import or DAG-parse time) and closed by
    :meth:`close` or by leaving the hook's ``with`` block. Every method of the seed API is
    here, plus the workflow-management calls operators and sensors need.

    :param dbos_conn_id: Airflow connection of type ``dbos`` (default ``dbos_default``).
    """

    conn_name_attr = "dbos_conn_id"
    default_conn_name = "dbos_default"
    conn_type = "dbos"
    hook_name = "DBOS"

    def __init__(self, dbos_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dbos_conn_id = dbos_conn_id
        self._client: DBOSClient | None = None
        self._settings: DBOSConnectionSettings | None = None

    # -- connection and client lifecycle -------------------------------------------------

    @property
    def settings(self) -> DBOSConnectionSettings:
        if self._settings is None:
            self._settings = DBOSConnectionSettings.from_connection(self.get_connection(self.dbos_conn_id))
        return self._settings

    async def asettings(self) -> DBOSConnectionSettings:
        if self._settings is None:
            conn = await BaseHook.aget_connection(self.dbos_conn_id)
            self._settings = DBOSConnectionSettings.from_connection(conn)
        return self._settings

    # Held while a hook creates its client, so that many threads or coroutines asking one hook
    # at once share one client (and one connection pool) instead of each making and leaking one.
    # Class-level so that hooks stay deep-copyable; creation is rare and short.
    _client_lock = threading.Lock()

    def _client_for(self, settings: DBOSConnectionSettings) -> DBOSClient:
        with self._client_lock:
            if self._client is None:
                from dbos_airflow.client import DBOSClient

                self._client = DBOSClient(**settings.client_kwargs())
            return self._client

    def get_client(self) -> DBOSClient:
        """The hook's :class:`DBOSClient`, connected on the first call."""
        client = self._client
        return client if client is not None else self._client_for(self.settings)

    async def aget_client(self) -> DBOSClient:
        """Like :meth:`get_client`, without blocking the event loop."""
        client = self._client
        if client is None:
            client = await asyncio.to_thread(self._client_for, await self.asettings())
        return client

    def close(self) -> None:
        """Release the client's connections. The hook can be used again afterwards."""
        client, self._client = self._client, None
        if client is not None:
            client.destroy()

    def __enter__(self) -> DBOSHook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> DBOSHook:
        return self

    async def __aexit__(self, *exc: object) -> None:
        client, self._client = self._client, None
        if client is not None:
            await asyncio.to_thread(client.destroy)

    # -- the seed API --------------------------------------------------------------------

    def _options(self, options: EnqueueOptions, serialization: str | None) -> EnqueueOptions:
        if "serialization_type" in options:
            return options
        fmt = serialization_type(serialization) if serialization else self.settings.serialization_type
        return {**options, "serialization_type": fmt}

    def enqueue(
        self, options: EnqueueOptions, *args: Any, serialization: str | None = None, **kwargs: Any
    ) -> WorkflowHandle[Any]:
        """Enqueue a workflow (seed ``enqueue``); encodes with the connection's serialization."""
        return self.get_client().enqueue(self._options(options, serialization), *args, **kwargs)

    async def enqueue_async(
        self, options: EnqueueOptions, *args: Any, serialization: str | None = None, **kwargs: Any
    ) -> WorkflowHandleAsync[Any]:
        await self.asettings()
        client = await self.aget_client()
        return await client.enqueue_async(self._options(options, serialization), *args, **kwargs)

    def enqueue_many(
        self, options: EnqueueOptions, items: Iterable[Any], *, serialization: str | None = None
    ) -> list[str]:
        """Enqueue one workflow per item in one transaction (all or nothing); return the ids.

        Each item is ``{"args": [...], "kwargs": {...}, "workflow_id": "..."}`` (all optional)
        or a list of positional args. Ids that already exist are left alone, so a retry with
        the same ids enqueues nothing new. See :mod:`dbos_airflow.hooks.bulk`.
        """
        from dbos_airflow.hooks.bulk import enqueue_many

        return enqueue_many(self.get_client(), self._options(options, serialization), items)

    def send(
        self,
        destination_id: str,
        message: Any,
        topic: str | None = None,
        idempotency_key: str | None = None,
        *,
        serialization: str | None = None,
    ) -> None:
        """Send ``message`` to a workflow; a repeated ``idempotency_key`` is delivered once."""
        fmt = serialization_type(serialization) if serialization else self.settings.serialization_type
        self.get_client().send(destination_id, message, topic, idempotency_key, serialization_type=fmt)

    async def send_async(
        self,
        destination_id: str,
        message: Any,
        topic: str | None = None,
        idempotency_key: str | None = None,
        *,
        serialization: str | None = None,
    ) -> None:
        settings = await self.asettings()
        fmt = serialization_type(serialization) if serialization else settings.serialization_type
        client = await self.aget_client()
        await client.send_async(destination_id, message, topic, idempotency_key, serialization_type=fmt)

    def get_event(self, workflow_id: str, key: str, timeout_seconds: float = 60) -> Any:
        """The latest value of event ``key`` of a workflow, or None after ``timeout_seconds``."""
        return self.get_client().get_event(workflow_id, key, timeout_seconds)

    async def get_event_async(self, workflow_id: str, key: str, timeout_seconds: float = 60) -> Any:
        return await (await self.aget_client()).get_event_async(workflow_id, key, timeout_seconds)

    def retrieve_workflow(self, workflow_id: str) -> WorkflowHandle[Any]:
        return self.get_client().retrieve_workflow(workflow_id)

    async def retrieve_workflow_async(self, workflow_id: str) -> WorkflowHandleAsync[Any]:
        return await (await self.aget_client()).retrieve_workflow_async(workflow_id)

    def value_reader(self) -> ValueReader:
        """Reads stored values safely: pickled rows are refused unless the connection has ``allow_pickle``."""
        from dbos_airflow.values import ValueReader

        return ValueReader(self.get_client(), allow_pickle=self.settings.allow_pickle)

    # -- workflow management -------------------------------------------------------------

    def get_workflow_status(self, workflow_id: str, *, load_output: bool = False) -> dict[str, Any] | None:
        """The workflow's status as a JSON-safe dict, or None when no such workflow exists.

        Inputs are never loaded; outputs and errors only with ``load_output=True``.
        """
        rows = self.get_client().list_workflows(
            workflow_ids=[workflow_id], load_input=False, load_output=load_output
        )
        return status_to_dict(rows[0], with_output=load_output) if rows else None

    async def get_workflow_statuses_async(
        self, workflow_ids: list[str], *, load_output: bool = False
    ) -> dict[str, dict[str, Any]]:
        """Statuses of many workflows in one query: ``{workflow_id: status dict}``."""
        client = await self.aget_client()
        rows = await client.list_workflows_async(
            workflow_ids=list(workflow_ids), load_input=False, load_output=load_output
        )
        return {r.workflow_id: status_to_dict(r, with_output=load_output) for r in rows}

    def cancel_workflow(self, workflow_id: str) -> None:
        """Cancel a workflow (idempotent; a finished or unknown workflow is left as it is)."""
        self.get_client().cancel_workflow(workflow_id)

    async def cancel_workflow_async(self, workflow_id: str) -> None:
        await (await self.aget_client()).cancel_workflow_async(workflow_id)

    def resume_workflow(self, workflow_id: str, *, queue_name: str | None = None) -> None:
        """Continue a CANCELLED or MAX_RECOVERY_ATTEMPTS_EXCEEDED workflow where it stopped."""
        self.get_client().resume_workflow(workflow_id, queue_name=queue_name)

    def rerun_workflow(self, workflow_id: str, *, from_failed_step: bool, queue_name: str | None = None) -> None:
        """Run an ended workflow again under the same id.

        With ``from_failed_step`` the steps that completed are kept (rewind to the first step
        that failed or never finished); otherwise it starts again from its first step.
        """
        client = self.get_client()
        start = 1
        if from_failed_step:
            steps = client.list_workflow_steps(workflow_id)
            failed = [s["function_id"] for s in steps if s.get("error") is not None]
            start = min(failed) if failed else max((s["function_id"] for s in steps), default=0) + 1
        self.log.info("Re-running DBOS workflow %s from step %s", workflow_id, start)
        client.rewind_workflow(workflow_id, start_step=start, queue_name=queue_name)

    def require_workflow(self, workflow_id: str) -> dict[str, Any]:
        """The workflow's status dict; :class:`DBOSWorkflowNotFoundError` names a missing id."""
        status = self.get_workflow_status(workflow_id)
        if status is None:
            raise DBOSWorkflowNotFoundError(
                f"no DBOS workflow with id {workflow_id!r} in {self.get_client().target}"
            )
        return status

    def wait_for_status(self, workflow_id: str, *, timeout: float | None, poll_interval: float) -> dict[str, Any]:
        """Poll until the workflow leaves PENDING/ENQUEUED/DELAYED or ``timeout`` passes.

        Polls start 0.1 s apart and double up to ``poll_interval``, so a short workflow is
        noticed quickly and a long one costs one query per ``poll_interval``. Returns the last
        status dict seen (still active if the timeout passed).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        last_log = time.monotonic()
        delay = min(0.1, poll_interval)
        while True:
            status = self.require_workflow(workflow_id)
            if status["status"] not in ("PENDING", "ENQUEUED", "DELAYED"):
                return status
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return status
            if now - last_log >= 60:
                self.log.info("DBOS workflow %s is still %s", workflow_id, status["status"])
                last_log = now
            time.sleep(delay if deadline is None else max(0.0, min(delay, deadline - now)))
            delay = min(delay * 2, poll_interval)

    # -- Airflow UI ----------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Reach the system database and check that it holds DBOS system tables."""
        try:
            settings = self.settings
            client = self.get_client()
            client.list_workflows(limit=1, load_input=False, load_output=False)
        except DBOSAirflowError as exc:
            return False, str(exc)
        except Exception as exc:  # noqa: BLE001 - the UI shows the reason instead of a traceback
            message = f"{type(exc).__name__}: {getattr(exc, 'orig', None) or exc}".strip()
            password = self._settings and sa.make_url(self._settings.system_database_url).password
            return False, message.replace(str(password), "***") if password else message
        finally:
            self.close()
        if client.schema is None:  # SQLite has no schemas
            return True, f"Connected to {client.target}: DBOS system tables found"
        return True, (
            f"Connected to {client.target}: DBOS system tables found in schema {settings.dbos_system_schema!r}"
        )
