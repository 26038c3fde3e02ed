"""Errors the core raises instead of driver tracebacks (no front end's types: plain exceptions).

Every message names the thing that is wrong (host, database, schema, option key, argument,
workflow id) and never contains a password. A front end may subclass the errors that fail one of
its tasks (dbos_airflow.exceptions makes them ``AirflowException``\\ s).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "DBOSOrchestratorError",
    "DBOSBulkEnqueueError",
    "DBOSConnectionError",
    "DBOSOptionsError",
    "DBOSSchemaMissingError",
    "DBOSSerializationError",
    "DBOSUnsafeValueError",
    "DBOSWaitTimeoutError",
    "DBOSWorkflowFailedError",
    "DBOSWorkflowNotFoundError",
    "replacing",
]


class DBOSOrchestratorError(Exception):
    """Base class of every error the core, dbos-airflow and prefect-dbos raise (their task-failing
    subclasses included)."""


class DBOSConnectionError(DBOSOrchestratorError):
    """The DBOS system database cannot be reached (host, port, database, credentials).

    Raised through :func:`replacing`: also an instance of the driver error it replaces
    (``sqlalchemy.exc.OperationalError`` from the client).
    """


class DBOSSchemaMissingError(DBOSOrchestratorError):
    """The database answers but holds no DBOS system tables in the configured schema.

    Raised through :func:`replacing`: also an instance of the driver error it replaces
    (``sqlalchemy.exc.ProgrammingError`` on Postgres, ``OperationalError`` on SQLite).
    """


_REPLACEMENT_TYPES: dict[tuple[type[DBOSOrchestratorError], type[BaseException]], type[Exception]] = {}


def replacing(cls: type[DBOSOrchestratorError], original: BaseException, message: str) -> Exception:
    """A ``cls`` with ``message`` that is still an instance of ``original``'s type.

    Code written against the documented ``DBOSClient`` catches the driver's errors
    (``except sqlalchemy.exc.DBAPIError``, ``except OperationalError``): the clearer error must
    not slip past it. The instance keeps ``original``'s attributes (``orig``, ``statement``,
    ``code`` ...); its text is ``message``; it pickles as a plain ``cls``.
    """
    key = (cls, type(original))
    both = _REPLACEMENT_TYPES.get(key)
    if both is None:
        namespace = {
            "__module__": cls.__module__,
            "__qualname__": cls.__qualname__,
            "__doc__": cls.__doc__,
            "__str__": lambda self: self.args[0],
            "__reduce__": lambda self: (cls, self.args),
        }
        both = _REPLACEMENT_TYPES[key] = type(cls.__name__, (cls, type(original)), namespace)
    error: Any = both.__new__(both)
    error.__dict__.update(getattr(original, "__dict__", {}))
    error.args = (message,)
    return error


class DBOSOptionsError(DBOSOrchestratorError, ValueError):
    """An enqueue option or connection setting is unknown or has a bad value."""


class DBOSSerializationError(DBOSOrchestratorError, TypeError):
    """A workflow argument or message cannot be encoded by the chosen serialization."""


class DBOSUnsafeValueError(DBOSOrchestratorError):
    """A stored value is pickled (or in an unknown format) and the connection does not allow loading it."""


class DBOSWaitTimeoutError(DBOSOrchestratorError):
    """A wait for a workflow or an event ran out of time."""


class DBOSBulkEnqueueError(DBOSOrchestratorError):
    """A bulk enqueue was rolled back: nothing of the batch was enqueued."""


class DBOSWorkflowFailedError(DBOSOrchestratorError):
    """A workflow ended in ERROR, CANCELLED or MAX_RECOVERY_ATTEMPTS_EXCEEDED (or not as required)."""


class DBOSWorkflowNotFoundError(DBOSOrchestratorError):
    """No workflow with the given id exists in the system database."""
