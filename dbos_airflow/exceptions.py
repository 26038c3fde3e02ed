"""Errors dbos-airflow raises instead of driver tracebacks.

Every message names the thing that is wrong (host, database, schema, option key,
argument, workflow id) and never contains a password.
"""

from __future__ import annotations


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


class DBOSWorkflowFailedError(DBOSAirflowError):
    """A workflow ended in ERROR, CANCELLED or MAX_RECOVERY_ATTEMPTS_EXCEEDED."""


class DBOSWorkflowNotFoundError(DBOSAirflowError):
    """No workflow with the given id exists in the system database."""


class DBOSWaitTimeoutError(DBOSAirflowError):
    """A wait for a workflow or an event ran out of time."""


class DBOSUnsafeValueError(DBOSAirflowError):
    """A stored value is pickled (or in an unknown format) and the connection does not allow loading it."""
