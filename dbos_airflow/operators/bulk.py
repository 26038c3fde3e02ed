"""DBOSBulkEnqueueOperator: enqueue many DBOS workflows in one transaction."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from dbos_airflow.exceptions import DBOSOptionsError, DBOSSerializationError
from dbos_airflow.hooks.dbos import SERIALIZATIONS, DBOSHook

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

    from dbos_airflow.client import EnqueueOptions


class DBOSBulkEnqueueOperator(BaseOperator):
    """
    Enqueue one DBOS workflow per item, all in one database transaction, and return their ids.

    Either every workflow is enqueued or none is. Item ``i`` without an explicit
    ``workflow_id`` gets ``dag_id:run_id:task_id:map_index:i``, the same on every try of the
    task instance: a retry after a crash enqueues nothing new and returns the same ids. The
    XCom return value is the list of workflow ids, in item order.

    With portable serialization (the default) on Postgres, the workflows are written by DBOS'
    own ``enqueue_workflow`` SQL function in one pipelined batch (tens of thousands per
    second); with ``serialization="pickle"`` or SQLite, by ``DBOSClient.enqueue_in_transaction``.

    :param workflow_name: registered name of the workflow.
    :param queue_name: DBOS queue the application's workers poll.
    :param items: one entry per workflow (templated; a JSON string is accepted): a dict with
        optional keys ``args`` (list), ``kwargs`` (dict) and ``workflow_id`` (str), or a list
        of positional arguments.
    :param workflow_class_name: class of a class-based workflow.
    :param app_version: only workers of this application version run them.
    :param priority: queue priority, 1 (first) .. 2**31-1.
    :param workflow_timeout: seconds after dequeue before DBOS cancels each workflow.
    :param delay_seconds: seconds before the workflows become eligible to run.
    :param queue_partition_key: partition of a partitioned queue.
    :param serialization: ``portable`` (JSON, default) or ``pickle``.
    :param dbos_conn_id: the ``dbos`` connection.
    """

    template_fields: Sequence[str] = (
        "workflow_name",
        "queue_name",
        "items",
        "workflow_class_name",
        "app_version",
        "queue_partition_key",
    )
    template_fields_renderers = {"items": "json"}
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        workflow_name: str,
        queue_name: str,
        items: Sequence[Any] | str,
        workflow_class_name: str | None = None,
        app_version: str | None = None,
        priority: int | None = None,
        workflow_timeout: float | None = None,
        delay_seconds: float | None = None,
        queue_partition_key: str | None = None,
        serialization: str = "portable",
        dbos_conn_id: str = DBOSHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if serialization not in SERIALIZATIONS:
            raise ValueError(f"serialization={serialization!r}; use one of {SERIALIZATIONS}")
        self.workflow_name = workflow_name
        self.queue_name = queue_name
        self.items = items
        self.workflow_class_name = workflow_class_name
        self.app_version = app_version
        self.priority = priority
        self.workflow_timeout = workflow_timeout
        self.delay_seconds = delay_seconds
        self.queue_partition_key = queue_partition_key
        self.serialization = serialization
        self.dbos_conn_id = dbos_conn_id

    def _options(self) -> EnqueueOptions:
        options: dict[str, Any] = {
            "workflow_name": self.workflow_name,
            "queue_name": self.queue_name,
            "workflow_class_name": self.workflow_class_name,
            "app_version": self.app_version,
            "priority": self.priority,
            "workflow_timeout": self.workflow_timeout,
            "delay_seconds": self.delay_seconds,
            "queue_partition_key": self.queue_partition_key,
        }
        return {k: v for k, v in options.items() if v is not None}  # type: ignore[return-value]

    def _items(self) -> Any:
        items = self.items
        if isinstance(items, str):
            try:
                items = json.loads(items) if items.strip() else []
            except json.JSONDecodeError as exc:
                raise AirflowFailException(f"items is not valid JSON: {exc}") from None
        return items

    def execute(self, context: Context) -> list[str]:
        from dbos_airflow.hooks.bulk import normalize_items
        from dbos_airflow.operators.dbos import derived_id

        base = derived_id(context)
        try:
            batch = normalize_items(self._items(), default_id=lambda index: f"{base}:{index}")
            with DBOSHook(self.dbos_conn_id) as hook:
                ids = hook.enqueue_many(self._options(), batch, serialization=self.serialization)
        except (DBOSOptionsError, DBOSSerializationError) as exc:
            # The same items would fail the same way on every retry: fail the task now.
            raise AirflowFailException(str(exc)) from exc
        self.log.info("%d DBOS workflow(s) %s enqueued on %s", len(ids), self.workflow_name, self.queue_name)
        return ids
