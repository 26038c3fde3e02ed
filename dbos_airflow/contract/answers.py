"""The approval contract (docs/approvals.md): how Airflow's human-in-the-loop response becomes the answer
a DBOS workflow receives, and back; how a workflow's question fields become the HITL form.

* :func:`answer_from_event`: the HITL operator's resume event (``chosen_options``, ``params_input``,
  ``responded_at``, ``responded_by_user``, ``timedout``) -> :class:`~dbos_orchestrator.approvals.Answer`
  (the message sent, ``responded_at`` as ISO 8601);
* :func:`event_from_answer`: the answer a workflow already has -> the resume event, so that a retry or
  a clear completes as the HITL operator would have with the original response;
* :func:`form_param`: a question's ``params`` entry (a JSON-schema object, or a default value) -> a
  :class:`~airflow.sdk.definitions.param.Param`.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from airflow.sdk.definitions.param import Param
from dbos_orchestrator.approvals import Answer

__all__ = ["answer_from_event", "event_from_answer", "form_param"]


def form_param(spec: Any) -> Param:
    """A form field from the question's ``params``: a JSON-schema object, or a default value."""
    if isinstance(spec, dict):
        schema = dict(spec)
        return Param(schema.pop("default", None), description=schema.pop("description", None), **schema)
    return Param(spec)


def answer_from_event(event: dict[str, Any]) -> Answer:
    """The answer a HITL response event (a person's, or the defaults on a timeout) sends."""
    responded_at = event.get("responded_at")
    return Answer(
        chosen_options=list(event["chosen_options"]),
        params_input=dict(event["params_input"] or {}),
        responded_by=event.get("responded_by_user"),
        responded_at=responded_at.isoformat() if isinstance(responded_at, datetime) else responded_at,
        timed_out=bool(event.get("timedout", False)),
    )


def event_from_answer(answer: Answer) -> dict[str, Any]:
    """The HITL operator's resume event for an answer (its ``execute_complete`` input)."""
    at = datetime.fromisoformat(answer.responded_at) if answer.responded_at else datetime.now(timezone.utc)
    return {
        "chosen_options": answer.chosen_options,
        "params_input": answer.params_input,
        "responded_at": at,
        "responded_by_user": answer.responded_by,
        "timedout": answer.timed_out,
    }
