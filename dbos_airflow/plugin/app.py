"""The plugin's FastAPI app, mounted by Airflow's API server at ``/dbos``.

Routes (every one depends on Airflow's own auth; nothing is readable without a session):

* ``GET  /ti/{dag_id}/{task_id}/{map_index}/{run_id}``: the "DBOS workflow" tab of a task
  instance (DAG read access). ``?workflow_id=`` picks one of a bulk task's workflows or a
  child/fork of the task's workflow; ``?fragment=1`` returns only the part polling refreshes.
* ``POST`` on the same path: cancel / resume / fork (DAG edit access).
* ``GET  /workflows``: the "DBOS" page, workflows of a connection with filters (read access
  to all DAGs); ``GET /workflow?conn_id=&id=``: one workflow from there.
* ``POST /workflow?conn_id=&id=``: actions from there (edit access to that connection).

State-changing requests are POSTs with a JSON body and the header ``X-DBOS-Airflow: 1``, and
their ``Origin`` (when sent) must be this server: a cross-site page can send neither (a form
cannot set headers; a cross-origin ``fetch`` with one needs a CORS preflight nobody answers).
Each action is written to Airflow's audit log (``Log``) with the user.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from airflow.api_fastapi.auth.managers.models.base_user import BaseUser  # noqa: TC002 - FastAPI reads it
from airflow.api_fastapi.core_api.security import get_user, requires_access_dag
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel

from dbos_airflow.plugin import data, render

log = logging.getLogger(__name__)

ACTIONS = ("cancel", "resume", "fork")
CSRF_HEADER = "X-DBOS-Airflow"


class ActionBody(BaseModel):
    """What the view's buttons post."""

    action: str
    workflow_id: str
    step: int | None = None


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def map_index_of(text: str) -> int:
    """The map index from the tab's URL: the UI leaves ``{MAP_INDEX}`` unfilled for unmapped tasks."""
    try:
        return int(text)
    except ValueError:
        return -1


def _ti_path(root: str, dag_id: str, task_id: str, map_index: int, run_id: str) -> str:
    parts = "/".join(quote(str(p), safe="") for p in (dag_id, task_id, map_index))
    return f"{root}/ti/{parts}/{quote(run_id, safe='')}"


def check_same_origin(request: Request) -> None:
    """Refuse a state-changing request a cross-site page could have sent."""
    if request.headers.get(CSRF_HEADER) != "1":
        raise HTTPException(403, f"missing the {CSRF_HEADER} header: actions come from the DBOS view")
    if not request.headers.get("content-type", "").startswith("application/json"):
        raise HTTPException(415, "actions are JSON requests")
    origin = request.headers.get("origin")
    host = request.headers.get("x-forwarded-host") or request.headers.get("host")
    if origin and urlsplit(origin).netloc != host:
        raise HTTPException(403, "cross-origin action refused")


def _may(user: BaseUser, *, dag_id: str | None = None, conn_id: str | None = None) -> bool:
    """Whether ``user`` may edit the DAG (or, with ``conn_id``, that connection)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import ConnectionDetails, DagDetails

    manager = get_auth_manager()
    if conn_id is not None:
        return manager.is_authorized_connection(method="PUT", details=ConnectionDetails(conn_id=conn_id), user=user)
    from airflow.models.dag import DagModel

    team = DagModel.get_team_name(dag_id) if dag_id else None  # as requires_access_dag does
    return manager.is_authorized_dag(method="PUT", details=DagDetails(id=dag_id, team_name=team), user=user)


def requires_connection_edit(request: Request, user: BaseUser = Depends(get_user)) -> None:
    """Actions from the DBOS page (no DAG to check) need edit access to the connection."""
    if not _may(user, conn_id=request.query_params.get("conn_id") or data.DEFAULT_CONN_ID):
        raise HTTPException(403, "Forbidden")


def audit(user: BaseUser, action: str, extra: dict[str, Any], **ti: Any) -> None:
    """One row in Airflow's audit log (Browse > Audit Log) for an action, with the user."""
    from airflow.models.log import Log
    from airflow.utils.session import create_session

    with create_session() as session:
        session.add(
            Log(
                event=f"dbos.{action}",
                owner=user.get_name(),
                owner_display_name=user.get_name(),
                extra=json.dumps(extra),
                **{k: v for k, v in ti.items() if v is not None},
            )
        )


def perform(conn_id: str, body: ActionBody) -> dict[str, Any]:
    """Run one action; the JSON answer the view shows (``message``, and a fork's new id)."""
    from dbos_airflow.status import DBOSWorkflowStatus

    if body.action not in ACTIONS:
        raise HTTPException(400, f"unknown action {body.action!r}; use one of {ACTIONS}")
    wid = body.workflow_id
    try:
        hook = data.hook_for(conn_id)
        status = data.status_of(hook, wid)
        if status is None:
            raise HTTPException(404, f"connection {conn_id!r}: no DBOS workflow with id {wid!r}")
        state = DBOSWorkflowStatus.parse(status.status)
        if body.action == "cancel":
            if state.is_terminal():
                raise HTTPException(409, f"DBOS workflow {wid} already ended {state.value}: nothing to cancel")
            hook.cancel_workflow(wid)
            return {"message": f"Cancelled DBOS workflow {wid}", "workflow_id": wid}
        if body.action == "resume":
            if state in (DBOSWorkflowStatus.SUCCESS, DBOSWorkflowStatus.ERROR) or state.is_active():
                raise HTTPException(
                    409, f"DBOS workflow {wid} is {state.value}: only CANCELLED or dead-lettered workflows resume"
                )
            hook.resume_workflow(wid)
            return {"message": f"Resumed DBOS workflow {wid}", "workflow_id": wid}
        step = body.step or 1
        if step < 1:
            raise HTTPException(400, f"step {step}: steps are numbered from 1")
        new_id = str(uuid.uuid4())  # what dbos would choose; the hook forks under it exactly once
        hook.fork_workflow(wid, step, forked_workflow_id=new_id, application_version=status.app_version)
        return {"message": f"Forked DBOS workflow {wid} from step {step} as {new_id}", "workflow_id": new_id}
    except HTTPException:
        raise
    except data.ViewError as exc:
        raise HTTPException(400, str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - one line naming the connection
        raise HTTPException(502, str(data.explain(conn_id, exc))) from None


def _html(text: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(text, status_code=status_code, headers={"Cache-Control": "no-store"})


def create_app() -> FastAPI:
    """The app the plugin mounts (built once, in the API server)."""
    app = FastAPI(title="DBOS workflows", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/", dependencies=[Depends(requires_access_dag("GET"))])
    def index(request: Request) -> RedirectResponse:
        return RedirectResponse(f"{_root(request)}/workflows", status_code=307)

    @app.get("/ti/{dag_id}/{task_id}/{map_index}/{run_id:path}", dependencies=[Depends(requires_access_dag("GET"))])
    def task_view(
        request: Request,
        dag_id: str,
        task_id: str,
        map_index: str,
        run_id: str,
        workflow_id: str | None = None,
        fragment: bool = False,
        user: BaseUser = Depends(get_user),
    ) -> HTMLResponse:
        from airflow.utils.session import create_session

        index = map_index_of(map_index)
        here = _ti_path(_root(request), dag_id, task_id, index, run_id)

        def link_for(other: str) -> str:
            return f"{here}?{urlencode({'workflow_id': other})}"

        with create_session() as session:
            task = data.task_workflows(session, dag_id, run_id, task_id, index)
        if not task.is_dbos_task:
            return _html(render.page("DBOS workflow", "<p>This task does not run a DBOS workflow.</p>"))
        if not task.workflow_ids:
            return _html(render.page("DBOS workflow", "<p>The task has not started a DBOS workflow yet.</p>"))
        if workflow_id is None and len(task.workflow_ids) > 1:
            return _html(render.page("DBOS workflows", render.ids_html(task.conn_id, task.workflow_ids, link_for)))
        wid = workflow_id or task.workflow_ids[0]
        try:
            if not data.belongs_to(task.conn_id, wid, task.workflow_ids):
                raise data.ViewError(f"DBOS workflow {wid!r} was not started by this task instance")
            detail = data.workflow_detail(task.conn_id, wid)
        except data.ViewError as exc:
            return _html(render.page("DBOS workflow", render.error_message(str(exc))))
        except Exception as exc:  # noqa: BLE001 - one line naming the connection
            return _html(render.page("DBOS workflow", render.error_message(str(data.explain(task.conn_id, exc)))))
        can_act = _may(user, dag_id=dag_id)
        inner = render.workflow_html(detail, link_for, can_act=can_act, task_link=None)
        if fragment:
            return _html(render.body(inner, detail.active))
        return _html(render.page(f"DBOS workflow {wid}", inner, active=detail.active, actions=can_act))

    @app.post(
        "/ti/{dag_id}/{task_id}/{map_index}/{run_id:path}",
        dependencies=[Depends(requires_access_dag("PUT")), Depends(check_same_origin)],
    )
    def task_action(
        dag_id: str,
        task_id: str,
        map_index: str,
        run_id: str,
        body: ActionBody,
        request: Request,
        user: BaseUser = Depends(get_user),
    ) -> JSONResponse:
        from airflow.utils.session import create_session

        index = map_index_of(map_index)
        with create_session() as session:
            task = data.task_workflows(session, dag_id, run_id, task_id, index)
        try:
            allowed = task.is_dbos_task and data.belongs_to(task.conn_id, body.workflow_id, task.workflow_ids)
        except Exception as exc:  # noqa: BLE001
            raise HTTPException(502, str(data.explain(task.conn_id, exc))) from None
        if not allowed:
            raise HTTPException(403, f"DBOS workflow {body.workflow_id!r} was not started by this task instance")
        answer = perform(task.conn_id, body)
        if body.action == "fork":
            here = _ti_path(_root(request), dag_id, task_id, index, run_id)
            answer["link"] = f"{here}?{urlencode({'workflow_id': answer['workflow_id']})}"
        audit(
            user,
            body.action,
            {"conn_id": task.conn_id, "workflow_id": body.workflow_id, "step": body.step, "result": answer["message"]},
            dag_id=dag_id,
            task_id=task_id,
            run_id=run_id,
            map_index=index,
        )
        log.info("%s by %s: %s", body.action, user.get_name(), answer["message"])
        return JSONResponse(answer)

    @app.get("/workflows", dependencies=[Depends(requires_access_dag("GET"))])
    def workflows(
        request: Request,
        conn_id: str = data.DEFAULT_CONN_ID,
        status: str = "",
        name: str = "",
        queue: str = "",
        id_prefix: str = "",
        since_hours: str = "",
        page: int = 1,
    ) -> HTMLResponse:
        from airflow.utils.session import create_session

        from dbos_airflow.status import DBOSWorkflowStatus

        root = _root(request)
        try:
            hours = float(since_hours) if since_hours.strip() else None
            if status:
                DBOSWorkflowStatus.parse(status)
        except ValueError as exc:
            return _html(render.page("DBOS workflows", render.error_message(str(exc))), 400)
        filters = data.WorkflowFilters(status, name, queue, id_prefix, hours, max(page, 1))
        try:
            rows, has_next = data.list_page(conn_id, filters)
        except data.ViewError as exc:
            return _html(render.page("DBOS workflows", render.error_message(str(exc))))
        with create_session() as session:
            tis = data.find_task_instances(session, [r.workflow_id for r in rows])
        links = {wid: data.task_instance_path(*key) for wid, key in tis.items()}
        return _html(render.page("DBOS workflows", render.list_html(conn_id, rows, filters, has_next, root, links)))

    @app.get("/workflow", dependencies=[Depends(requires_access_dag("GET"))])
    def workflow(
        request: Request,
        id: str,
        conn_id: str = data.DEFAULT_CONN_ID,
        fragment: bool = False,
        user: BaseUser = Depends(get_user),
    ) -> HTMLResponse:
        from airflow.utils.session import create_session

        root = _root(request)

        def link_for(other: str) -> str:
            return f"{root}/workflow?{urlencode({'conn_id': conn_id, 'id': other})}"

        try:
            detail = data.workflow_detail(conn_id, id)
        except data.ViewError as exc:
            return _html(render.page("DBOS workflow", render.error_message(str(exc))))
        with create_session() as session:
            key = data.find_task_instances(session, [id]).get(id)
        can_act = _may(user, conn_id=conn_id)
        task_link = data.task_instance_path(*key) if key else None
        inner = render.workflow_html(detail, link_for, can_act=can_act, task_link=task_link)
        if fragment:
            return _html(render.body(inner, detail.active))
        return _html(render.page(f"DBOS workflow {id}", inner, active=detail.active, actions=can_act))

    @app.post("/workflow", dependencies=[Depends(requires_connection_edit), Depends(check_same_origin)])
    def workflow_action(
        request: Request,
        id: str,
        body: ActionBody,
        conn_id: str = data.DEFAULT_CONN_ID,
        user: BaseUser = Depends(get_user),
    ) -> JSONResponse:
        answer = perform(conn_id, body)
        if body.action == "fork":
            answer["link"] = f"{_root(request)}/workflow?{urlencode({'conn_id': conn_id, 'id': answer['workflow_id']})}"
        audit(user, body.action, {"conn_id": conn_id, "workflow_id": body.workflow_id, "step": body.step})
        return JSONResponse(answer)

    return app
