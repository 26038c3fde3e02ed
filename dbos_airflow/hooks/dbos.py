"""DBOSHook: an Airflow Connection of type ``dbos`` turned into a :class:`DBOSClient`."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException
from dbos_orchestrator.database_urls import hide_password
from dbos_orchestrator.exceptions import DBOSOrchestratorError
from dbos_orchestrator.messages import PROGRESS_LOG_SECONDS
from dbos_orchestrator.serialization import choose_format
from dbos_orchestrator.status import status_to_dict

from dbos_airflow.exceptions import DBOSWorkflowFailedError, DBOSWorkflowNotFoundError
from dbos_airflow.hooks.connection import DBOSConnectionSettings, unparsable_env_connection

__all__ = ["DBOSHook"]

# How an Airflow user allows pickles: the end of the core's refusal of a pickled value.
PICKLE_HINT = "set the extra allow_pickle=true on the dbos connection to decode pickled values (runs their code)"

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from dbos import WorkflowHandle, WorkflowHandleAsync, WorkflowStatus
    from dbos_orchestrator.client import DBOSClient
    from dbos_orchestrator.options import EnqueueOptions
    from dbos_orchestrator.retry import Reattach
    from dbos_orchestrator.service import DBOSService
    from dbos_orchestrator.store.values import ValueReader
    from dbos_orchestrator.waiting.waiter import DBOSWaiter


class DBOSHook(BaseHook):
    """
    Interact with a DBOS application through its system database.

    The client is created on first use (never at import or DAG-parse time) and closed by
    :meth:`close` or by leaving the hook's ``with`` block. Every method of the documented
    ``DBOSClient`` API is here (async twins end in ``_async``), plus the workflow-management
    calls operators and sensors need. Stored values (outputs, events) are read through
    :mod:`dbos_orchestrator.store.values`: pickled rows are refused unless the connection has ``allow_pickle``.

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
        """The connection's validated settings (read once per hook)."""
        if self._settings is None:
            try:
                conn = self.get_connection(self.dbos_conn_id)
            except AirflowNotFoundException as exc:
                raise unparsable_env_connection(self.dbos_conn_id) or exc from None
            self._settings = DBOSConnectionSettings.from_connection(conn)
        return self._settings

    async def get_settings_async(self) -> DBOSConnectionSettings:
        """Like :attr:`settings`, without blocking the event loop."""
        if self._settings is None:
            try:
                conn = await BaseHook.aget_connection(self.dbos_conn_id)
            except AirflowNotFoundException as exc:
                raise unparsable_env_connection(self.dbos_conn_id) or exc from None
            self._settings = DBOSConnectionSettings.from_connection(conn)
        return self._settings

    # Held while a hook creates its client, so that many threads or coroutines asking one hook
    # at once share one client (and one connection pool) instead of each making and leaking one.
    # Class-level so that hooks stay deep-copyable; creation is rare and short.
    _client_lock = threading.Lock()

    def _client_for(self, settings: DBOSConnectionSettings) -> DBOSClient:
        with self._client_lock:
            if self._client is None:
                from dbos_orchestrator.client import DBOSClient

                self._client = DBOSClient(**settings.client_kwargs())
            return self._client

    def get_client(self) -> DBOSClient:
        """The hook's :class:`DBOSClient`, connected on the first call."""
        client = self._client
        return client if client is not None else self._client_for(self.settings)

    async def get_client_async(self) -> DBOSClient:
        """Like :meth:`get_client`, without blocking the event loop."""
        client = self._client
        if client is None:
            client = await asyncio.to_thread(self._client_for, await self.get_settings_async())
        return client

    async def get_waiter_async(self) -> DBOSWaiter:
        """This process's shared waiter for the connection (see :mod:`dbos_orchestrator.waiting.waiter`)."""
        from dbos_orchestrator.waiting.waiter import get_waiter

        async def client_kwargs() -> dict[str, Any]:
            return (await self.get_settings_async()).client_kwargs()

        return await get_waiter(self.dbos_conn_id, client_kwargs)

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
        await asyncio.to_thread(self.close)

    # -- the documented DBOSClient API ---------------------------------------------------

    def service(self, settings: DBOSConnectionSettings | None = None) -> DBOSService:
        """The core's :class:`~dbos_orchestrator.service.DBOSService` on this hook's client and connection."""
        from dbos_orchestrator.service import DBOSService

        settings = settings or self.settings
        return DBOSService(
            self.get_client(),
            allow_pickle=settings.allow_pickle,
            serialization=settings.serialization_type,
            not_found=DBOSWorkflowNotFoundError,
            failed=DBOSWorkflowFailedError,
            log=self.log,
            pickle_hint=PICKLE_HINT,
        )

    def _options(
        self, options: EnqueueOptions, serialization: str | None, settings: DBOSConnectionSettings
    ) -> EnqueueOptions:
        if "serialization_type" in options:
            return options
        return {**options, "serialization_type": choose_format(serialization, settings.serialization_type)}

    def enqueue(
        self, options: EnqueueOptions, *args: Any, serialization: str | None = None, **kwargs: Any
    ) -> WorkflowHandle[Any]:
        """Enqueue a workflow (``DBOSClient.enqueue``); encodes with the connection's serialization.

        The returned handle is dbos' own: its ``get_result()``/``get_status()`` decode like dbos
        (pickled rows are unpickled). Read results safely with :meth:`get_workflow_status`.
        """
        return self.get_client().enqueue(self._options(options, serialization, self.settings), *args, **kwargs)

    def enqueue_or_reattach(
        self, options: EnqueueOptions, args: Iterable[Any] = (), kwargs: dict[str, Any] | None = None, **how: Any
    ) -> Reattach | None:
        """Enqueue ``options["workflow_id"]`` once, encoded with the connection's serialization; a later
        call re-attaches or re-runs it by ``retry_mode`` (:meth:`DBOSService.enqueue_or_reattach
        <dbos_orchestrator.service.DBOSService.enqueue_or_reattach>`). None: this call enqueued it.
        ``how``: ``serialization``, ``retry_mode``, ``check`` as for :meth:`enqueue_attaching`."""
        return self.enqueue_attaching(options, args, kwargs, **how)[1]

    def enqueue_attaching(
        self,
        options: EnqueueOptions,
        args: Iterable[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        serialization: str | None = None,
        retry_mode: str = "resume",
        check: Callable[[], Any] | None = None,
    ) -> tuple[str, Reattach | None]:
        """:meth:`enqueue_or_reattach` and the id to wait on (another workflow's with
        ``duplication_policy="return-existing"``); ``check`` runs only before an enqueue."""
        settings = self.settings
        options = self._options(options, serialization, settings)
        return self.service(settings).enqueue_attaching(options, args, kwargs, retry_mode=retry_mode, check=check)

    async def enqueue_async(
        self, options: EnqueueOptions, *args: Any, serialization: str | None = None, **kwargs: Any
    ) -> WorkflowHandleAsync[Any]:
        settings = await self.get_settings_async()
        client = await self.get_client_async()
        return await client.enqueue_async(self._options(options, serialization, settings), *args, **kwargs)

    def enqueue_many(
        self,
        options: EnqueueOptions,
        items: Iterable[Any],
        *,
        serialization: str | None = None,
        record_once: str | None = None,
    ) -> list[str]:
        """Enqueue one workflow per item in one transaction (all or nothing); return the ids.

        Each item is ``{"args": [...], "kwargs": {...}, "workflow_id": "..."}`` (all optional)
        or a list of positional args. Ids that already exist are left alone, so a retry with
        the same ids enqueues nothing new. ``record_once``: the attributes key whose record may be
        written once for the batch. See :mod:`dbos_orchestrator.store.bulk`.
        """
        from dbos_orchestrator.store.bulk import enqueue_many

        options = self._options(options, serialization, self.settings)
        return enqueue_many(self.get_client(), options, items, record_once=record_once)

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
        fmt = choose_format(serialization, self.settings.serialization_type)
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
        fmt = choose_format(serialization, (await self.get_settings_async()).serialization_type)
        client = await self.get_client_async()
        await client.send_async(destination_id, message, topic, idempotency_key, serialization_type=fmt)

    def get_event(self, workflow_id: str, key: str, timeout_seconds: float = 60) -> Any:
        """The latest value of event ``key`` of a workflow, or None after ``timeout_seconds``.

        Read through :meth:`value_reader`: a pickled value is refused
        (:class:`~dbos_orchestrator.exceptions.DBOSUnsafeValueError`) unless the connection allows it.
        """
        reader = self.value_reader()
        deadline = time.monotonic() + max(0.0, timeout_seconds)
        delay = 0.05
        while True:
            published, value = reader.event(workflow_id, key)
            left = deadline - time.monotonic()
            if published or left <= 0:
                return value
            time.sleep(min(delay, left))
            delay = min(delay * 2, 1.0)

    async def get_event_async(self, workflow_id: str, key: str, timeout_seconds: float = 60) -> Any:
        await self.get_settings_async()
        await self.get_client_async()
        return await asyncio.to_thread(self.get_event, workflow_id, key, timeout_seconds)

    def retrieve_workflow(self, workflow_id: str) -> WorkflowHandle[Any]:
        """dbos' handle of a workflow (its ``get_result()`` decodes like dbos: see :meth:`enqueue`)."""
        return self.get_client().retrieve_workflow(workflow_id)

    async def retrieve_workflow_async(self, workflow_id: str) -> WorkflowHandleAsync[Any]:
        return await (await self.get_client_async()).retrieve_workflow_async(workflow_id)

    def value_reader(self) -> ValueReader:
        """Reads stored values safely: pickled rows are refused unless the connection has ``allow_pickle``."""
        return self.service().value_reader()

    async def get_value_reader_async(self) -> ValueReader:
        """:meth:`value_reader` on this process's shared waiter's client (what triggers read with)."""
        from dbos_orchestrator.store.values import ValueReader

        waiter = await self.get_waiter_async()
        settings = await self.get_settings_async()
        return ValueReader(waiter.client, allow_pickle=settings.allow_pickle, pickle_hint=PICKLE_HINT)

    # -- workflow management -------------------------------------------------------------

    def list_workflows(self, **filters: Any) -> list[WorkflowStatus]:
        """Workflows matching dbos' ``list_workflows`` filters: metadata only (inputs and outputs are
        not loaded; read values through :meth:`value_reader`)."""
        return self.service().list_workflows(**filters)

    def get_workflow_status(self, workflow_id: str, *, load_output: bool = False) -> dict[str, Any] | None:
        """The workflow's status as a JSON-safe dict, or None when no such workflow exists.

        Inputs are never loaded. With ``load_output=True`` the dict also has ``output`` and
        ``error`` (``Name: message``), read through :meth:`value_reader`.
        """
        return self.service().get_workflow_status(workflow_id, load_output=load_output)

    async def get_workflow_statuses_async(self, workflow_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Statuses of many workflows in one query: ``{workflow_id: status dict}`` (no values)."""
        client = await self.get_client_async()
        rows = await client.list_workflows_async(workflow_ids=list(workflow_ids), load_input=False, load_output=False)
        return {r.workflow_id: status_to_dict(r) for r in rows}

    def get_workflow_statuses(self, workflow_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Statuses of many workflows in one query: ``{workflow_id: status dict}`` (no values; missing ids absent)."""
        return self.service().get_workflow_statuses(workflow_ids)

    def cancel_workflows(self, workflow_ids: list[str]) -> None:
        """Cancel workflows in one statement (idempotent; ended or unknown ones are left as they are)."""
        self.get_client().cancel_workflows(workflow_ids)

    def resume_workflows(self, workflow_ids: list[str], *, queue_name: str | None = None) -> None:
        """Continue CANCELLED or MAX_RECOVERY_ATTEMPTS_EXCEEDED workflows where they stopped."""
        self.get_client().resume_workflows(workflow_ids, queue_name=queue_name)

    def fork_workflow(
        self,
        workflow_id: str,
        start_step: int,
        *,
        forked_workflow_id: str,
        application_version: str | None = None,
        queue_name: str | None = None,
    ) -> bool:
        """Fork ``workflow_id`` from ``start_step`` as ``forked_workflow_id``, at most once.

        Returns True if this call made the fork, False if ``forked_workflow_id`` already is a fork
        of ``workflow_id`` (a retry re-attaching). A workflow of that id that is not such a fork
        raises :class:`~dbos_orchestrator.exceptions.DBOSOptionsError`; a missing original raises
        :class:`~dbos_airflow.exceptions.DBOSWorkflowNotFoundError`.
        """
        return self.service().fork_workflow(
            workflow_id,
            start_step,
            forked_workflow_id=forked_workflow_id,
            application_version=application_version,
            queue_name=queue_name,
        )

    def cancel_workflow(self, workflow_id: str) -> None:
        """Cancel a workflow (idempotent; a finished or unknown workflow is left as it is)."""
        self.get_client().cancel_workflow(workflow_id)

    async def cancel_workflow_async(self, workflow_id: str) -> None:
        await (await self.get_client_async()).cancel_workflow_async(workflow_id)

    def resume_workflow(self, workflow_id: str, *, queue_name: str | None = None) -> None:
        """Continue a CANCELLED or MAX_RECOVERY_ATTEMPTS_EXCEEDED workflow where it stopped."""
        self.get_client().resume_workflow(workflow_id, queue_name=queue_name)

    def rerun_workflow(self, workflow_id: str, *, from_failed_step: bool, queue_name: str | None = None) -> None:
        """Run an ended workflow again under the same id.

        With ``from_failed_step`` the steps that completed are kept (rewind to the first step
        that failed or never finished); otherwise it starts again from its first step. Step
        outcomes are read without decoding any value.
        """
        self.service().rerun_workflow(workflow_id, from_failed_step=from_failed_step, queue_name=queue_name)

    def require_workflow(self, workflow_id: str) -> dict[str, Any]:
        """The workflow's status dict; :class:`DBOSWorkflowNotFoundError` names a missing id."""
        return self.service().require_workflow(workflow_id)

    def wait_for_status(self, workflow_id: str, *, timeout: float | None, poll_interval: float) -> dict[str, Any]:
        """Poll until the workflow ends (leaves the active statuses) or ``timeout`` passes.

        Polls start 0.1 s apart and double up to ``poll_interval``, so a short workflow is
        noticed quickly and a long one costs one query per ``poll_interval``. Every
        ``PROGRESS_LOG_SECONDS`` it logs the status and the last recorded step. Returns the last
        status dict seen (still active if the timeout passed).
        """
        return self.service().wait_for_status(
            workflow_id,
            timeout=timeout,
            poll_interval=poll_interval,
            progress_every=PROGRESS_LOG_SECONDS,
            log=self.log.info,
        )

    # -- Airflow UI ----------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Reach the system database and check that it holds DBOS system tables."""
        try:
            settings = self.settings
            client = self.get_client()
            client.list_workflows(limit=1, load_input=False, load_output=False)
        except DBOSOrchestratorError as exc:
            return False, str(exc)
        except Exception as exc:  # noqa: BLE001 - the UI shows the reason instead of a traceback
            message = f"{type(exc).__name__}: {getattr(exc, 'orig', None) or exc}".strip()
            url = self._settings and sa.make_url(self._settings.system_database_url)
            return False, hide_password(message, url.password if url else None)
        finally:
            self.close()
        if client.schema is None:  # SQLite has no schemas
            return True, f"Connected to {client.target}: DBOS system tables found"
        return True, (
            f"Connected to {client.target}: DBOS system tables found in schema {settings.dbos_system_schema!r}"
        )
