"""What the views' buttons do: the posted body, its checks, the action itself and its audit row.

Which states cancel or resume is not decided here: :meth:`DBOSWorkflowStatus.is_active` and
:meth:`DBOSWorkflowStatus.is_resumable` (the resume operator's rule too) decide it.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

from airflow.api_fastapi.auth.managers.models.base_user import BaseUser  # noqa: TC002 - annotations only
from fastapi import HTTPException
from pydantic import BaseModel

from dbos_airflow.plugin import inputs

if TYPE_CHECKING:
    from dbos import WorkflowStatus

    from dbos_airflow.hooks.dbos import DBOSHook

ACTIONS = ("cancel", "resume", "fork")


class ActionBody(BaseModel):
    """What the view's buttons post."""

    action: str
    workflow_id: str
    step: int | None = None


def checked(body: ActionBody) -> ActionBody:
    if body.action not in ACTIONS:
        raise inputs.BadInput("action", f"unknown action; use one of {', '.join(ACTIONS)}")
    inputs.text("workflow_id", body.workflow_id)
    if body.action == "fork":
        inputs.step(body.step)
    return body


def perform(hook: DBOSHook, status: WorkflowStatus, body: ActionBody) -> dict[str, Any]:
    """Run one action on a workflow the user may change; the JSON answer the view shows."""
    from dbos_orchestrator.status import DBOSWorkflowStatus

    wid = status.workflow_id
    state = DBOSWorkflowStatus.parse(status.status)
    if body.action == "cancel":
        if not state.is_active():
            raise HTTPException(409, f"DBOS workflow {wid} already ended {state.value}: nothing to cancel")
        hook.cancel_workflow(wid)
        return {"message": f"Cancelled DBOS workflow {wid}", "workflow_id": wid}
    if body.action == "resume":
        if not state.is_resumable():
            raise HTTPException(
                409, f"DBOS workflow {wid} is {state.value}: only CANCELLED or dead-lettered workflows resume"
            )
        hook.resume_workflow(wid)
        return {"message": f"Resumed DBOS workflow {wid}", "workflow_id": wid}
    step = inputs.step(body.step)
    new_id = str(uuid.uuid4())  # what dbos would choose; the hook forks under it exactly once
    hook.fork_workflow(wid, step, forked_workflow_id=new_id, application_version=status.app_version)
    return {"message": f"Forked DBOS workflow {wid} from step {step} as {new_id}", "workflow_id": new_id}


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
