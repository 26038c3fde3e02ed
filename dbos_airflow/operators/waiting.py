"""The operators that start a workflow (enqueue, fork): re-attach on a later try, wait, cancel on a kill.

The rules come from one module each: ``retry_mode`` from :mod:`dbos_orchestrator.retry`, the
kill decision from :mod:`dbos_airflow.contract.kill`, the result of an ended workflow from
:mod:`dbos_airflow.contract.outcome`, deferring from :mod:`dbos_airflow.contract.deferral`.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from airflow.sdk.configuration import conf
from airflow.sdk.exceptions import AirflowException
from dbos_orchestrator.forms import as_bool, as_timeout
from dbos_orchestrator.messages import still_waiting_message
from dbos_orchestrator.retry import check_retry_mode
from dbos_orchestrator.status import DBOSWorkflowStatus

from dbos_airflow.contract.deferral import CHECK_IN_WORKER_SECONDS, check_in_worker, not_before_after_deferral
from dbos_airflow.contract.events import TriggerEventKind
from dbos_airflow.contract.kill import cancel_on_wait_timeout, decide_on_kill
from dbos_airflow.contract.outcome import workflow_result
from dbos_airflow.exceptions import DBOSOptionsError
from dbos_airflow.operators.base import DBOSBaseOperator

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow.sdk import Context

__all__ = ["DBOSWaitingOperator"]


class DBOSWaitingOperator(DBOSBaseOperator):
    """
    Wait (optionally) for the workflow the task started, and fail the task if it fails.

    Subclasses (enqueue, fork) call :meth:`reattach` when a later try finds its workflow, and
    :meth:`wait_for_workflow` with its id at the end of ``execute_dbos``. When it succeeds its
    output is pushed to XCom as key ``result``; ERROR, CANCELLED and
    MAX_RECOVERY_ATTEMPTS_EXCEEDED fail the task with the workflow's own error
    (:mod:`dbos_airflow.contract.outcome`), in a worker slot and deferred alike.

    :param wait_for_completion: wait until the workflow ends (templated).
    :param deferrable: wait in the triggerer (:class:`~dbos_airflow.triggers.dbos.DBOSWorkflowTrigger`).
    :param poll_interval: seconds between status checks when waiting in a worker.
    :param timeout: seconds to wait before failing the task (None: as long as it takes; templated).
    :param cancel_on_kill: cancel the workflow (best effort, idempotent) when a person kills the
        task or its own wait times out; ``False`` leaves it running.
    :param retry_mode: what a later try does when the workflow it started ended in ERROR,
        CANCELLED or MAX_RECOVERY_ATTEMPTS_EXCEEDED: ``resume`` re-runs it keeping the steps that
        completed, ``restart`` re-runs it from the first step, ``fail`` fails without re-running.
        A workflow that succeeded is never re-run.
    :param stream_to_log: a stream key of the workflow (``DBOS.write_stream``): while the task
        waits (in the worker or deferred), each value is logged as it arrives (docs/streams.md).
    """

    accepted_event_kinds: ClassVar[frozenset[TriggerEventKind]] = frozenset({TriggerEventKind.WORKFLOW_ENDED})

    def __init__(
        self,
        *,
        wait_for_completion: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 1.0,
        timeout: float | None = None,
        cancel_on_kill: bool = True,
        retry_mode: str = "resume",
        stream_to_log: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.stream_to_log = stream_to_log
        if poll_interval <= 0:
            raise DBOSOptionsError(f"poll_interval={poll_interval!r} must be a positive number of seconds")
        self.retry_mode = check_retry_mode(retry_mode)
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.cancel_on_kill = cancel_on_kill
        self._workflow_id: str | None = None
        self._ti: Any = None  # the running task instance, asked by on_kill who stopped the task

    def reattach(self, status: dict[str, Any], queue_name: str | None) -> None:
        """A later try found the workflow it started: leave it, or run it again if it failed
        (the core's :meth:`DBOSService.reattach <dbos_orchestrator.service.DBOSService.reattach>`)."""
        self.hook.service().reattach(status, self.retry_mode, queue_name=queue_name)

    def _render_wait_settings(self) -> None:
        """``wait_for_completion`` and ``timeout`` may come from templates (a UI form) as text."""
        self.wait_for_completion = as_bool("wait_for_completion", self.wait_for_completion)
        self.timeout = as_timeout("timeout", self.timeout)

    def wait_for_workflow(self, context: Context, workflow_id: str) -> str:
        """Return ``workflow_id`` at once, or once it succeeded; defer or fail as configured."""
        self._workflow_id = workflow_id
        self._ti = context["ti"]
        if not self.wait_for_completion:
            return workflow_id
        with self._stream_logged(workflow_id):
            if self.deferrable:
                status = self._defer_unless_ended(workflow_id)
            else:
                status = self.hook.wait_for_status(workflow_id, timeout=self.timeout, poll_interval=self.poll_interval)
        if DBOSWorkflowStatus.parse(status["status"]).is_active():
            self._give_up(status)
        return self._succeed(context, workflow_id)

    @contextlib.contextmanager
    def _stream_logged(self, workflow_id: str) -> Iterator[None]:
        """Log ``stream_to_log`` beside the wait in the worker (the trigger takes over at a deferral)."""
        if self.stream_to_log is None:
            yield
            return
        from dbos_airflow.operators.streams import stream_logged

        with stream_logged(self.log, self.hook.value_reader, workflow_id, self.stream_to_log) as stream:
            self._stream = stream
            yield

    def _defer_unless_ended(self, workflow_id: str) -> dict[str, Any]:
        """Defer, unless the workflow ends within the in-worker check (:mod:`~dbos_airflow.contract.deferral`).

        Returns (instead of deferring) the workflow's status when it ended, or when the task's own
        ``timeout`` ran out during the check; the caller then finishes the task in the worker.
        """
        from dbos_airflow.triggers.dbos import DBOSWorkflowTrigger

        started = time.time()
        budget = CHECK_IN_WORKER_SECONDS if self.timeout is None else min(CHECK_IN_WORKER_SECONDS, self.timeout)
        seen: dict[str, Any] = {}

        def ended() -> dict[str, Any] | None:
            seen.update(self.hook.require_workflow(workflow_id))
            return seen if DBOSWorkflowStatus.parse(seen["status"]).is_terminal() else None

        if check_in_worker(ended, seconds=budget) is not None:
            self.log.info("DBOS workflow %s is %s: finishing in the worker, no deferral", workflow_id, seen["status"])
            return seen
        if self.timeout is not None and time.time() - started >= self.timeout:
            return seen
        self.defer(
            trigger=DBOSWorkflowTrigger(
                workflow_id=workflow_id,
                dbos_conn_id=self.dbos_conn_id,
                end_time=None if self.timeout is None else started + self.timeout,
                cancel_on_kill=self.cancel_on_kill,
                not_before=not_before_after_deferral(),
                stream_to_log=self.stream_to_log,
                stream_offset=self._stream_offset(),
            ),
            method_name="execute_complete",
            timeout=None,
        )
        raise AssertionError("BaseOperator.defer() returned")  # it raises TaskDeferred

    def _stream_offset(self) -> int:
        """Where the trigger continues logging the stream: what the worker logged during its check."""
        stream = getattr(self, "_stream", None)
        if stream is None:
            return 0
        return int(stream.hand_over(self.hook.value_reader()))  # the values written up to the deferral

    def complete(self, context: Context, event: dict[str, Any]) -> str:
        self._workflow_id = event["workflow_id"]
        return self._succeed(context, event["workflow_id"])

    def on_wait_timeout(self, context: Context, event: dict[str, Any]) -> NoReturn:
        self._render_wait_settings()
        self._give_up(self.hook.require_workflow(event["workflow_id"]))

    def _succeed(self, context: Context, workflow_id: str) -> str:
        result = workflow_result(self.hook.require_workflow(workflow_id), self.hook.value_reader(), log=self.log.info)
        context["ti"].xcom_push(key="result", value=result)
        return workflow_id

    def _give_up(self, status: dict[str, Any]) -> NoReturn:
        if cancel_on_wait_timeout(cancel_on_kill=self.cancel_on_kill):
            self.hook.cancel_workflow(status["workflow_id"])
            self.log.info("Cancelled DBOS workflow %s", status["workflow_id"])
        last_step = self.hook.value_reader().last_step(status["workflow_id"])
        raise AirflowException(still_waiting_message(status, self.timeout, last_step))

    def on_kill(self) -> None:
        """Cancel the workflow if a person stopped the task or its ``execution_timeout`` passed.

        Airflow also calls this when it replaces a try (a restarted scheduler resetting an
        orphaned try, a lost heartbeat, a worker shutting down): then the workflow is left
        running for the next try to re-attach to (:mod:`dbos_airflow.contract.kill` decides).
        """
        if not self._workflow_id:
            return
        cancel, why = decide_on_kill(
            self._ti, cancel_on_kill=self.cancel_on_kill, deferred=False, own_timeout=self._own_timeout
        )
        if why is None:
            return
        if not cancel:
            self.log.info("Task stopped, DBOS workflow %s left running: %s", self._workflow_id, why)
            return
        self.log.info("Task killed (%s): cancelling DBOS workflow %s", why, self._workflow_id)
        self.hook.cancel_workflow(self._workflow_id)
