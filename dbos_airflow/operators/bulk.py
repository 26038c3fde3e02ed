"""DBOSBulkEnqueueOperator: enqueue many DBOS workflows in one transaction."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowSkipException
from dbos_orchestrator.forms import as_json

from dbos_airflow.contract.ids import bulk_item_id, derived_id
from dbos_airflow.links import remember_workflow
from dbos_airflow.operators.dbos import DBOSBaseEnqueueOperator

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context


class DBOSBulkEnqueueOperator(DBOSBaseEnqueueOperator):
    """
    Enqueue one DBOS workflow per item, all in one database transaction, and return their ids.

    Either every workflow is enqueued or none is. Item ``i`` without an explicit
    ``workflow_id`` gets ``dag_id:run_id:task_id:map_index:i``, the same on every try of the
    task instance: a retry after a crash enqueues nothing new and returns the same ids. The
    XCom return value is the list of workflow ids, in item order.

    With portable serialization (the default) on Postgres, the workflows are written by DBOS'
    own ``enqueue_workflow`` SQL function in one pipelined batch (tens of thousands per
    second); with ``serialization="pickle"`` or SQLite, by ``DBOSClient.enqueue_in_transaction``.

    :param items: one entry per workflow (templated; a JSON string is accepted; an empty list skips
        the task, as mapping over an empty list does): a dict with
        optional keys ``args`` (list), ``kwargs`` (dict) and ``workflow_id`` (str), or a list
        of positional arguments.

    The other parameters are those of :class:`~dbos_airflow.operators.dbos.DBOSBaseEnqueueOperator`.
    """

    template_fields: Sequence[str] = (*DBOSBaseEnqueueOperator.template_fields, "items")
    template_fields_renderers = {"items": "json"}

    def __init__(self, *, items: Sequence[Any] | str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.items = items

    def execute_dbos(self, context: Context) -> list[str]:
        from dbos_orchestrator.store.bulk import normalize_items

        from dbos_airflow.contract.ownership import with_owner

        base = derived_id(context)
        items = as_json("items", self.items, list)
        if not items:  # as Airflow does with a task mapped over an empty list
            raise AirflowSkipException("items is empty: no DBOS workflow to enqueue")
        batch = normalize_items(items, default_id=lambda index: bulk_item_id(base, index))
        options = with_owner(self._options(), context["ti"], self.dbos_conn_id)  # docs/ui.md, Permissions
        ids = self.hook.enqueue_many(options, batch, serialization=self.serialization)
        self.log.info("%d DBOS workflow(s) %s enqueued on %s", len(ids), self.workflow_name, self.queue_name)
        remember_workflow(context, self.dbos_conn_id)  # the ids are the return value
        return ids
