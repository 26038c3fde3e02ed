"""Extra links of every DBOS operator and sensor, and the XCom they are built from.

Airflow 3 computes a link once, on the worker when the task finishes (``get_link``), and keeps
it in XCom; the API server serves it from there and never imports this module for it.

* "DBOS workflow" opens the workflow view of the dbos-airflow plugin for this task instance
  (``<api base_url>/dbos/ti/<dag>/<run>/<task>/<map_index>``): a mapped task instance links to
  its own workflow, a bulk enqueue to the list of its workflows.
* "DBOS console" opens the connection's ``console_url`` extra (a URL template with
  ``{workflow_id}``, e.g. a self-hosted or managed Conductor), when it has one.

Operators and sensors call :func:`remember_workflow` as soon as they know their workflow, so
the view finds it while the task is still running (before any link exists).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context
    from airflow.sdk.types import TaskInstanceKey

__all__ = [
    "CONN_ID_KEY",
    "WORKFLOW_ID_KEY",
    "DBOSConsoleLink",
    "DBOSTraceLink",
    "DBOSWorkflowLink",
    "remember_workflow",
    "view_path",
]

WORKFLOW_ID_KEY = "workflow_id"
TRACE_ID_KEY = "otel_trace_id"
CONN_ID_KEY = "dbos_conn_id"
PLUGIN_PREFIX = "/dbos"


def remember_workflow(context: Context, conn_id: str, workflow_id: str | None = None) -> None:
    """Push the task's connection (and single workflow id) to XCom for the links and the view, and the
    trace id its workflows joined when OpenTelemetry traces the task (docs/observability.md)."""
    from dbos_orchestrator.tracing import trace_id_of

    ti = context["ti"]
    ti.xcom_push(key=CONN_ID_KEY, value=conn_id)
    if workflow_id is not None:
        ti.xcom_push(key=WORKFLOW_ID_KEY, value=workflow_id)
    trace_id = trace_id_of()
    if trace_id is not None:
        ti.xcom_push(key=TRACE_ID_KEY, value=trace_id)


def view_path(dag_id: str, run_id: str, task_id: str, map_index: int) -> str:
    """Path (under the API server's base URL) of the plugin's view of one task instance."""
    parts = (quote(str(p), safe="") for p in (dag_id, task_id, map_index, run_id))
    return f"{PLUGIN_PREFIX}/ti/" + "/".join(parts)


def _base_url() -> str:
    from airflow.sdk.configuration import conf

    return (conf.get("api", "base_url", fallback="") or "").rstrip("/")


class DBOSWorkflowLink(BaseOperatorLink):
    """Opens the task instance's DBOS workflow in Airflow's own DBOS view."""

    name = "DBOS workflow"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        return _base_url() + view_path(ti_key.dag_id, ti_key.run_id, ti_key.task_id, ti_key.map_index)


class DBOSConsoleLink(BaseOperatorLink):
    """Opens the workflow in the console named by the connection's ``console_url`` extra, if any."""

    name = "DBOS console"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        conn_id = getattr(operator, "dbos_conn_id", None)
        template = console_template(str(conn_id)) if conn_id else None
        if not template:
            return ""  # the connection has no console: no XCom read at all
        workflow_id: Any = XCom.get_value(ti_key=ti_key, key=WORKFLOW_ID_KEY)
        if not isinstance(workflow_id, str):
            return ""  # no workflow (yet), or many (bulk): the DBOS workflow view lists them
        return template.replace("{workflow_id}", quote(workflow_id, safe=""))


class DBOSTraceLink(BaseOperatorLink):
    """Opens the trace the task's workflows joined in the UI named by the connection's ``trace_url`` extra."""

    name = "Trace"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom
        from dbos_orchestrator.tracing import trace_link

        conn_id = getattr(operator, "dbos_conn_id", None)
        template = console_template(str(conn_id), "trace_url") if conn_id else None
        if not template:
            return ""
        trace_id: Any = XCom.get_value(ti_key=ti_key, key=TRACE_ID_KEY)
        return (trace_link(template, trace_id) or "") if isinstance(trace_id, str) else ""


def console_template(conn_id: str, extra: str = "console_url") -> str | None:
    """The connection's ``console_url`` extra (a template with ``{workflow_id}``), or another link
    template extra (``trace_url``: ``{trace_id}``), if any."""
    from airflow.sdk import BaseHook

    template = (BaseHook.get_connection(conn_id).extra_dejson or {}).get(extra)
    return str(template) if template else None
