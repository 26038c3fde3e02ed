"""dbos-airflow's own errors: the ones that fail an Airflow task, and the completion feed's delivery error.

Every other error dbos-airflow raises is the core's own (:mod:`dbos_orchestrator.exceptions`,
base :class:`~dbos_orchestrator.exceptions.DBOSOrchestratorError`), imported from there. The ones
that fail a task because of what happened to a workflow (it failed or is missing, a bad trigger
event) subclass the core's and are also :class:`AirflowException` subclasses when Airflow is installed.
"""

from __future__ import annotations

from dbos_orchestrator import exceptions as _core

try:
    from airflow.sdk.exceptions import AirflowException as _TaskFailure
except ImportError:  # pragma: no cover - only without Airflow
    _TaskFailure = Exception  # type: ignore[assignment,misc]

__all__ = ["DBOSDeliveryError", "DBOSTriggerEventError", "DBOSWorkflowFailedError", "DBOSWorkflowNotFoundError"]


class DBOSWorkflowFailedError(_core.DBOSWorkflowFailedError, _TaskFailure):
    """A workflow ended in ERROR, CANCELLED or MAX_RECOVERY_ATTEMPTS_EXCEEDED (or not as required)."""


class DBOSWorkflowNotFoundError(_core.DBOSWorkflowNotFoundError, _TaskFailure):
    """No workflow with the given id exists in the system database."""


class DBOSTriggerEventError(_core.DBOSOrchestratorError, _TaskFailure):
    """A trigger event that is missing or malformed (the task fails closed)."""


class DBOSDeliveryError(_core.DBOSOrchestratorError):
    """Airflow did not confirm that it stored an event (``triggers/delivery.py``): the position stays
    before it, and the event is delivered again."""
