"""The DBOS side of an orchestrator's tasks, over one client: what every front end delegates to.

Status reads (metadata only, never values), the wait loop, re-running an ended workflow
(``retry_mode``'s I/O: :mod:`dbos_orchestrator.retry` decides), forking at most once, and
enqueueing with the chosen serialization. The Airflow hook (``dbos_airflow.hooks.dbos.DBOSHook``)
builds one per call from its connection; a Prefect block would do the same from its own.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from dbos_orchestrator.exceptions import DBOSOptionsError, DBOSWorkflowNotFoundError
from dbos_orchestrator.messages import PROGRESS_LOG_SECONDS, progress_message, workflow_not_found_message
from dbos_orchestrator.retry import rerun_start_step
from dbos_orchestrator.status import DBOSWorkflowStatus, status_to_dict

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from dbos import WorkflowSerializationFormat, WorkflowStatus

    from dbos_orchestrator.client import DBOSClient
    from dbos_orchestrator.store.values import ValueReader

__all__ = ["DBOSService"]

_log = logging.getLogger(__name__)


class DBOSService:
    """
    :param client: the connected client (the front end owns its lifecycle).
    :param allow_pickle: whether stored pickled values may be decoded (the connection's opt-in).
    :param serialization: the connection's default format for values written.
    :param not_found: the error type for a missing workflow (a front end may pass a subclass of
        :class:`DBOSWorkflowNotFoundError` that also fails its tasks).
    :param log: where progress and re-runs are logged.
    :param pickle_hint: how the front end's user allows pickles (ends the refusal of a pickled value;
        Airflow: the connection extra, Prefect: the block field); default: the core's neutral words.
    """

    def __init__(
        self,
        client: DBOSClient,
        *,
        allow_pickle: bool,
        serialization: WorkflowSerializationFormat,
        not_found: type[DBOSWorkflowNotFoundError] = DBOSWorkflowNotFoundError,
        log: logging.Logger | logging.LoggerAdapter[Any] | Any = _log,
        pickle_hint: str = "",
    ) -> None:
        self.client = client
        self.allow_pickle = allow_pickle
        self.pickle_hint = pickle_hint
        self.serialization = serialization
        self.not_found = not_found
        self.log = log

    def value_reader(self) -> ValueReader:
        """Reads stored values safely: pickled rows are refused unless ``allow_pickle``."""
        from dbos_orchestrator.store.values import ValueReader

        return ValueReader(self.client, allow_pickle=self.allow_pickle, pickle_hint=self.pickle_hint)

    # -- status reads (no values) ----------------------------------------------------------

    def list_workflows(self, **filters: Any) -> list[WorkflowStatus]:
        return self.client.list_workflows(**filters, load_input=False, load_output=False)

    def get_workflow_status(self, workflow_id: str, *, load_output: bool = False) -> dict[str, Any] | None:
        rows = self.list_workflows(workflow_ids=[workflow_id])
        if not rows:
            return None
        status = status_to_dict(rows[0])
        if load_output:
            status["output"], status["error"] = self.value_reader().output_and_error(workflow_id)
        return status

    def get_workflow_statuses(self, workflow_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        rows = self.list_workflows(workflow_ids=list(workflow_ids))
        return {r.workflow_id: {**status_to_dict(r), "forked_from": r.forked_from} for r in rows}

    def require_workflow(self, workflow_id: str) -> dict[str, Any]:
        """The workflow's status dict; :attr:`not_found` names a missing id."""
        status = self.get_workflow_status(workflow_id)
        if status is None:
            raise self.not_found(workflow_not_found_message(workflow_id, self.client.target))
        return status

    # -- re-running, forking -----------------------------------------------------------------

    def rerun_workflow(self, workflow_id: str, *, from_failed_step: bool, queue_name: str | None = None) -> None:
        """Run an ended workflow again under the same id (:func:`~dbos_orchestrator.retry.rerun_start_step`)."""
        steps = self.value_reader().step_outcomes(workflow_id) if from_failed_step else []
        start = rerun_start_step(steps, from_failed_step=from_failed_step)
        self.log.info("Re-running DBOS workflow %s from step %s", workflow_id, start)
        self.client.rewind_workflow(workflow_id, start_step=start, queue_name=queue_name)

    def fork_workflow(
        self,
        workflow_id: str,
        start_step: int,
        *,
        forked_workflow_id: str,
        application_version: str | None = None,
        queue_name: str | None = None,
    ) -> bool:
        """Fork at most once: True if this call made the fork, False if it already exists as one."""
        from dbos import SetWorkflowID

        def existing() -> bool:
            found = self.get_workflow_statuses([forked_workflow_id]).get(forked_workflow_id)
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
        self.require_workflow(workflow_id)
        try:
            with SetWorkflowID(forked_workflow_id):
                self.client.fork_workflow(
                    workflow_id, start_step, application_version=application_version, queue_name=queue_name
                )
        except Exception:
            if existing():  # another try of the same task forked first
                return False
            raise
        return True

    # -- waiting -------------------------------------------------------------------------

    def wait_for_status(
        self,
        workflow_id: str,
        *,
        timeout: float | None,
        poll_interval: float,
        progress_every: float = PROGRESS_LOG_SECONDS,
        log: Callable[[str], Any] | None = None,
    ) -> dict[str, Any]:
        """Poll until the workflow ends (leaves the active statuses) or ``timeout`` passes.

        Polls start 0.1 s apart and double up to ``poll_interval``, so a short workflow is
        noticed quickly and a long one costs one query per ``poll_interval``. Every
        ``progress_every`` seconds it logs the status and the last recorded step. Returns the
        last status dict seen (still active if the timeout passed).
        """
        say = log or self.log.info
        started = last_log = time.monotonic()
        deadline = None if timeout is None else started + timeout
        delay = min(0.1, poll_interval)
        while True:
            status = self.require_workflow(workflow_id)
            if DBOSWorkflowStatus.parse(status["status"]).is_terminal():
                return status
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return status
            if now - last_log >= progress_every:
                last_step = self.value_reader().last_step(workflow_id)
                say(progress_message(workflow_id, status["status"], last_step, now - started))
                last_log = now
            time.sleep(delay if deadline is None else max(0.0, min(delay, deadline - now)))
            delay = min(delay * 2, poll_interval)
