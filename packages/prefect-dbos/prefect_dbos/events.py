"""The Prefect events of DBOS workflows, and the Prefect runs they point at (README, "Events").

One shape for every event about a workflow, the bridge's and the tasks' alike: the workflow is the
event's resource (``dbos.workflow.<id>`` with its name, class, queue, app version, status and system
database as labels), and the Prefect runs behind it are its related resources, as Prefect's own
events name them (``prefect.flow-run.<id>`` in role ``flow-run``, ``prefect.task-run.<id>``,
``prefect.deployment.<id>``), so Prefect's UI links the event to the run.

Where the runs come from:

* a task's own events (``dbos.workflow.enqueued`` after an enqueue or fork, ``dbos.workflow.completed``
  after a wait): emitted inside the task run, where Prefect's events worker attaches the flow run,
  task run, flow and deployment of the run context itself (``prefect.events.related``);
* the bridge's (``dbos.workflow.<status>``, no run context): read from the workflow's ``attributes``,
  where the enqueuing task recorded its runs (:func:`run_attributes`).

Event ids are derived (uuid5): an enqueue a retried task re-attaches to, or a wait a retry repeats,
sends the same event id and the Prefect server drops the copy.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

# Fixed forever: event ids of completions must not change between versions.
EVENT_NAMESPACE = uuid.UUID("5b0f7c52-3a3e-4a57-9c36-0b7d4f0c9e11")

# The workflow attributes an enqueuing task writes (prefect.* keys cannot be set by a user) and the
# kind of Prefect object each names, in the order they are related.
FLOW_RUN_ATTRIBUTE = "prefect.flow_run_id"
FLOW_RUN_URL_ATTRIBUTE = "prefect.flow_run_url"
TASK_RUN_ATTRIBUTE = "prefect.task_run_id"
DEPLOYMENT_ATTRIBUTE = "prefect.deployment_id"
RELATED_KINDS = (
    (FLOW_RUN_ATTRIBUTE, "flow-run"),
    (TASK_RUN_ATTRIBUTE, "task-run"),
    (DEPLOYMENT_ATTRIBUTE, "deployment"),
)


def run_attributes() -> dict[str, str]:
    """Attributes stored on an enqueued workflow: the Prefect flow run (its UI URL), task run and
    deployment behind it; empty outside a run."""
    from prefect.runtime import deployment, flow_run, task_run

    attributes: dict[str, str] = {}
    for name, value in (
        (FLOW_RUN_ATTRIBUTE, flow_run.get_id()),
        (FLOW_RUN_URL_ATTRIBUTE, flow_run.get_flow_run_ui_url()),
        (TASK_RUN_ATTRIBUTE, task_run.get_id()),
        (DEPLOYMENT_ATTRIBUTE, deployment.get_id()),
    ):
        if value:
            attributes[name] = str(value)
    return attributes


def related_resources(attributes: Any) -> list[dict[str, str]]:
    """The Prefect runs a workflow's ``attributes`` name, as related resources of its events."""
    if not isinstance(attributes, Mapping):
        return []
    related = []
    for name, kind in RELATED_KINDS:
        value = attributes.get(name)
        if isinstance(value, str) and value:
            related.append({"prefect.resource.id": f"prefect.{kind}.{value}", "prefect.resource.role": kind})
    return related


def workflow_resource(target: str, workflow: Mapping[str, Any]) -> dict[str, str]:
    """The event resource of a workflow: ``workflow`` has ``workflow_id`` and any of ``name``,
    ``class_name``, ``queue_name``, ``app_version``, ``status``; ``target`` is its system database
    (no password)."""
    wid = str(workflow["workflow_id"])
    name = workflow.get("name") or ""
    return {
        "prefect.resource.id": f"dbos.workflow.{wid}",
        "prefect.resource.name": name or wid,
        "dbos.workflow_id": wid,
        "dbos.workflow_name": name,
        "dbos.class_name": workflow.get("class_name") or "",
        "dbos.queue_name": workflow.get("queue_name") or "",
        "dbos.app_version": workflow.get("app_version") or "",
        "dbos.status": str(workflow.get("status") or ""),
        "dbos.system_database": target,
    }


def event_id(*parts: object) -> uuid.UUID:
    """The id of an event derived from ``parts`` (the same parts: the same id, dropped by the server)."""
    return uuid.uuid5(EVENT_NAMESPACE, "|".join(str(p) for p in parts))


def emit_task_event(kind: str, target: str, workflow: Mapping[str, Any], *, key: object = "") -> None:
    """Emit ``dbos.workflow.<kind>`` from inside a task run (Prefect relates the run context's flow
    run, task run, flow and deployment); nothing when the process sends no events.

    :param key: what makes this event of the workflow unique besides ``kind`` (e.g. its end time).
    """
    from prefect.events import emit_event

    emit_event(
        f"dbos.workflow.{kind}",
        resource=workflow_resource(target, workflow),
        id=event_id(target, workflow["workflow_id"], kind, key),
    )
