"""DBOS workflow statuses, as Airflow code needs to reason about them."""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dbos import WorkflowStatus


class DBOSWorkflowStatus(str, Enum):
    """The status strings of ``dbos.WorkflowStatus.status``."""

    ENQUEUED = "ENQUEUED"
    DELAYED = "DELAYED"
    PENDING = "PENDING"
    SUCCESS = "SUCCESS"
    ERROR = "ERROR"
    CANCELLED = "CANCELLED"
    MAX_RECOVERY_ATTEMPTS_EXCEEDED = "MAX_RECOVERY_ATTEMPTS_EXCEEDED"

    @classmethod
    def parse(cls, value: str) -> DBOSWorkflowStatus:
        """The member for ``value``; an unknown status raises ``ValueError`` (fail closed)."""
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"unknown DBOS workflow status {value!r}") from None

    def is_active(self) -> bool:
        return self in ACTIVE_STATUSES

    def is_terminal(self) -> bool:
        return not self.is_active()

    def is_failure(self) -> bool:
        return self in FAILURE_STATUSES


ACTIVE_STATUSES = frozenset(
    {DBOSWorkflowStatus.ENQUEUED, DBOSWorkflowStatus.DELAYED, DBOSWorkflowStatus.PENDING}
)
FAILURE_STATUSES = frozenset(
    {
        DBOSWorkflowStatus.ERROR,
        DBOSWorkflowStatus.CANCELLED,
        DBOSWorkflowStatus.MAX_RECOVERY_ATTEMPTS_EXCEEDED,
    }
)


def describe_error(error: Any) -> str | None:
    """The workflow's own error message: ``Name: message`` (portable errors keep their name)."""
    if error is None:
        return None
    if isinstance(error, BaseException):
        name = getattr(error, "name", None) or type(error).__name__
        message = getattr(error, "message", None) or str(error)
        return f"{name}: {message}"
    return _describe_undecodable_pickle(str(error)) or str(error)


def _describe_undecodable_pickle(text: str) -> str | None:
    """``Name: message`` read statically from a pickled exception dbos could not unpickle.

    dbos hands back the raw base64 when the exception's class is not importable here (it lives
    in the DBOS application). The opcodes still name the class and carry its string arguments;
    reading them executes nothing.
    """
    import base64
    import binascii
    import pickletools

    try:
        strings = [
            arg for op, arg, _ in pickletools.genops(base64.b64decode(text, validate=True)) if isinstance(arg, str)
        ]
    except (binascii.Error, ValueError, EOFError):
        return None
    if len(strings) < 2:
        return None
    name, args = strings[1].split(" ")[-1], strings[2:]
    return f"{name}: {' '.join(args)}" if args else name


def status_to_dict(status: WorkflowStatus, *, with_output: bool = False) -> dict[str, Any]:
    """A JSON-safe dict of a ``dbos.WorkflowStatus`` (which is a plain class, not a dataclass)."""
    out: dict[str, Any] = {
        "workflow_id": status.workflow_id,
        "status": status.status,
        "name": status.name,
        "class_name": status.class_name,
        "queue_name": status.queue_name,
        "app_version": status.app_version,
        "executor_id": status.executor_id,
        "created_at": status.created_at,
        "updated_at": status.updated_at,
        "recovery_attempts": status.recovery_attempts,
    }
    if with_output:
        out["output"] = status.output
        out["error"] = describe_error(status.error)
    return out
