"""Retention: delete ended DBOS workflows older than a cutoff, in pages. Thin over
:mod:`dbos_orchestrator.operations.retention` (docs/operations.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dbos_orchestrator.forms import as_bool, as_json, as_text
from dbos_orchestrator.operations.retention import DEFAULT_PAGE_SIZE, purge_workflows

from dbos_airflow.operators.base import DBOSBaseOperator, dbos_template_fields

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import timedelta

    from airflow.sdk import Context

__all__ = ["DBOSDeleteWorkflowsOperator"]


class DBOSDeleteWorkflowsOperator(DBOSBaseOperator):
    """
    Delete ended DBOS workflows (with their inputs, outputs, steps, events and messages) that ended
    before a cutoff, page by page: one read of at most ``page_size`` ids and one delete of them per
    page, so no statement holds locks for long and workers keep running. Active workflows are never
    selected. Returns how many were deleted (a retry deletes what is left).

    :param older_than: the cutoff: a ``timedelta``, seconds before now, or an ISO date-time (templated,
        e.g. ``"{{ macros.ds_add(ds, -30) }}"``); never in the future.
    :param statuses: ended statuses to delete (default all four), a list or JSON text.
    :param workflow_name: only workflows of this name (templated).
    :param queue_name: only workflows that ran on this queue (templated).
    :param delete_children: also delete the workflows they started (DBOS' rule: whatever their status).
    :param page_size: ids per page (default 1,000; at most 10,000).
    :param max_pages: stop after this many pages (None: until nothing is left).
    :param dbos_conn_id: the ``dbos`` connection.
    """

    template_fields: Sequence[str] = dbos_template_fields(
        "older_than", "statuses", "workflow_name", "queue_name", "delete_children"
    )

    def __init__(
        self,
        *,
        older_than: timedelta | float | str,
        statuses: list[str] | str | None = None,
        workflow_name: str | None = None,
        queue_name: str | None = None,
        delete_children: bool | str = False,
        page_size: int = DEFAULT_PAGE_SIZE,
        max_pages: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.older_than = older_than
        self.statuses = statuses
        self.workflow_name = workflow_name
        self.queue_name = queue_name
        self.delete_children = delete_children
        self.page_size = page_size
        self.max_pages = max_pages

    def execute_dbos(self, context: Context) -> int:
        statuses = self.statuses
        if isinstance(statuses, str):
            statuses = as_json("statuses", statuses, list) if statuses.strip().startswith("[") else [statuses]
        deleted = purge_workflows(
            self.hook.get_client(),
            self.older_than,
            statuses=statuses or None,
            workflow_name=as_text(self.workflow_name) or None,
            queue_name=as_text(self.queue_name) or None,
            delete_children=as_bool("delete_children", self.delete_children),
            page_size=self.page_size,
            max_pages=self.max_pages,
            log=lambda line: self.log.info("%s", line),
        )
        self.log.info("Deleted %d ended DBOS workflow(s) older than %s", deleted, self.older_than)
        return deleted
