"""What the DBOS views show, read safely: workflows through the hook, pointers from Airflow's DB.

Workflow metadata comes from ``list_workflows(load_input=False, load_output=False)`` (no
decoding); inputs, outputs, errors, events and steps from :class:`~dbos_orchestrator.store.values.ValueReader`
(pickled values stay "pickled, not decoded" unless the connection has ``allow_pickle``).
Which workflows a task instance started is what DBOS' owner records say
(:mod:`dbos_airflow.plugin.records`); its XCom (``dbos_conn_id``, ``workflow_id``, a bulk
task's returned list) is only a pointer, checked against those records.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dbos_airflow.links import CONN_ID_KEY, WORKFLOW_ID_KEY, console_template
from dbos_airflow.plugin.times import Clock

if TYPE_CHECKING:
    from collections.abc import Callable

    from dbos import WorkflowStatus
    from dbos_orchestrator.store.steps import StoredStep
    from dbos_orchestrator.waiting.batch import BatchCounts
    from sqlalchemy.orm import Session

    from dbos_airflow.hooks.dbos import DBOSHook
    from dbos_airflow.plugin.streams import StreamView

DEFAULT_CONN_ID = "dbos_default"
HOOK_TTL_SECONDS = 300


class ViewError(Exception):
    """A one-line message the page shows instead of data (never a traceback, never a password)."""

    def __init__(self, message: str, status_code: int = 502) -> None:
        super().__init__(message)
        self.status_code = status_code


# -- connections: one hook (one small pool) per connection id, renewed every few minutes ----

_hooks: dict[str, tuple[float, DBOSHook]] = {}
_hooks_lock = threading.Lock()


def hook_for(conn_id: str) -> DBOSHook:
    """A connected :class:`DBOSHook` for ``conn_id``, shared by the API server's requests."""
    from airflow.exceptions import AirflowNotFoundException

    from dbos_airflow.hooks.dbos import DBOSHook

    with _hooks_lock:
        entry = _hooks.get(conn_id)
        if entry is not None and time.monotonic() - entry[0] < HOOK_TTL_SECONDS:
            return entry[1]
        if entry is not None:
            entry[1].close()
        hook = DBOSHook(conn_id)
        try:
            conn_type = hook.get_connection(conn_id).conn_type
        except AirflowNotFoundException:
            raise ViewError(f"conn_id: no connection {conn_id!r} is defined in Airflow", 404) from None
        if conn_type != DBOSHook.conn_type:  # never point the view at another kind of connection's credentials
            raise ViewError(
                f"conn_id: connection {conn_id!r} is of type {conn_type!r}, not {DBOSHook.conn_type!r}", 400
            )
        _hooks[conn_id] = (time.monotonic(), hook)
        return hook


def forget_hook(conn_id: str) -> None:
    """Drop a hook after a connection fault, so the next request reconnects (and re-reads it)."""
    with _hooks_lock:
        entry = _hooks.pop(conn_id, None)
    if entry is not None:
        entry[1].close()


def is_connection_fault(exc: BaseException) -> bool:
    """The database (or the way to it) is at fault, not the request."""
    import sqlalchemy as sa
    from dbos_orchestrator.exceptions import DBOSConnectionError, DBOSSchemaMissingError

    if isinstance(exc, (DBOSConnectionError, DBOSSchemaMissingError, ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError))


def explain(conn_id: str, exc: BaseException) -> ViewError:
    """A one-line :class:`ViewError` naming the connection, for any error reaching DBOS.

    Only a connection fault (a 502) drops the shared hook: other requests use its pool.
    """
    from dbos_orchestrator.exceptions import DBOSOrchestratorError

    if isinstance(exc, ViewError):
        return exc
    fault = is_connection_fault(exc)
    if fault:
        forget_hook(conn_id)
    if isinstance(exc, DBOSOrchestratorError):
        text = str(exc)  # ours: already names host/database and never the password
    else:
        orig = getattr(exc, "orig", None) or exc
        text = f"{type(orig).__name__}: {orig}"
    line = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return ViewError(f"connection {conn_id!r}: {line}", 502 if fault else 500)


# -- task instance -> connection and workflow ids (a pointer, checked against DBOS) ----------


@dataclass
class TaskPointer:
    """What a task instance's XCom says: its connection and the workflows it points at."""

    conn_id: str | None
    workflow_ids: list[str]


def task_pointer(session: Session, dag_id: str, run_id: str, task_id: str, map_index: int) -> TaskPointer:
    """The task instance's XCom pointer (``dbos_conn_id``; ``workflow_id`` or a bulk task's list)."""
    import sqlalchemy as sa
    from airflow.models.xcom import XComModel

    rows = session.scalars(
        sa.select(XComModel).where(
            XComModel.dag_id == dag_id,
            XComModel.run_id == run_id,
            XComModel.task_id == task_id,
            XComModel.map_index == map_index,
            XComModel.key.in_([CONN_ID_KEY, WORKFLOW_ID_KEY, "return_value"]),
        )
    ).all()
    xcom = {row.key: XComModel.deserialize_value(row) for row in rows}
    conn_id = xcom.get(CONN_ID_KEY)
    ids: list[str] = []
    if isinstance(xcom.get(WORKFLOW_ID_KEY), str):
        ids = [xcom[WORKFLOW_ID_KEY]]
    elif isinstance(xcom.get("return_value"), list) and conn_id is not None:
        ids = [i for i in xcom["return_value"] if isinstance(i, str)]
    return TaskPointer(conn_id if isinstance(conn_id, str) and conn_id else None, ids)


def approval_for(dag_id: str, run_id: str, task_id: str, map_index: int) -> dict[str, Any] | None:
    """:func:`approval_of` in a session of its own."""
    from airflow.utils.session import create_session

    with create_session() as session:
        return approval_of(session, dag_id, run_id, task_id, map_index)


def approval_of(session: Session, dag_id: str, run_id: str, task_id: str, map_index: int) -> dict[str, Any] | None:
    """What an approval task (docs/approvals.md) asked and what the workflow received, for the tab.

    The task's ``dbos_hitl`` XCom once the answer was delivered (the answer the workflow has);
    before that, the request Airflow shows in Required Actions (``hitl_detail``). None for other tasks.
    """
    import sqlalchemy as sa
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel

    from dbos_airflow.operators.hitl import HITL_XCOM_KEY

    row = session.scalars(
        sa.select(XComModel).where(
            XComModel.dag_id == dag_id,
            XComModel.run_id == run_id,
            XComModel.task_id == task_id,
            XComModel.map_index == map_index,
            XComModel.key == HITL_XCOM_KEY,
        )
    ).first()
    if row is not None:
        record = XComModel.deserialize_value(row)
        if isinstance(record, dict) and isinstance(record.get("answer"), dict):
            return {"question": record.get("question") or {}, "answer": record["answer"], "delivered": True}
    detail = session.scalars(
        sa.select(HITLDetail)
        .join(TaskInstance, TaskInstance.id == HITLDetail.ti_id)
        .where(
            TaskInstance.dag_id == dag_id,
            TaskInstance.run_id == run_id,
            TaskInstance.task_id == task_id,
            TaskInstance.map_index == map_index,
        )
    ).first()
    if detail is None:
        return None
    question = {"subject": detail.subject, "body": detail.body, "options": list(detail.options or [])}
    answer = None
    if detail.responded_at is not None:
        answer = {
            "chosen_options": list(detail.chosen_options or []),
            "params_input": dict(detail.params_input or {}),
            "responded_by": detail.responded_by,
            "responded_at": detail.responded_at.isoformat(),
            "timed_out": False,
        }
    return {"question": question, "answer": answer, "delivered": False}


def task_instance_path(dag_id: str, run_id: str, task_id: str, map_index: int) -> str:
    """Path of a task instance's page in Airflow's UI."""
    from urllib.parse import quote

    path = f"/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}/tasks/{quote(task_id, safe='')}"
    return path + (f"/mapped/{map_index}" if map_index >= 0 else "")


# -- one workflow, everything the view shows --------------------------------------------------


@dataclass
class WorkflowDetail:
    """A workflow as the view shows it."""

    status: WorkflowStatus
    inputs: Any
    output: Any
    error: str | None
    events: dict[str, Any]
    steps: list[StoredStep] = field(default_factory=list)
    clock: Clock = field(default_factory=Clock)
    streams: list[StreamView] = field(default_factory=list)
    trace_id: str | None = None  # the OpenTelemetry trace the workflow joined (docs/observability.md)
    trace_url: str | None = None  # its link, from the connection's trace_url extra

    @property
    def state(self) -> Any:
        from dbos_orchestrator.status import DBOSWorkflowStatus

        try:
            return DBOSWorkflowStatus.parse(self.status.status)
        except ValueError:
            return None

    @property
    def active(self) -> bool:
        return self.state is not None and self.state.is_active()


def statuses(hook: DBOSHook, workflow_ids: list[str]) -> dict[str, WorkflowStatus]:
    """Metadata of the workflows (nothing decoded), by id."""
    if not workflow_ids:
        return {}
    rows = hook.list_workflows(workflow_ids=workflow_ids)  # metadata only
    return {r.workflow_id: r for r in rows}


def status_of(hook: DBOSHook, workflow_id: str) -> WorkflowStatus | None:
    return statuses(hook, [workflow_id]).get(workflow_id)


def clock_of(hook: DBOSHook) -> Clock:
    """How precise the workflow times of the hook's system database are (SQLite: maybe seconds)."""
    return Clock.of_dialect(hook.get_client().system_database_engine.dialect.name)


def workflow_detail(
    hook: DBOSHook,
    status: WorkflowStatus,
    *,
    stream_link: Callable[[str, int | None], str] = lambda key, before: "",
    stream: str | None = None,
    before: int | None = None,
) -> WorkflowDetail:
    """Everything the view shows of one workflow (whose metadata is ``status``).

    :param stream_link: the URL of a stream's page (:func:`~dbos_airflow.plugin.streams.stream_views`).
    :param stream: the stream paged back to ``before`` (its values before that offset).
    """
    from dbos_orchestrator.tracing import trace_id_from_attributes, trace_link

    from dbos_airflow.plugin.streams import stream_views

    reader = hook.value_reader()
    workflow_id = status.workflow_id
    output, error = reader.output_and_error_for_display(workflow_id)
    trace_id = trace_id_from_attributes(getattr(status, "attributes", None))
    return WorkflowDetail(
        status=status,
        inputs=reader.inputs(workflow_id),
        output=output,
        error=error,
        events=reader.events(workflow_id),
        steps=reader.steps(workflow_id),
        clock=clock_of(hook),
        streams=stream_views(reader, workflow_id, link=stream_link, key=stream, before=before),
        trace_id=trace_id,
        trace_url=trace_link(console_template(hook.dbos_conn_id, "trace_url"), trace_id) if trace_id else None,
    )


IDS_PAGE_SIZE = 100  # items per page of a task's many workflows


def batch_page(
    hook: DBOSHook, workflow_ids: list[str], page: int
) -> tuple[BatchCounts, list[tuple[int, str, str | None]]]:
    """Counts by status of a task's workflows and one page of them in order (two statements,
    whatever the number: docs/batch.md, "How the wait works")."""
    from dbos_orchestrator.waiting.batch import BatchSpec

    spec = BatchSpec.of_ids(workflow_ids)
    service = hook.service()
    start = (page - 1) * IDS_PAGE_SIZE
    return service.batch_counts(spec), service.batch_items(spec, start=start, limit=IDS_PAGE_SIZE)
