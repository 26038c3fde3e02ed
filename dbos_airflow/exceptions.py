"""Errors dbos-airflow raises instead of driver tracebacks.

Every message names the thing that is wrong (host, database, schema, option key, argument,
workflow id) and never contains a password.

The errors that fail an Airflow task because of what happened to a workflow (failed, not
found, a bad trigger event) are :class:`AirflowException` subclasses when Airflow is installed;
without Airflow (another front end reusing the client, statuses and waiter) they are plain
:class:`DBOSAirflowError`\\ s.
"""

from __future__ import annotations

try:
    from airflow.sdk.exceptions import AirflowException as _TaskFailure
except ImportError:  # pragma: no cover - only without Airflow
    _TaskFailure = Exception  # type: ignore[assignment,misc]


class DBOSAirflowError(Exception):
    """Base class of every error raised by dbos-airflow itself."""


class DBOSConnectionError(DBOSAirflowError):
    """The DBOS system database cannot be reached (host, port, database, credentials)."""


class DBOSSchemaMissingError(DBOSAirflowError):
    """The database answers but holds no DBOS system tables in the configured schema."""


class DBOSOptionsError(DBOSAirflowError, ValueError):
    """An enqueue option or connection setting is unknown or has a bad value."""


class DBOSSerializationError(DBOSAirflowError, TypeError):
    """A workflow argument or message cannot be encoded by the chosen serialization."""


class DBOSUnsafeValueError(DBOSAirflowError):
    """A stored value is pickled (or in an unknown format) and the connection does not allow loading it."""


class DBOSWaitTimeoutError(DBOSAirflowError):
    """A wait for a workflow or an event ran out of time."""


class DBOSBulkEnqueueError(DBOSAirflowError):
    """A bulk enqueue was rolled back: nothing of the batch was enqueued."""


class DBOSWorkflowFailedError(DBOSAirflowError, _TaskFailure):
    """A workflow ended in ERROR, CANCELLED or MAX_RECOVERY_ATTEMPTS_EXCEEDED (or not as required)."""


class DBOSWorkflowNotFoundError(DBOSAirflowError, _TaskFailure):
    """No workflow with the given id exists in the system database."""


class DBOSTriggerEventError(DBOSAirflowError, _TaskFailure):
    """A trigger event that is missing or malformed (the task fails closed)."""


def workflow_not_found_message(workflow_id: str, target: str) -> str:
    """The one wording of "no such workflow": the id and where it was looked for."""
    return f"no DBOS workflow with id {workflow_id!r} in {target}"
