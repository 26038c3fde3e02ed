"""The plugin's FastAPI app, mounted by Airflow's API server at ``/dbos``.

Routes (every one needs an Airflow session; docs/ui.md lists who may do what):

* ``GET  /ti/{dag_id}/{task_id}/{map_index}/{run_id}``: the "DBOS workflow" tab of a task
  instance. ``?workflow_id=`` picks one of a bulk task's workflows or a child/fork of the
  task's workflow; ``?fragment=1`` returns only the part polling refreshes.
* ``POST`` on the same path: cancel / resume / fork.
* ``GET  /workflows``: the "DBOS" page, the workflows of a connection the user may read, with
  filters; ``GET /workflow?conn_id=&id=``: one workflow from there; ``POST /workflow``: actions.
* ``GET  /static/{name}``: the views' own CSS and JavaScript.

Which workflow a user may read or change is decided by one rule,
:func:`dbos_airflow.plugin.access.decide`, on the owner record DBOS keeps
(:mod:`dbos_airflow.contract.ownership`); a task instance's XCom is only a pointer. State-changing
requests are POSTs with a JSON body and the header ``X-DBOS-Airflow: 1`` from this origin
(:mod:`dbos_airflow.plugin.web`). Each action is written to Airflow's audit log with the user.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from airflow.api_fastapi.auth.managers.models.base_user import BaseUser  # noqa: TC002 - FastAPI reads it
from airflow.api_fastapi.core_api.security import get_user
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response

from dbos_airflow.links import view_path
from dbos_airflow.plugin import access, data, inputs, records, render
from dbos_airflow.plugin.actions import ActionBody, audit, checked, perform
from dbos_airflow.plugin.streams import stream_page_link
from dbos_airflow.plugin.web import SecurityHeaders, check_same_origin

if TYPE_CHECKING:
    from dbos import WorkflowStatus

    from dbos_airflow.contract.ownership import Owner
    from dbos_airflow.hooks.dbos import DBOSHook

log = logging.getLogger(__name__)


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _static(request: Request) -> str:
    return f"{_root(request)}/static"


def _html(text: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(text, status_code=status_code)


def _hook(user: BaseUser, conn_id: str) -> DBOSHook:
    """The shared hook of ``conn_id``; what it may read for ``user`` is decided per workflow."""
    inputs.text("conn_id", conn_id, max_chars=inputs.MAX_ID_CHARS)
    try:
        return data.hook_for(conn_id)
    except data.ViewError as exc:
        listing = access.may_list(user, conn_id)  # whether it exists, and its type, are the connection's to tell
        raise HTTPException(
            exc.status_code if listing else 403, str(exc) if listing else f"conn_id: {listing.reason}"
        ) from None
    except Exception as exc:  # noqa: BLE001 - one line naming the connection
        raise _fail(conn_id, exc, user) from None


def _connection(user: BaseUser, conn_id: str) -> DBOSHook:
    """The shared hook of ``conn_id``, for a user who may list its workflows (else 403)."""
    inputs.text("conn_id", conn_id, max_chars=inputs.MAX_ID_CHARS)
    decision = access.may_list(user, conn_id)
    if not decision:
        raise HTTPException(403, f"conn_id: {decision.reason}")
    return _hook(user, conn_id)


def _fail(conn_id: str, exc: Exception, user: BaseUser) -> HTTPException:
    """An error reaching DBOS as one line: 502 when the database is at fault, never a traceback.
    The driver's words (host, database) only for a user who may read the connection."""
    if isinstance(exc, HTTPException):
        return exc
    error = data.explain(conn_id, exc)
    if error.status_code >= 500 and not access.may_list(user, conn_id):
        return HTTPException(error.status_code, f"connection {conn_id!r}: DBOS' database could not be read")
    return HTTPException(error.status_code, str(error))


def _workflow(
    user: BaseUser, hook: DBOSHook, conn_id: str, workflow_id: str, method: access.Method
) -> tuple[WorkflowStatus, Owner | None]:
    """The workflow's status and owner, if ``user`` may ``method`` it (else 403/404)."""
    lineage = records.owners(hook, [workflow_id]).get(workflow_id)
    status = data.status_of(hook, workflow_id) if lineage else None
    if lineage is None or status is None:
        listing = access.may_list(user, conn_id)  # which ids exist is the connection's to tell
        if not listing:
            raise HTTPException(403, f"DBOS workflow {workflow_id!r}: {listing.reason}")
        raise HTTPException(404, f"id: no DBOS workflow with id {workflow_id!r} on connection {conn_id!r}")
    decision = access.decide(user, lineage.owner, conn_id, method)
    if not decision:
        raise HTTPException(403, f"DBOS workflow {workflow_id!r}: {decision.reason}")
    return status, lineage.owner


def _task_key(request: Request) -> tuple[str, str, int, str]:
    """``dag_id, task_id, map_index, run_id`` from the path as sent: a ``%2F`` inside a segment
    stays inside it (the decoded path would move it into the next field)."""
    from urllib.parse import unquote

    raw = bytes(request.scope.get("raw_path") or request.url.path.encode()).decode("latin-1")
    segments = raw.split("/ti/", 1)[-1].split("/", 3)
    if len(segments) < 4:
        raise inputs.BadInput("run_id", "missing from the path")
    dag_id, task_id, map_index, run_id = (unquote(x, errors="replace") for x in segments)
    inputs.key("dag_id", dag_id)
    inputs.key("task_id", task_id)
    inputs.text("run_id", run_id, max_chars=inputs.MAX_ID_CHARS)
    return dag_id, task_id, inputs.map_index(map_index), run_id


class _Task:
    """A task instance's tab: its connection (the XCom pointer) and the workflows DBOS says it
    started through that connection (its owner records)."""

    def __init__(self, user: BaseUser, dag_id: str, task_id: str, map_index: int, run_id: str) -> None:
        from airflow.utils.session import create_session

        if not access.may_dag(user, dag_id, access.READ):
            raise HTTPException(403, "Forbidden")
        self.key = (dag_id, run_id, task_id, map_index)
        with create_session() as session:
            pointer = data.task_pointer(session, dag_id, run_id, task_id, map_index)
        self.conn_id = pointer.conn_id or data.DEFAULT_CONN_ID
        self.hook = _hook(user, self.conn_id)
        try:
            owned = records.owned_by(self.hook, dag_id, run_id, task_id, map_index, conn_id=self.conn_id)
        except Exception as exc:  # noqa: BLE001 - one line naming the connection
            raise _fail(self.conn_id, exc, user) from None
        decision = access.may_open_task(user, dag_id, self.conn_id, owned_here=bool(owned))
        if not decision:
            raise HTTPException(403, f"conn_id: {decision.reason}")
        # The records say what this task started; XCom counts only where it started nothing
        # (a sensor points at another task's workflow, which the rule then checks on its own).
        self.workflow_ids = owned or pointer.workflow_ids
        if owned and set(pointer.workflow_ids) == set(owned):
            self.workflow_ids = pointer.workflow_ids  # the same workflows, in item order

    def includes(self, workflow_id: str, owner: Owner | None) -> bool:
        return workflow_id in self.workflow_ids or (owner is not None and owner.is_task_instance(*self.key))


def create_app() -> FastAPI:
    """The app the plugin mounts (built once, in the API server)."""
    app = FastAPI(title="DBOS workflows", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(SecurityHeaders)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if request.method == "GET" and not request.url.path.endswith(tuple(render.STATIC_FILES)):
            return _html(render.message("Error", str(exc.detail), static=_static(request)), exc.status_code)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(f"{e['loc'][-1]}: {e['msg']}" for e in exc.errors() if e.get("loc"))
        return await http_error(request, HTTPException(400, problems or "bad request"))

    @app.get("/")
    def index(request: Request, user: BaseUser = Depends(get_user)) -> RedirectResponse:
        return RedirectResponse(f"{_root(request)}/workflows", status_code=307)

    @app.get("/static/{name}")
    def static(name: str, user: BaseUser = Depends(get_user)) -> FileResponse:
        if name not in render.STATIC_FILES:
            raise HTTPException(404, "name: no such file")
        return FileResponse(render.STATIC_DIR / name, media_type=render.STATIC_FILES[name])

    @app.get("/ti/{dag_id}/{task_id}/{map_index}/{run_id:path}")
    def task_view(
        request: Request,
        dag_id: str,
        task_id: str,
        map_index: str,
        run_id: str,
        workflow_id: str | None = None,
        fragment: bool = False,
        page: int = 1,
        stream: str | None = None,
        before: int | None = None,
        user: BaseUser = Depends(get_user),
    ) -> HTMLResponse:
        dag_id, task_id, index, run_id = _task_key(request)
        inputs.stream_page(stream, before)
        if workflow_id is not None:
            inputs.text("workflow_id", workflow_id)
        task = _Task(user, dag_id, task_id, index, run_id)
        static = _static(request)
        here = _root(request) + view_path(dag_id, run_id, task_id, index).removeprefix("/dbos")

        def link_for(other: str) -> str:
            return f"{here}?{urlencode({'workflow_id': other})}"

        if workflow_id is None and not task.workflow_ids:
            return _html(
                render.message(
                    "DBOS workflow", "This task has not started a DBOS workflow.", static=static, error=False
                )
            )
        if workflow_id is None and len(task.workflow_ids) > 1:
            number = inputs.page(page)
            try:
                counts, rows = data.batch_page(task.hook, task.workflow_ids, number)
            except Exception as exc:  # noqa: BLE001 - one line naming the connection
                raise _fail(task.conn_id, exc, user) from None
            return _html(
                render.ids_page(
                    task.conn_id,
                    counts,
                    rows,
                    link_for,
                    page=number,
                    page_size=data.IDS_PAGE_SIZE,
                    page_link=lambda n: f"{here}?{urlencode({'page': n})}",
                    static=static,
                )
            )
        wid = workflow_id or task.workflow_ids[0]
        try:
            status, owner = _workflow(user, task.hook, task.conn_id, wid, access.READ)
            if not task.includes(wid, owner):
                raise HTTPException(403, f"DBOS workflow {wid!r} was not started by this task instance")
            detail = data.workflow_detail(
                task.hook, status, stream_link=stream_page_link(request), stream=stream, before=before
            )
        except Exception as exc:  # noqa: BLE001 - one line naming the connection
            raise _fail(task.conn_id, exc, user) from None
        can_act = bool(access.decide(user, owner, task.conn_id, access.ACT))
        approval = data.approval_for(dag_id, run_id, task_id, index)
        return _html(
            render.workflow_page(
                detail, link_for, can_act=can_act, task_link=None, static=static, fragment=fragment, approval=approval
            )
        )

    @app.post("/ti/{dag_id}/{task_id}/{map_index}/{run_id:path}", dependencies=[Depends(check_same_origin)])
    def task_action(
        request: Request,
        dag_id: str,
        task_id: str,
        map_index: str,
        run_id: str,
        body: ActionBody,
        user: BaseUser = Depends(get_user),
    ) -> JSONResponse:
        dag_id, task_id, index, run_id = _task_key(request)
        checked(body)
        task = _Task(user, dag_id, task_id, index, run_id)
        try:
            status, owner = _workflow(user, task.hook, task.conn_id, body.workflow_id, access.ACT)
            if not task.includes(body.workflow_id, owner):
                raise HTTPException(403, f"DBOS workflow {body.workflow_id!r} was not started by this task instance")
            answer = perform(task.hook, status, body)
        except Exception as exc:  # noqa: BLE001 - one line naming the connection
            raise _fail(task.conn_id, exc, user) from None
        if body.action == "fork":
            here = _root(request) + view_path(dag_id, run_id, task_id, index).removeprefix("/dbos")
            answer["link"] = f"{here}?{urlencode({'workflow_id': answer['workflow_id']})}"
        extra = {
            "conn_id": task.conn_id,
            "workflow_id": body.workflow_id,
            "step": body.step,
            "result": answer["message"],
        }
        audit(user, body.action, extra, dag_id=dag_id, task_id=task_id, run_id=run_id, map_index=index)
        log.info("%s by %s: %s", body.action, user.get_name(), answer["message"])
        return JSONResponse(answer)

    @app.get("/workflows")
    def workflows(
        request: Request,
        conn_id: str = data.DEFAULT_CONN_ID,
        status: str = "",
        name: str = "",
        queue: str = "",
        id_prefix: str = "",
        since_hours: str = "",
        page: int = 1,
        user: BaseUser = Depends(get_user),
    ) -> HTMLResponse:
        root = _root(request)
        filters = records.Filters(
            status=inputs.status(status),
            name=inputs.text("name", name, required=False),
            queue=inputs.text("queue", queue, required=False),
            id_prefix=inputs.text("id_prefix", id_prefix, required=False),
            since_hours=inputs.since_hours(since_hours),
            page=inputs.page(page),
        )
        hook = _connection(user, conn_id)
        dag_ids = access.readable_dag_ids(user)
        try:
            ids, has_next = records.page_ids(hook, filters, dag_ids)
            found = data.statuses(hook, ids)
            owners = records.owners(hook, ids)
        except Exception as exc:  # noqa: BLE001 - one line naming the connection
            raise _fail(conn_id, exc, user) from None
        rows = [found[w] for w in ids if w in found]
        links = {w: data.task_instance_path(*o.owner.task_instance()) for w, o in owners.items() if o.owner}
        query = {
            "conn_id": conn_id,
            "status": filters.status,
            "name": filters.name,
            "queue": filters.queue,
            "id_prefix": filters.id_prefix,
            "since_hours": "" if filters.since_hours is None else f"{filters.since_hours:g}",
        }
        html = render.list_page(
            conn_id,
            rows,
            filters,
            base=root,
            view_link=lambda w: f"{root}/workflow?{urlencode({'conn_id': conn_id, 'id': w})}",
            page_link=lambda n: f"{root}/workflows?{urlencode({**query, 'page': n})}",
            has_next=has_next,
            task_links=links,
            static=_static(request),
            clock=data.clock_of(hook),
            queues_link=access.may_all_dags(user, access.READ) and f"{root}/queues?{urlencode({'conn_id': conn_id})}",
        )
        return _html(html)

    @app.get("/queues")
    def queues(
        request: Request, conn_id: str = data.DEFAULT_CONN_ID, user: BaseUser = Depends(get_user)
    ) -> HTMLResponse:
        """Queues (limits, backlog) and schedules (next run): counts over every DAG's workflows, so
        only for a user who may read the connection and every DAG (docs/ui.md, "Permissions")."""
        from dbos_orchestrator.operations.queues import list_queues
        from dbos_orchestrator.operations.schedules import list_schedules

        hook = _connection(user, conn_id)
        if not access.may_all_dags(user, access.READ):
            raise HTTPException(403, "the queues view counts every DAG's workflows: it needs read access to all DAGs")
        try:
            client = hook.get_client()
            found, schedules = list_queues(client), list_schedules(client)
        except Exception as exc:  # noqa: BLE001 - one line naming the connection
            raise _fail(conn_id, exc, user) from None
        return _html(render.queues_page(conn_id, found, schedules, base=_root(request), static=_static(request)))

    @app.get("/workflow")
    def workflow(
        request: Request,
        id: str,
        conn_id: str = data.DEFAULT_CONN_ID,
        fragment: bool = False,
        stream: str | None = None,
        before: int | None = None,
        user: BaseUser = Depends(get_user),
    ) -> HTMLResponse:
        root = _root(request)
        inputs.text("id", id)
        inputs.stream_page(stream, before)
        hook = _hook(user, conn_id)

        def link_for(other: str) -> str:
            return f"{root}/workflow?{urlencode({'conn_id': conn_id, 'id': other})}"

        try:
            status, owner = _workflow(user, hook, conn_id, id, access.READ)
            detail = data.workflow_detail(
                hook, status, stream_link=stream_page_link(request), stream=stream, before=before
            )
        except Exception as exc:  # noqa: BLE001 - one line naming the connection
            raise _fail(conn_id, exc, user) from None
        can_act = bool(access.decide(user, owner, conn_id, access.ACT))
        task_link = data.task_instance_path(*owner.task_instance()) if owner else None
        html = render.workflow_page(
            detail, link_for, can_act=can_act, task_link=task_link, static=_static(request), fragment=fragment
        )
        return _html(html)

    @app.post("/workflow", dependencies=[Depends(check_same_origin)])
    def workflow_action(
        request: Request,
        id: str,
        body: ActionBody,
        conn_id: str = data.DEFAULT_CONN_ID,
        user: BaseUser = Depends(get_user),
    ) -> JSONResponse:
        inputs.text("id", id)
        checked(body)
        hook = _hook(user, conn_id)
        try:
            status, owner = _workflow(user, hook, conn_id, body.workflow_id, access.ACT)
            answer = perform(hook, status, body)
        except Exception as exc:  # noqa: BLE001 - one line naming the connection
            raise _fail(conn_id, exc, user) from None
        if body.action == "fork":
            answer["link"] = f"{_root(request)}/workflow?{urlencode({'conn_id': conn_id, 'id': answer['workflow_id']})}"
        audit(user, body.action, {"conn_id": conn_id, "workflow_id": body.workflow_id, "step": body.step})
        log.info("%s by %s: %s", body.action, user.get_name(), answer["message"])
        return JSONResponse(answer)

    return app
