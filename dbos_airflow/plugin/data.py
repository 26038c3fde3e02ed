"""What the DBOS views show, read safely: workflows through the hook, tasks from Airflow's DB.

Workflow metadata comes from ``list_workflows(load_input=False, load_output=False)`` (no
decoding); inputs, outputs, errors, events and steps from :class:`~dbos_airflow.values.ValueReader`
(pickled values stay "pickled, not decoded" unless the connection has ``allow_pickle``).
Which workflows belong to a task instance comes from its XCom (``dbos_conn_id``,
``workflow_id``, a bulk task's returned list) or, before the task pushed anything, from the
derived id ``dag_id:run_id:task_id:map_index``.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dbos_airflow.links import CONN_ID_KEY, WORKFLOW_ID_KEY

if TYPE_CHECKING:
    from dbos import WorkflowStatus
    from sqlalchemy.orm import Session

    from dbos_airflow.hooks.dbos import DBOSHook
    from dbos_airflow.values import StoredStep

DEFAULT_CONN_ID = "dbos_default"
DBOS_OPERATORS = frozenset(
    {
        "DBOSEnqueueOperator",
        "DBOSBulkEnqueueOperator",
        "DBOSSendOperator",
        "DBOSWorkflowSensor",
        "DBOSEventSensor",
    }
)
HOOK_TTL_SECONDS = 300
MAX_ANCESTRY = 20


class ViewError(Exception):
    """A one-line message the page shows instead of data (never a traceback, never a password)."""


# -- connections: one hook (one small pool) per connection id, renewed every few minutes ----

_hooks: dict[str, tuple[float, DBOSHook]] = {}
_hooks_lock = threading.Lock()


def hook_for(conn_id: str) -> DBOSHook:
    """A connected :class:`DBOSHook` for ``conn_id``, shared by the API server's requests."""
    from dbos_airflow.hooks.dbos import DBOSHook

    with _hooks_lock:
        entry = _hooks.get(conn_id)
        if entry is not None and time.monotonic() - entry[0] < HOOK_TTL_SECONDS:
            return entry[1]
        if entry is not None:
            entry[1].close()
        hook = DBOSHook(conn_id)
        conn_type = hook.get_connection(conn_id).conn_type
        if conn_type != DBOSHook.conn_type:  # never point the view at another kind of connection's credentials
            raise ViewError(f"connection {conn_id!r} is of type {conn_type!r}, not {DBOSHook.conn_type!r}")
        _hooks[conn_id] = (time.monotonic(), hook)
        return hook


def forget_hook(conn_id: str) -> None:
    """Drop a hook after an error, so the next request reconnects (and re-reads the connection)."""
    with _hooks_lock:
        entry = _hooks.pop(conn_id, None)
    if entry is not None:
        entry[1].close()


def explain(conn_id: str, exc: BaseException) -> ViewError:
    """A one-line :class:`ViewError` naming the connection, for any error reaching DBOS."""
    from dbos_airflow.exceptions import DBOSAirflowError

    if isinstance(exc, ViewError):
        return exc
    forget_hook(conn_id)
    if isinstance(exc, DBOSAirflowError):
        text = str(exc)  # ours: already names host/database and never the password
    else:
        orig = getattr(exc, "orig", None) or exc
        text = f"{type(orig).__name__}: {orig}"
        if "not defined" in text or "isn't defined" in text:
            text = f"the connection {conn_id!r} is not defined in Airflow"
    return ViewError(f"connection {conn_id!r}: {text.strip().splitlines()[0] if text.strip() else text}")


# -- task instance -> connection and workflow ids --------------------------------------------


@dataclass
class TaskWorkflows:
    """The DBOS side of one task instance."""

    conn_id: str
    workflow_ids: list[str]
    operator: str | None
    state: str | None
    is_dbos_task: bool


def derived_id(dag_id: str, run_id: str, task_id: str, map_index: int) -> str:
    """The id an enqueue task derives for itself (:func:`dbos_airflow.utils.ids.task_instance_key`)."""
    from types import SimpleNamespace

    from dbos_airflow.utils.ids import task_instance_key

    return task_instance_key(SimpleNamespace(dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index))


def task_workflows(session: Session, dag_id: str, run_id: str, task_id: str, map_index: int) -> TaskWorkflows:
    """Which connection and workflows a task instance maps to (derived, explicit, mapped, bulk, sensor)."""
    import sqlalchemy as sa
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel

    ti = session.execute(
        sa.select(TaskInstance.operator, TaskInstance.state).where(
            TaskInstance.dag_id == dag_id,
            TaskInstance.run_id == run_id,
            TaskInstance.task_id == task_id,
            TaskInstance.map_index == map_index,
        )
    ).first()
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
    operator = ti.operator if ti is not None else None
    state = str(ti.state) if ti is not None and ti.state is not None else None
    conn_id = str(xcom.get(CONN_ID_KEY) or DEFAULT_CONN_ID)
    is_dbos = CONN_ID_KEY in xcom or operator in DBOS_OPERATORS
    ids: list[str] = []
    if isinstance(xcom.get(WORKFLOW_ID_KEY), str):
        ids = [xcom[WORKFLOW_ID_KEY]]
    elif isinstance(xcom.get("return_value"), list) and CONN_ID_KEY in xcom:
        ids = [str(i) for i in xcom["return_value"]]
    elif operator == "DBOSEnqueueOperator":
        ids = [derived_id(dag_id, run_id, task_id, map_index)]  # not started yet: the default id
    return TaskWorkflows(conn_id, ids, operator, state, is_dbos)


def task_instance_path(dag_id: str, run_id: str, task_id: str, map_index: int) -> str:
    """Path of a task instance's page in Airflow's UI."""
    from urllib.parse import quote

    path = f"/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}/tasks/{quote(task_id, safe='')}"
    return path + (f"/mapped/{map_index}" if map_index >= 0 else "")


def _derived_candidates(workflow_id: str) -> list[tuple[str, str, str, int]]:
    """``(dag, run, task, map_index)`` readings of a derived id (single, or bulk ``...:index``)."""
    parts = workflow_id.split(":")
    out = []
    for tail in (2, 3):  # dag:run...:task:map  and  dag:run...:task:map:index (bulk)
        if len(parts) < tail + 2:
            continue
        map_text = parts[-tail + 1]
        if tail == 3 and not parts[-1].isdigit():
            continue
        try:
            map_index = int(map_text)
        except ValueError:
            continue
        out.append((parts[0], ":".join(parts[1:-tail]), parts[-tail], map_index))
    return out


def find_task_instances(session: Session, workflow_ids: list[str]) -> dict[str, tuple[str, str, str, int]]:
    """``{workflow_id: (dag, run, task, map_index)}`` for ids an Airflow task started (derived or XCom)."""
    import sqlalchemy as sa
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel

    found: dict[str, tuple[str, str, str, int]] = {}
    candidates = {c: wid for wid in workflow_ids for c in _derived_candidates(wid)}
    if candidates:
        ti = TaskInstance
        clauses = [
            sa.and_(ti.dag_id == d, ti.run_id == r, ti.task_id == t, ti.map_index == m) for d, r, t, m in candidates
        ]
        for key in session.execute(sa.select(ti.dag_id, ti.run_id, ti.task_id, ti.map_index).where(sa.or_(*clauses))):
            found.setdefault(candidates[tuple(key)], tuple(key))  # type: ignore[arg-type,index]
    missing = [w for w in workflow_ids if w not in found]
    if missing:
        try:
            # Compared as stored JSON text: a JSON column's IN () does not compare values on every backend.
            as_text = sa.cast(XComModel.value, sa.Text)
            rows = session.scalars(
                sa.select(XComModel).where(
                    XComModel.key == WORKFLOW_ID_KEY, as_text.in_([json.dumps(w) for w in missing])
                )
            ).all()
        except Exception:  # noqa: BLE001 - a JSON comparison the metadata DB refuses: no links, no error
            rows = []
        for row in rows:
            value = XComModel.deserialize_value(row)
            if isinstance(value, str):
                found.setdefault(value, (row.dag_id, row.run_id, row.task_id, row.map_index))
    return found


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

    @property
    def active(self) -> bool:
        from dbos_airflow.status import DBOSWorkflowStatus

        try:
            return DBOSWorkflowStatus.parse(self.status.status).is_active()
        except ValueError:
            return False


def status_of(hook: DBOSHook, workflow_id: str) -> WorkflowStatus | None:
    rows = hook.list_workflows(workflow_ids=[workflow_id])
    return rows[0] if rows else None


def workflow_detail(conn_id: str, workflow_id: str) -> WorkflowDetail:
    """Everything the view shows of one workflow; :class:`ViewError` when it cannot be read."""
    try:
        hook = hook_for(conn_id)
        status = status_of(hook, workflow_id)
        if status is None:
            raise ViewError(
                f"connection {conn_id!r}: no DBOS workflow with id {workflow_id!r} in {hook.get_client().target}"
            )
        reader = hook.value_reader()
        output, error = reader.output_and_error_for_display(workflow_id)
        return WorkflowDetail(
            status=status,
            inputs=reader.inputs(workflow_id),
            output=output,
            error=error,
            events=reader.events(workflow_id),
            steps=reader.steps(workflow_id),
        )
    except ViewError:
        raise
    except Exception as exc:  # noqa: BLE001 - shown as one line naming the connection
        raise explain(conn_id, exc) from None


def belongs_to(conn_id: str, workflow_id: str, roots: list[str]) -> bool:
    """Whether ``workflow_id`` is one of ``roots`` or descends from one (child or fork), walking up."""
    if workflow_id in roots:
        return True
    hook = hook_for(conn_id)
    current: str | None = workflow_id
    for _ in range(MAX_ANCESTRY):
        status = status_of(hook, current) if current else None
        if status is None:
            return False
        current = status.parent_workflow_id or status.forked_from
        if current in roots:
            return True
    return False


@dataclass
class WorkflowFilters:
    """The nav page's filters; empty means "any"."""

    status: str = ""
    name: str = ""
    queue: str = ""
    id_prefix: str = ""
    since_hours: float | None = None
    page: int = 1
    page_size: int = 50


def list_page(conn_id: str, filters: WorkflowFilters) -> tuple[list[WorkflowStatus], bool]:
    """One page of workflows, newest first, and whether a next page exists (metadata only)."""
    from datetime import datetime, timedelta, timezone

    from dbos_airflow.status import DBOSWorkflowStatus

    kwargs: dict[str, Any] = {}
    if filters.status:
        kwargs["status"] = DBOSWorkflowStatus.parse(filters.status).value
    if filters.name:
        kwargs["name"] = filters.name
    if filters.queue:
        kwargs["queue_name"] = filters.queue
    if filters.id_prefix:
        kwargs["workflow_id_prefix"] = filters.id_prefix
    if filters.since_hours:
        start = datetime.now(timezone.utc) - timedelta(hours=filters.since_hours)
        kwargs["start_time"] = start.isoformat()
    try:
        rows = hook_for(conn_id).list_workflows(
            limit=filters.page_size + 1, offset=(filters.page - 1) * filters.page_size, sort_desc=True, **kwargs
        )
    except ViewError:
        raise
    except Exception as exc:  # noqa: BLE001 - shown as one line naming the connection
        raise explain(conn_id, exc) from None
    return rows[: filters.page_size], len(rows) > filters.page_size
