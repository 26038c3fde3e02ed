"""OpenLineage for DBOS tasks: the run facet naming the workflows a task ran, and the task's parent run
handed to its workflows (docs/observability.md).

The OpenLineage provider is optional (``dbos-airflow[openlineage]``). Its listener finds
``get_openlineage_facets_on_complete`` / ``_on_failure`` by name on every operator and calls them in
the task's process after ``execute`` (or ``execute_complete``). Without the provider nothing here is
called and nothing is imported: :func:`lineage_attributes` checks once per process whether it is
installed (and then whether a transport is configured) before importing anything of it.

What a task's OpenLineage run carries:

* run facet ``dbos_workflow`` (:func:`workflow_facet`): ``workflowIds`` (the first
  :data:`MAX_IDS` of them: a bulk task of 10,000 names the count and the first ids), ``workflowCount``,
  ``workflowName``, ``queueName``, ``status`` (the first workflow's; a batch: counts by status of the
  named ones), ``appVersion``, ``namespace``;
* run facet ``externalQuery``: the first workflow's id with ``source`` the system database as
  ``postgres://host:port/database`` (never a user or password);
* inputs and outputs: the task's ``inlets`` and ``outlets``, converted by the provider's own rule
  (``ExtractorManager.convert_to_ol_dataset``: its fallback to them is skipped once hook lineage is on).

And what the workflows carry: ``attributes["openlineage"]`` = ``{"parent": {"run": {"runId"},
"job": {"namespace", "name"}}, "root": {...}}``, the dict the dbt Cloud and Databricks providers
hand to their jobs, so a DBOS-side consumer can link its events to the Airflow task's run.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    from dbos_airflow.hooks.dbos import DBOSHook

__all__ = [
    "MAX_IDS",
    "OPENLINEAGE_ATTRIBUTE",
    "DBOSLineageMixin",
    "annotate_outlet_events",
    "lineage_attributes",
    "system_namespace",
    "with_lineage",
]

log = logging.getLogger(__name__)

OPENLINEAGE_ATTRIBUTE = "openlineage"
MAX_IDS = 10  # workflow ids named in a run facet; the count says how many there are


@functools.cache
def _provider_installed() -> bool:
    return importlib.util.find_spec("airflow.providers.openlineage") is not None


def _enabled() -> bool:
    if not _provider_installed():
        return False
    from airflow.providers.openlineage.conf import is_disabled

    return not is_disabled()


def lineage_attributes(ti: Any) -> dict[str, Any]:
    """``{"openlineage": {"parent": ..., "root": ...}}`` for the workflows ``ti`` enqueues; empty when
    OpenLineage is not installed or not enabled. A failure to compute it is logged, never fatal."""
    if not _enabled():
        return {}
    from airflow.providers.openlineage.plugins.macros import (
        lineage_job_name,
        lineage_job_namespace,
        lineage_root_job_name,
        lineage_root_run_id,
        lineage_run_id,
    )

    try:
        namespace = lineage_job_namespace()
        parent = {"run": {"runId": lineage_run_id(ti)}, "job": {"namespace": namespace, "name": lineage_job_name(ti)}}
        root = {
            "run": {"runId": lineage_root_run_id(ti)},
            "job": {"namespace": namespace, "name": lineage_root_job_name(ti)},
        }
    except Exception:  # as the provider itself: lineage never fails a task
        log.warning("Could not compute the OpenLineage parent run of %s", getattr(ti, "task_id", ti), exc_info=True)
        return {}
    return {OPENLINEAGE_ATTRIBUTE: {"parent": parent, "root": root}}


def with_lineage(options: Any, ti: Any) -> Any:
    """Enqueue ``options`` with the task's OpenLineage parent run merged into their ``attributes``."""
    found = lineage_attributes(ti)
    return {**options, "attributes": {**(options.get("attributes") or {}), **found}} if found else options


def annotate_outlet_events(
    context: Any, outlets: Any, workflow_ids: list[str], status: Any, *, count: int | None = None
) -> None:
    """Name the workflows in the ``extra`` of every asset event the task emits for its ``outlets``:
    ``dbos_workflow_ids`` (the first :data:`MAX_IDS`), ``dbos_workflow_count`` and ``dbos_status`` (one
    workflow's status, or a batch's counts by status)."""
    events = context.get("outlet_events") if outlets else None
    if events is None:
        return
    from airflow.sdk import Asset

    extra = {
        "dbos_workflow_ids": workflow_ids[:MAX_IDS],
        "dbos_workflow_count": len(workflow_ids) if count is None else count,
        "dbos_status": status,
    }
    for outlet in outlets:
        if isinstance(outlet, Asset):
            events[outlet].extra.update(extra)


def system_namespace(system_database_url: str) -> str:
    """The system database as an OpenLineage namespace: ``postgres://host:port/database``, no credentials."""
    url = sa.make_url(system_database_url)
    if url.get_backend_name() == "sqlite":
        return f"sqlite://{url.database or ''}"
    return f"postgres://{url.host or 'localhost'}:{url.port or 5432}/{url.database or ''}"


@functools.cache
def _facet_type() -> type:
    import attrs
    from airflow.providers.common.compat.openlineage.facet import RunFacet

    @attrs.define
    class DBOSWorkflowRunFacet(RunFacet):
        """The DBOS workflows an Airflow task ran."""

        workflowIds: list[str]  # noqa: N815 (OpenLineage's camelCase)
        workflowCount: int  # noqa: N815
        workflowName: str | None  # noqa: N815
        queueName: str | None  # noqa: N815
        status: str | dict[str, int] | None
        appVersion: str | None  # noqa: N815
        namespace: str

    return DBOSWorkflowRunFacet


def workflow_facet(ids: list[str], statuses: dict[str, dict[str, Any]], namespace: str) -> Any:
    """The ``dbos_workflow`` run facet of ``ids`` (statuses of the first :data:`MAX_IDS` of them)."""
    named = ids[:MAX_IDS]
    first = statuses.get(named[0], {}) if named else {}
    status: str | dict[str, int] | None
    if len(ids) == 1:
        status = first.get("status")
    else:
        status = {}
        for wid in named:
            found = statuses.get(wid, {}).get("status") or "NOT_FOUND"
            status[found] = status.get(found, 0) + 1
    return _facet_type()(
        workflowIds=named,
        workflowCount=len(ids),
        workflowName=first.get("name"),
        queueName=first.get("queue_name"),
        status=status,
        appVersion=first.get("app_version"),
        namespace=namespace,
    )


class DBOSLineageMixin:
    """OpenLineage's operator interface for every DBOS task (mixed into ``DBOSTaskMixin``)."""

    task_id: str

    @property
    def hook(self) -> DBOSHook:  # DBOSTaskMixin's
        raise NotImplementedError

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The task's workflows as run facets (the provider adds ``inlets``/``outlets``)."""
        return self._dbos_lineage(task_instance)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        return self._dbos_lineage(task_instance)

    def dbos_lineage_workflow_ids(self, task_instance: Any) -> list[str]:
        """The workflow ids the task ran: XCom ``workflow_id``, else its returned list of ids, else its
        ``workflow_ids`` argument (a many-ids sensor)."""
        from dbos_airflow.links import WORKFLOW_ID_KEY

        single = task_instance.xcom_pull(task_ids=self.task_id, key=WORKFLOW_ID_KEY)
        if isinstance(single, str):
            return [single]
        returned = task_instance.xcom_pull(task_ids=self.task_id, key="return_value")
        if isinstance(returned, list) and returned and all(isinstance(w, str) for w in returned):
            return returned
        given = getattr(self, "workflow_ids", None)
        return [w for w in given if isinstance(w, str)] if isinstance(given, list) else []

    def _dbos_lineage(self, task_instance: Any) -> Any:
        from airflow.providers.common.compat.openlineage.facet import ExternalQueryRunFacet
        from airflow.providers.openlineage.extractors import OperatorLineage
        from airflow.providers.openlineage.extractors.manager import ExtractorManager

        convert = ExtractorManager.convert_to_ol_dataset  # the provider's own rule for inlets/outlets
        lineage: Any = OperatorLineage(
            inputs=[d for d in map(convert, getattr(self, "inlets", None) or []) if d is not None],
            outputs=[d for d in map(convert, getattr(self, "outlets", None) or []) if d is not None],
        )
        ids = self.dbos_lineage_workflow_ids(task_instance)
        if ids:
            namespace = system_namespace(self.hook.settings.system_database_url)
            statuses = self.hook.get_workflow_statuses(ids[:MAX_IDS])
            lineage.run_facets = {
                "dbos_workflow": workflow_facet(ids, statuses, namespace),
                "externalQuery": ExternalQueryRunFacet(externalQueryId=ids[0], source=namespace),
            }
        return lineage
