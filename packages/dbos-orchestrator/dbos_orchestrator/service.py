"""The DBOS side of an orchestrator's tasks, over one client: what every front end delegates to.

Status reads (metadata only, never values), enqueue-or-reattach and re-running an ended
workflow (``retry_mode``'s I/O: :mod:`dbos_orchestrator.retry` decides), an ended workflow's
result or failure (:mod:`dbos_orchestrator.outcome` decides), cancel and resume, forking at most
once, and the wait loop. The Airflow hook (``dbos_airflow.hooks.dbos.DBOSHook``)
builds one per call from its connection; a Prefect block would do the same from its own.
"""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING, Any

from dbos_orchestrator.batches import BatchService
from dbos_orchestrator.exceptions import DBOSOptionsError, DBOSWorkflowFailedError, DBOSWorkflowNotFoundError
from dbos_orchestrator.messages import PROGRESS_LOG_SECONDS, progress_message, workflow_not_found_message
from dbos_orchestrator.outcome import batch_result, workflow_result
from dbos_orchestrator.retry import Reattach, check_retry_mode, reattach, rerun_start_step
from dbos_orchestrator.status import (
    FAILURE_STATUSES,
    QUEUED_STATUSES,
    SUCCESS_STATUSES,
    DBOSWorkflowStatus,
    status_to_dict,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable, Sequence

    from dbos import WorkflowSerializationFormat, WorkflowStatus

    from dbos_orchestrator.client import DBOSClient
    from dbos_orchestrator.options import EnqueueOptions
    from dbos_orchestrator.store.values import ValueReader
    from dbos_orchestrator.waiting.batch import BatchCounts

__all__ = ["DBOSService"]

_log = logging.getLogger(__name__)


class DBOSService(BatchService):
    """
    :param client: the connected client (the front end owns its lifecycle).
    :param allow_pickle: whether stored pickled values may be decoded (the connection's opt-in).
    :param serialization: the connection's default format for values written.
    :param not_found: the error type for a missing workflow (a front end may pass a subclass of
        :class:`DBOSWorkflowNotFoundError` that also fails its tasks).
    :param failed: the error type for a workflow that ended in failure (likewise).
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
        failed: type[DBOSWorkflowFailedError] = DBOSWorkflowFailedError,
        log: logging.Logger | logging.LoggerAdapter[Any] | Any = _log,
        pickle_hint: str = "",
    ) -> None:
        self.client = client
        self.allow_pickle = allow_pickle
        self.pickle_hint = pickle_hint
        self.serialization = serialization
        self.not_found = not_found
        self.failed = failed
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

    def get_workflow_status_with_fork(self, workflow_id: str) -> dict[str, Any] | None:
        """The workflow's status dict with ``forked_from`` (the id it was forked from, or None);
        None when it does not exist."""
        return self.get_workflow_statuses([workflow_id]).get(workflow_id)

    def list_workflows_with_prefix(self, prefix: str) -> list[dict[str, Any]]:
        """Status dicts of every workflow whose id starts with ``prefix`` (no values read)."""
        return [status_to_dict(r) for r in self.list_workflows(workflow_id_prefix=prefix)]

    def require_workflow(self, workflow_id: str) -> dict[str, Any]:
        """The workflow's status dict; :attr:`not_found` names a missing id."""
        status = self.get_workflow_status(workflow_id)
        if status is None:
            raise self.not_found(workflow_not_found_message(workflow_id, self.client.target))
        return status

    def result(
        self,
        workflow_id: str,
        *,
        status: dict[str, Any] | None = None,
        success_statuses: Collection[DBOSWorkflowStatus] = SUCCESS_STATUSES,
        failure_statuses: Collection[DBOSWorkflowStatus] = FAILURE_STATUSES,
        log: Callable[[str], Any] | None = None,
    ) -> Any:
        """The decoded output of an ended workflow; a failure raises :attr:`failed` with its own error
        and id (:func:`dbos_orchestrator.outcome.workflow_result`).

        :param status: the workflow's status dict as a wait already returned it (not read again);
            None: read now.
        :param success_statuses: the statuses the task counts as success.
        :param failure_statuses: the statuses it counts as failure (besides every failure status).
        :param log: given, gets the one closing line (how the workflow ended).
        """
        return workflow_result(
            status if status is not None else self.require_workflow(workflow_id),
            self.value_reader(),
            success_statuses=success_statuses,
            failure_statuses=failure_statuses,
            log=log,
            failed=self.failed,
        )

    def batch_result(
        self,
        counts: BatchCounts,
        failures: Sequence[tuple[int, str, str | None]],
        *,
        fail_fast: bool = False,
        cancelled: int | None = None,
    ) -> None:
        """The failure policy of a batch (:func:`dbos_orchestrator.outcome.batch_result`): raises
        :attr:`failed` naming how many items failed, by status, and the first few with their own errors."""
        batch_result(
            counts, failures, self.value_reader(), fail_fast=fail_fast, cancelled=cancelled, failed=self.failed
        )

    # -- enqueue or re-attach, re-running, cancel, resume, forking -----------------------------

    def check_enqueue_target(
        self,
        queue_name: str | None,
        app_version: str | None = None,
        *,
        on_unknown_queue: str = "warn",
        on_unknown_version: str = "warn",
    ) -> list[str]:
        """Before an enqueue: warn about (or, with ``"fail"``, refuse) a queue or ``app_version`` no
        worker registered (:func:`dbos_orchestrator.operations.preflight.check_enqueue_target`: at most
        one read per process every few seconds). Returns the sentences warned."""
        from dbos_orchestrator.operations.preflight import check_enqueue_target

        return check_enqueue_target(
            self.client,
            queue_name=queue_name,
            app_version=app_version,
            on_unknown_queue=on_unknown_queue,
            on_unknown_version=on_unknown_version,
            warn=self.log.warning,
        )

    def enqueue_or_reattach(
        self,
        options: EnqueueOptions,
        args: Iterable[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        retry_mode: str = "resume",
        check: Callable[[], Any] | None = None,
    ) -> Reattach | None:
        """Enqueue ``options["workflow_id"]`` once; a later call follows the retry rule (:meth:`reattach`).

        Returns None when this call enqueued it, else what the rule decided. ``options`` are
        written as given (the caller chose ``serialization_type``); DBOS' own "return existing"
        covers two calls racing. ``check`` runs only before an enqueue (e.g. :meth:`check_enqueue_target`).
        """
        return self.enqueue_attaching(options, args, kwargs, retry_mode=retry_mode, check=check)[1]

    def enqueue_attaching(
        self,
        options: EnqueueOptions,
        args: Iterable[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        retry_mode: str = "resume",
        check: Callable[[], Any] | None = None,
    ) -> tuple[str, Reattach | None]:
        """:meth:`enqueue_or_reattach`, and the id to wait on: with ``duplication_policy="return-existing"``
        the workflow that already held the ``deduplication_id`` on the queue, when one did (its
        arguments win; this call's are dropped, as DBOS does)."""
        check_retry_mode(retry_mode)
        workflow_id = options["workflow_id"]
        existing = self.get_workflow_status(workflow_id)
        if existing is not None:
            return workflow_id, self.reattach(existing, retry_mode, queue_name=options.get("queue_name"))
        if check is not None:
            check()
        handle = self.client.enqueue(options, *args, **(kwargs or {}))
        if handle.workflow_id != workflow_id:
            self.log.info(
                "DBOS workflow %s already holds deduplication id %s on %s: waiting on it instead of enqueueing %s "
                "(duplication_policy='return-existing')",
                handle.workflow_id,
                options.get("deduplication_id"),
                options["queue_name"],
                workflow_id,
            )
            return handle.workflow_id, None
        name, queue = options["workflow_name"], options["queue_name"]
        self.log.info("Enqueued DBOS workflow %s (%s on %s)", workflow_id, name, queue)
        return workflow_id, None

    def reattach(self, status: dict[str, Any], retry_mode: str, *, queue_name: str | None = None) -> Reattach:
        """A later try found the workflow it started: leave it, run it again, or fail, by
        :func:`dbos_orchestrator.retry.reattach` (``retry_mode="fail"`` on a failed workflow raises
        :attr:`failed` with the workflow's own error)."""
        workflow_id, state = status["workflow_id"], DBOSWorkflowStatus.parse(status["status"])
        decision = reattach(state, retry_mode)
        if decision is Reattach.LEAVE_RUNNING:
            self.log.info("Re-attached to DBOS workflow %s, which is %s", workflow_id, state.value)
        elif decision is Reattach.LEAVE_ENDED:
            self.log.info("DBOS workflow %s already ended %s; not running it again", workflow_id, state.value)
        elif decision is Reattach.FAIL:
            workflow_result(status, self.value_reader(), failed=self.failed)  # raises with its own error
        else:
            self.log.info("DBOS workflow %s ended %s; retry_mode=%s", workflow_id, state.value, retry_mode)
            self.rerun_workflow(workflow_id, from_failed_step=decision is Reattach.RESUME, queue_name=queue_name)
        return decision

    def cancel_workflows(self, workflow_ids: list[str]) -> None:
        """Cancel workflows in one statement (idempotent: ended or unknown ones are left as they are)."""
        if workflow_ids:
            self.client.cancel_workflows(workflow_ids)

    def send_bulk(
        self,
        destination_ids: Sequence[str],
        message: Any,
        *,
        topic: str | None,
        idempotency_key: str,
        serialization_type: WorkflowSerializationFormat,
    ) -> None:
        """Send ``message`` to every destination in one transaction (DBOS' ``send_bulk``), each under its own
        key ``<idempotency_key>:<destination>``: a retry delivers it once per destination, all or none."""
        from dbos import SendMessage

        bad = [d for d in destination_ids if not isinstance(d, str) or not d]
        if not destination_ids or bad or len(set(destination_ids)) != len(destination_ids):
            raise DBOSOptionsError(
                f"destination_id={list(destination_ids)!r} must be a non-empty list of distinct workflow ids"
            )
        messages = [SendMessage(d, message, topic, f"{idempotency_key}:{d}") for d in destination_ids]
        self.client.send_bulk(messages, serialization_type=serialization_type)

    def set_workflow_delay(self, workflow_id: str, delay_seconds: Any) -> bool:
        """Move a DELAYED workflow's start to ``delay_seconds`` from now (0: at once); returns whether it
        was DELAYED (DBOS changes nothing otherwise: the line logged says so). A missing id raises
        :attr:`not_found`; a negative or non-numeric delay names the field."""
        number = isinstance(delay_seconds, (int, float)) and not isinstance(delay_seconds, bool)
        if not number or not math.isfinite(delay_seconds) or delay_seconds < 0:
            raise DBOSOptionsError(f"delay_seconds={delay_seconds!r} must be a number of seconds >= 0")
        state = DBOSWorkflowStatus.parse(self.require_workflow(workflow_id)["status"])
        if state is not DBOSWorkflowStatus.DELAYED:
            self.log.info("DBOS workflow %s is %s, not DELAYED: its delay is not changed", workflow_id, state.value)
            return False
        self.client.set_workflow_delay(workflow_id, delay_seconds=float(delay_seconds))
        self.log.info("DBOS workflow %s now starts in %ss", workflow_id, delay_seconds)
        return True

    def resume_workflow(self, workflow_id: str, *, queue_name: str | None = None) -> None:
        """Continue a CANCELLED or MAX_RECOVERY_ATTEMPTS_EXCEEDED workflow where it stopped."""
        self.client.resume_workflow(workflow_id, queue_name=queue_name)

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
        self._trace_fork(forked_workflow_id)
        return True

    def _trace_fork(self, forked_workflow_id: str) -> None:
        """Put the forking task's trace on a new fork (dbos copied the original's, whose task is long gone).

        dbos' fork takes no ``otel_context``, so the carrier is written just after the fork: a
        worker that dequeues the fork in between starts its span in the original's trace (logged
        here, not an error). Without a current trace the copy stays.
        """
        from dbos_orchestrator.tracing import trace_attributes

        carrier = trace_attributes()
        if not carrier:
            return
        self.client.update_workflow_attributes(forked_workflow_id, carrier, merge=True)
        now = self.get_workflow_statuses([forked_workflow_id]).get(forked_workflow_id)
        if now is not None and DBOSWorkflowStatus.parse(now["status"]) not in QUEUED_STATUSES:
            self.log.info(
                "DBOS fork %s was dequeued (%s) before its trace was set; its spans may be in the original's trace",
                forked_workflow_id,
                now["status"],
            )

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
