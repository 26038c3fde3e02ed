"""The one module through which prefect-dbos reaches the shared core (``dbos_orchestrator``).

Everything prefect-dbos needs of the two-engine contract (the documented client, statuses,
the safe value reader, the shared waiter and its batch waits, the completion feed, the bulk writer, the retry rule
and the service, the sentences of a wait, the errors) is imported here and nowhere else.

:class:`WorkflowService` is the core's :class:`DBOSService` plus what the Prefect tasks call in
one step under Prefect's names (status, require, cancel, resume, fork once). Enqueue-or-reattach
(the core's :func:`~dbos_orchestrator.retry.reattach` rule decides) and an ended workflow's result
or failure (:mod:`dbos_orchestrator.outcome`) are the core's own :class:`DBOSService` methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from dbos_orchestrator.client import DBOSClient, EnqueueOptions, hide_password, quiet_initialization
from dbos_orchestrator.exceptions import (
    DBOSOptionsError,
    DBOSOrchestratorError,
    DBOSUnsafeValueError,
    DBOSWaitTimeoutError,
    DBOSWorkflowFailedError,
    DBOSWorkflowNotFoundError,
)
from dbos_orchestrator.messages import (
    PROGRESS_LOG_SECONDS,
    batch_progress_message,
    ended_message,
    event_missing_message,
    progress_message,
    still_waiting_message,
)
from dbos_orchestrator.outcome import FAILURES_NAMED, batch_result
from dbos_orchestrator.retry import RETRY_MODES, Reattach, check_retry_mode
from dbos_orchestrator.serialization import serialization_format
from dbos_orchestrator.service import DBOSService
from dbos_orchestrator.status import DBOSWorkflowStatus, status_to_dict
from dbos_orchestrator.store.bulk import enqueue_many
from dbos_orchestrator.store.values import ValueReader
from dbos_orchestrator.waiting.batch import BatchCounts, BatchSpec, BatchTracker
from dbos_orchestrator.waiting.feed import Completion, CompletionFilter, FeedState, now_ms
from dbos_orchestrator.waiting.waiter import DBOSWaiter, Observation, get_waiter, running_waiters

DBOSError = DBOSOrchestratorError

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "FAILURES_NAMED",
    "PROGRESS_LOG_SECONDS",
    "RETRY_MODES",
    "BatchCounts",
    "BatchSpec",
    "BatchTracker",
    "Completion",
    "CompletionFilter",
    "DBOSClient",
    "DBOSError",
    "DBOSOptionsError",
    "DBOSUnsafeValueError",
    "DBOSWaitTimeoutError",
    "DBOSWaiter",
    "DBOSWorkflowFailedError",
    "DBOSWorkflowNotFoundError",
    "DBOSWorkflowStatus",
    "EnqueueOptions",
    "FeedState",
    "Observation",
    "Reattach",
    "RetryMode",
    "ValueReader",
    "WorkflowService",
    "batch_progress_message",
    "batch_result",
    "check_retry_mode",
    "ended_message",
    "enqueue_many",
    "event_missing_message",
    "get_waiter",
    "hide_password",
    "now_ms",
    "progress_message",
    "quiet_initialization",
    "running_waiters",
    "serialization_format",
    "still_waiting_message",
]

RetryMode = Literal["resume", "restart", "fail"]


class WorkflowService(DBOSService):
    """The core's service on one system database, with the steps the Prefect tasks take.

    :param client: the documented client of the system database.
    :param allow_pickle: whether stored ``py_pickle`` values may be decoded (runs their code).
    :param serialization: the block's format for values written.
    :param log: where the service's lines go (a Prefect run logger inside a run).
    """

    def reader(self) -> ValueReader:
        """Reads stored values; pickles are refused unless ``allow_pickle``."""
        return self.value_reader()

    def statuses(self, workflow_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """``{workflow_id: status dict}`` of the ids that exist, in one query (no values read)."""
        return self.get_workflow_statuses(workflow_ids)

    def status(self, workflow_id: str) -> dict[str, Any] | None:
        """The workflow's status dict (with ``forked_from``), or None when it does not exist."""
        return self.statuses([workflow_id]).get(workflow_id)

    def require(self, workflow_id: str) -> dict[str, Any]:
        """The workflow's status dict; a missing id raises :class:`DBOSWorkflowNotFoundError`."""
        return self.require_workflow(workflow_id)

    def ids_with_prefix(self, prefix: str) -> list[dict[str, Any]]:
        """Status dicts of every workflow whose id starts with ``prefix``."""
        return [status_to_dict(r) for r in self.list_workflows(workflow_id_prefix=prefix)]

    def last_step(self, workflow_id: str) -> tuple[int, str] | None:
        """The last recorded step ``(number, name)``, or None."""
        return self.value_reader().last_step(workflow_id)

    def cancel(self, workflow_ids: list[str]) -> None:
        """Cancel workflows (idempotent: ended or unknown ones are left as they are)."""
        self.cancel_workflows(workflow_ids)

    def resume(self, workflow_id: str, *, queue_name: str | None = None) -> None:
        """Continue a CANCELLED or MAX_RECOVERY_ATTEMPTS_EXCEEDED workflow where it stopped."""
        self.resume_workflow(workflow_id, queue_name=queue_name)

    def fork_once(
        self,
        workflow_id: str,
        start_step: int,
        *,
        forked_workflow_id: str,
        application_version: str | None = None,
        queue_name: str | None = None,
    ) -> bool:
        """The core's fork, at most once (False: a retry found its fork)."""
        return self.fork_workflow(
            workflow_id,
            start_step,
            forked_workflow_id=forked_workflow_id,
            application_version=application_version,
            queue_name=queue_name,
        )
