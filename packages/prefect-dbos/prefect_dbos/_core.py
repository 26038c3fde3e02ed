"""The one module through which prefect-dbos reaches the Airflow-free core.

Everything prefect-dbos needs of the two-engine contract (the documented client, statuses,
the safe value reader, the shared waiter, the completion feed, the bulk writer, the sentences
of a wait, the errors) is imported here and nowhere else, so that moving to the core's own
distribution (``dbos_orchestrator``, branch ``layers``) changes this one file.

Interim: the core's distribution is not installable yet, so this module imports the
Airflow-free modules of ``dbos_airflow`` (none of them imports Airflow) and holds
:class:`WorkflowService`, the plain status/retry/fork/cancel service the core is to provide
(today that logic sits behind Airflow's ``BaseHook`` in ``dbos_airflow.hooks.dbos``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal

from dbos_airflow.client import DBOSClient, EnqueueOptions, hide_password, quiet_initialization
from dbos_airflow.exceptions import (
    DBOSAirflowError as DBOSError,
)
from dbos_airflow.exceptions import (
    DBOSOptionsError,
    DBOSUnsafeValueError,
    DBOSWaitTimeoutError,
    DBOSWorkflowFailedError,
    DBOSWorkflowNotFoundError,
    workflow_not_found_message,
)
from dbos_airflow.outcome import (
    PROGRESS_LOG_SECONDS,
    ended_message,
    event_missing_message,
    progress_message,
    still_waiting_message,
)
from dbos_airflow.status import DBOSWorkflowStatus, status_to_dict
from dbos_airflow.utils.bulk import enqueue_many
from dbos_airflow.values import ValueReader
from dbos_airflow.waiting.feed import Completion, CompletionFilter, FeedState
from dbos_airflow.waiting.waiter import DBOSWaiter, Observation, get_waiter, running_waiters

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "PROGRESS_LOG_SECONDS",
    "RETRY_MODES",
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
    "RetryMode",
    "ValueReader",
    "WorkflowService",
    "ended_message",
    "enqueue_many",
    "event_missing_message",
    "get_waiter",
    "hide_password",
    "progress_message",
    "quiet_initialization",
    "running_waiters",
    "still_waiting_message",
]

RetryMode = Literal["resume", "restart", "fail"]
RETRY_MODES: tuple[str, ...] = ("resume", "restart", "fail")


class WorkflowService:
    """Status reads, enqueue-or-reattach, re-runs, forks and cancels on one system database.

    :param client: the documented client of the system database.
    :param allow_pickle: whether stored ``py_pickle`` values may be decoded (runs their code).
    :param log: where the service's lines go (a Prefect run logger inside a run).
    """

    def __init__(self, client: DBOSClient, *, allow_pickle: bool = False, log: Any = None) -> None:
        self.client = client
        self.allow_pickle = allow_pickle
        self.log = log or logging.getLogger("prefect_dbos")

    def reader(self) -> ValueReader:
        """Reads stored values; pickles are refused unless ``allow_pickle``."""
        return ValueReader(self.client, allow_pickle=self.allow_pickle)

    # -- reads ---------------------------------------------------------------------------

    def statuses(self, workflow_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """``{workflow_id: status dict}`` of the ids that exist, in one query (no values read)."""
        rows = self.client.list_workflows(workflow_ids=list(workflow_ids), load_input=False, load_output=False)
        return {r.workflow_id: {**status_to_dict(r), "forked_from": r.forked_from} for r in rows}

    def status(self, workflow_id: str) -> dict[str, Any] | None:
        """The workflow's status dict, or None when it does not exist."""
        return self.statuses([workflow_id]).get(workflow_id)

    def require(self, workflow_id: str) -> dict[str, Any]:
        """The workflow's status dict; a missing id raises :class:`DBOSWorkflowNotFoundError`."""
        found = self.status(workflow_id)
        if found is None:
            raise DBOSWorkflowNotFoundError(workflow_not_found_message(workflow_id, self.client.target))
        return found

    def ids_with_prefix(self, prefix: str) -> list[dict[str, Any]]:
        """Status dicts of every workflow whose id starts with ``prefix``."""
        rows = self.client.list_workflows(workflow_id_prefix=prefix, load_input=False, load_output=False)
        return [status_to_dict(r) for r in rows]

    def result(self, workflow_id: str, *, log: Any = None) -> Any:
        """The decoded output of an ended workflow; a failure raises with its own error and id.

        :param log: given, a callable receiving the one closing line (:func:`ended_message`).
        """
        status = self.require(workflow_id)
        state = DBOSWorkflowStatus.parse(status["status"])
        if state.is_success():
            output = self.reader().output(workflow_id)
            if log is not None:
                log(ended_message(status, result=output))
            return output
        if state.is_failure():
            error = self.reader().error_message(workflow_id)
            if log is not None:
                log(ended_message(status, error=error))
            detail = f": {error}" if error else ""
            raise DBOSWorkflowFailedError(f"DBOS workflow ended {state.value}{detail} (workflow {workflow_id})")
        raise DBOSWorkflowFailedError(f"DBOS workflow is still {state.value} (workflow {workflow_id})")

    def last_step(self, workflow_id: str) -> tuple[int, str] | None:
        """The last recorded step ``(number, name)``, or None."""
        return self.reader().last_step(workflow_id)

    # -- the retry contract --------------------------------------------------------------

    def enqueue_or_reattach(
        self,
        options: EnqueueOptions,
        args: Iterable[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        retry_mode: RetryMode = "resume",
    ) -> str:
        """Enqueue ``options["workflow_id"]`` once; a later call re-attaches, or re-runs it by ``retry_mode``.

        Returns ``"enqueued"``, ``"attached"`` (active or succeeded: left alone) or ``"rerun"``.
        ``retry_mode="fail"`` on a failed workflow raises :class:`DBOSWorkflowFailedError`.
        """
        if retry_mode not in RETRY_MODES:
            raise DBOSOptionsError(f"retry_mode={retry_mode!r}; use one of {RETRY_MODES}")
        workflow_id = options["workflow_id"]
        existing = self.status(workflow_id)
        if existing is None:
            self.client.enqueue(options, *args, **(kwargs or {}))  # DBOS' "return-existing" covers a race
            self.log.info(
                "Enqueued DBOS workflow %s (%s on %s)", workflow_id, options["workflow_name"], options["queue_name"]
            )
            return "enqueued"
        state = DBOSWorkflowStatus.parse(existing["status"])
        if state.is_active():
            self.log.info("Re-attached to DBOS workflow %s, which is %s", workflow_id, state.value)
            return "attached"
        if not state.is_failure():
            self.log.info("DBOS workflow %s already ended %s; not running it again", workflow_id, state.value)
            return "attached"
        if retry_mode == "fail":
            self.result(workflow_id)  # raises with the workflow's own error
        self.log.info("DBOS workflow %s ended %s; retry_mode=%s", workflow_id, state.value, retry_mode)
        self.rerun(workflow_id, from_failed_step=retry_mode == "resume", queue_name=options.get("queue_name"))
        return "rerun"

    def rerun(self, workflow_id: str, *, from_failed_step: bool, queue_name: str | None = None) -> None:
        """Run an ended workflow again under its id: from its first failed step, or from step 1."""
        start = 1
        if from_failed_step:
            steps = self.reader().step_outcomes(workflow_id)
            failed = [step for step, ok in steps if not ok]
            start = min(failed) if failed else max((step for step, _ in steps), default=0) + 1
        self.log.info("Re-running DBOS workflow %s from step %s", workflow_id, start)
        self.client.rewind_workflow(workflow_id, start_step=start, queue_name=queue_name)

    def fork_once(
        self,
        workflow_id: str,
        start_step: int,
        *,
        forked_workflow_id: str,
        application_version: str | None = None,
        queue_name: str | None = None,
    ) -> bool:
        """Fork ``workflow_id`` from ``start_step`` as ``forked_workflow_id`` at most once.

        Returns False when that id already is such a fork (a retry); an id that exists and is not
        a fork of ``workflow_id`` raises :class:`DBOSOptionsError`.
        """
        from dbos import SetWorkflowID

        def existing() -> bool:
            found = self.status(forked_workflow_id)
            if found is None:
                return False
            if found["forked_from"] != workflow_id:
                raise DBOSOptionsError(
                    f"DBOS workflow {forked_workflow_id!r} exists and is not a fork of {workflow_id!r} "
                    f"(forked_from={found['forked_from']!r}); choose another fork id"
                )
            return True

        if existing():
            return False
        self.require(workflow_id)
        try:
            with SetWorkflowID(forked_workflow_id):
                self.client.fork_workflow(
                    workflow_id, start_step, application_version=application_version, queue_name=queue_name
                )
        except Exception:
            if existing():  # another try forked first
                return False
            raise
        return True

    def cancel(self, workflow_ids: list[str]) -> None:
        """Cancel workflows (idempotent: ended or unknown ones are left as they are)."""
        if workflow_ids:
            self.client.cancel_workflows(workflow_ids)

    def resume(self, workflow_id: str, *, queue_name: str | None = None) -> None:
        """Continue a CANCELLED or MAX_RECOVERY_ATTEMPTS_EXCEEDED workflow where it stopped."""
        self.client.resume_workflow(workflow_id, queue_name=queue_name)
