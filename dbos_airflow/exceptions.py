"""Errors dbos-airflow raises instead of driver tracebacks.

The core's errors (:mod:`dbos_orchestrator.exceptions`) under their dbos-airflow names; the
errors that fail an Airflow task because of what happened to a workflow (failed, not found, a
bad trigger event) are also :class:`AirflowException` subclasses when Airflow is installed.
"""

from __future__ import annotations

from dbos_orchestrator import exceptions as _core
from dbos_orchestrator.exceptions import (
    DBOSBulkEnqueueError,
    DBOSConnectionError,
    DBOSOptionsError,
    DBOSSchemaMissingError,
    DBOSSerializationError,
    DBOSUnsafeValueError,
    DBOSWaitTimeoutError,
    replacing,
)
from dbos_orchestrator.exceptions import DBOSOrchestratorError as DBOSAirflowError
from dbos_orchestrator.messages import workflow_not_found_message

try:
    from airflow.sdk.exceptions import AirflowException as _TaskFailure
except ImportError:  # pragma: no cover - only without Airflow
    _TaskFailure = Exception  # type: ignore[assignment,misc]

__all__ = [
    "DBOSAirflowError",
    "DBOSBulkEnqueueError",
    "DBOSConnectionError",
    "DBOSOptionsError",
    "DBOSSchemaMissingError",
    "DBOSSerializationError",
    "DBOSTriggerEventError",
    "DBOSUnsafeValueError",
    "DBOSWaitTimeoutError",
    "DBOSWorkflowFailedError",
    "DBOSWorkflowNotFoundError",
    "replacing",
    "workflow_not_found_message",
]


class DBOSWorkflowFailedError(_core.DBOSWorkflowFailedError, _TaskFailure):
    """A workflow ended in ERROR, CANCELLED or MAX_RECOVERY_ATTEMPTS_EXCEEDED (or not as required)."""


class DBOSWorkflowNotFoundError(_core.DBOSWorkflowNotFoundError, _TaskFailure):
    """No workflow with the given id exists in the system database."""


class DBOSTriggerEventError(DBOSAirflowError, _TaskFailure):
    """A trigger event that is missing or malformed (the task fails closed)."""
