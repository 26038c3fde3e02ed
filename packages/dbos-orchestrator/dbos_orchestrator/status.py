"""DBOS workflow statuses: the only place that spells them.

Everything that reasons about a status (the waiter, triggers, sensors, operators, the UI)
goes through :class:`DBOSWorkflowStatus`. No Airflow import: a second front end reuses it.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable

    from dbos import WorkflowStatus


class DBOSWorkflowStatus(str, Enum):
    """The status strings of ``dbos.WorkflowStatus.status`` (the ``workflow_status.status`` column)."""

    ENQUEUED = "ENQUEUED"
    DELAYED = "DELAYED"
    PENDING = "PENDING"
    SUCCESS = "SUCCESS"
    ERROR = "ERROR"
    CANCELLED = "CANCELLED"
    MAX_RECOVERY_ATTEMPTS_EXCEEDED = "MAX_RECOVERY_ATTEMPTS_EXCEEDED"

    @classmethod
    def parse(cls, value: Any) -> DBOSWorkflowStatus:
        """The member for ``value``; an unknown status raises ``ValueError`` (fail closed)."""
        if isinstance(value, cls):
            return value
        try:
            return cls(value)
        except ValueError:
            raise ValueError(
                f"unknown DBOS workflow status {value!r}; known statuses: {', '.join(m.value for m in cls)}"
            ) from None

    @classmethod
    def parse_all(cls, values: Iterable[Any]) -> tuple[DBOSWorkflowStatus, ...]:
        """Every value parsed (an unknown one raises ``ValueError`` naming it)."""
        return tuple(cls.parse(v) for v in values)

    def is_active(self) -> bool:
        """Not ended yet: queued, delayed or running."""
        return self in ACTIVE_STATUSES

    def is_terminal(self) -> bool:
        """Ended: nothing changes it any more unless someone resumes, rewinds or forks it."""
        return not self.is_active()

    def is_resumable(self) -> bool:
        """Stopped where it was and can continue from there (DBOS' resume): CANCELLED or dead-lettered
        (MAX_RECOVERY_ATTEMPTS_EXCEEDED). The resume operator and the view's button share this rule."""
        return self in (DBOSWorkflowStatus.CANCELLED, DBOSWorkflowStatus.MAX_RECOVERY_ATTEMPTS_EXCEEDED)

    def is_success(self) -> bool:
        return self in SUCCESS_STATUSES

    def is_failure(self) -> bool:
        return self in FAILURE_STATUSES

    def __str__(self) -> str:
        return self.value


ACTIVE_STATUSES = frozenset({DBOSWorkflowStatus.ENQUEUED, DBOSWorkflowStatus.DELAYED, DBOSWorkflowStatus.PENDING})
SUCCESS_STATUSES = frozenset({DBOSWorkflowStatus.SUCCESS})
FAILURE_STATUSES = frozenset(
    {
        DBOSWorkflowStatus.ERROR,
        DBOSWorkflowStatus.CANCELLED,
        DBOSWorkflowStatus.MAX_RECOVERY_ATTEMPTS_EXCEEDED,
    }
)
TERMINAL_STATUSES = SUCCESS_STATUSES | FAILURE_STATUSES
# Waiting for a workflow that was never picked up: the queue's side of it.
QUEUED_STATUSES = frozenset({DBOSWorkflowStatus.ENQUEUED, DBOSWorkflowStatus.DELAYED})


def status_to_dict(status: WorkflowStatus) -> dict[str, Any]:
    """A JSON-safe dict of a ``dbos.WorkflowStatus``'s metadata (no inputs, outputs or errors).

    Values are read separately, through :mod:`dbos_orchestrator.store.values` (never unpickled by default).
    """
    return {
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
