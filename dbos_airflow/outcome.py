"""Old import path of :mod:`dbos_airflow.contract.outcome` and of the wait's sentences
(:mod:`dbos_orchestrator.messages`).

:func:`workflow_result` keeps its old call, ``workflow_result(hook, workflow_id, ...)``: it reads
through the hook and lets the contract decide (``contract.outcome.workflow_result(status, reader)``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dbos_orchestrator.messages import (
    PROGRESS_LOG_SECONDS,
    RESULT_CHARS,
    clip,
    ended_message,
    event_missing_message,
    progress_message,
    shorten,
    still_waiting_message,
)

from dbos_airflow.contract import outcome as _outcome

if TYPE_CHECKING:
    from dbos_airflow.hooks.dbos import DBOSHook

__all__ = [
    "PROGRESS_LOG_SECONDS",
    "RESULT_CHARS",
    "clip",
    "ended_message",
    "event_missing_message",
    "progress_message",
    "shorten",
    "still_waiting_message",
    "workflow_result",
]


def workflow_result(hook: DBOSHook, workflow_id: str, **kwargs: Any) -> Any:
    """The output of an ended workflow, or its failure (:func:`dbos_airflow.contract.outcome.workflow_result`)."""
    return _outcome.workflow_result(hook.require_workflow(workflow_id), hook.value_reader(), **kwargs)
