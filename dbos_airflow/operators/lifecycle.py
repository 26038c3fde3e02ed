"""The lifecycle of a workflow a task starts (enqueue, fork): re-attach on a later try, wait, cancel on a kill.

The rules come from one module each: ``retry_mode`` from :mod:`dbos_orchestrator.retry`, the
kill decision from :mod:`dbos_airflow.contract.kill`, the result of an ended workflow from
:mod:`dbos_orchestrator.outcome` (through the hook's service, which raises Airflow's error types),
deferring from :mod:`dbos_airflow.contract.deferral` (through
:meth:`~dbos_airflow.operators.base.DBOSTaskMixin.defer_unless_known`).
"""

from __future__ import annotations

import contextlib
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from airflow.sdk.configuration import conf
from airflow.sdk.exceptions import AirflowException
from dbos_orchestrator.exceptions import DBOSOptionsError
from dbos_orchestrator.forms import as_bool, as_timeout
from dbos_orchestrator.messages import still_waiting_message
from dbos_orchestrator.retry import check_retry_mode
from dbos_orchestrator.status import DBOSWorkflowStatus

from dbos_airflow.contract.events import TriggerEventKind
from dbos_airflow.contract.kill import cancel_on_wait_timeout, decide_on_kill
from dbos_airflow.operators.base import DBOSBaseOperator
from dbos_airflow.operators.lineage import annotate_outlet_events

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow.sdk import Context

__all__ = ["DBOSLifecycleOperator"]


class DBOSLifecycleOperator(DBOSBaseOperator):
    """
    Base of the operators that start a workflow: re-attach to it on a later try, wait for it
    (optionally), fail the task if it fails, cancel it when a person kills the task.

    Subclasses (enqueue, fork) call :meth:`reattach` when a later try finds its workflow, and
    :meth:`wait_for_workflow` with its id at the end of ``execute_dbos``. When it succeeds its
    output is pushed to XCom as key ``result``; ERROR, CANCELLED and
    MAX_RECOVERY_ATTEMPTS_EXCEEDED fail the task with the workflow's own error
    (:mod:`dbos_orchestrator.outcome`), in a worker slot and deferred alike.

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
        return self._succeed(context, status)

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
        """The workflow's status once it ended in the in-worker check, or when the task's own ``timeout``
        ran out during it; else defer (:meth:`~dbos_airflow.operators.base.DBOSTaskMixin.defer_unless_known`)."""
        from dbos_airflow.triggers.dbos import DBOSWorkflowTrigger

        seen: dict[str, Any] = {}

        def ended() -> dict[str, Any] | None:
            seen.update(self.hook.require_workflow(workflow_id))
            return seen if DBOSWorkflowStatus.parse(seen["status"]).is_terminal() else None

        return self.defer_unless_known(
            ended,
            partial(
                DBOSWorkflowTrigger,
                workflow_id=workflow_id,
                dbos_conn_id=self.dbos_conn_id,
                cancel_on_kill=self.cancel_on_kill,
                stream_to_log=self.stream_to_log,
                stream_offset=self._stream_offset(),
            ),
            timeout=self.timeout,
            on_timeout=lambda: seen,
            known=lambda status: f"DBOS workflow {workflow_id} is {status['status']}",
        )

    def _stream_offset(self) -> int:
        """Where the trigger continues logging the stream: what the worker logged during its check."""
        stream = getattr(self, "_stream", None)
        if stream is None:
            return 0
        return int(stream.hand_over(self.hook.value_reader()))  # the values written up to the deferral

    def complete(self, context: Context, event: dict[str, Any]) -> str:
        self._workflow_id = event["workflow_id"]
        return self._succeed(context, self.hook.require_workflow(event["workflow_id"]))

    def on_wait_timeout(self, context: Context, event: dict[str, Any]) -> NoReturn:
        self._render_wait_settings()
        self._give_up(self.hook.require_workflow(event["workflow_id"]))

    def _succeed(self, context: Context, status: dict[str, Any]) -> str:
        """Push the ended workflow's output (``status`` as the wait returned it, not read again)."""
        result = self.hook.service().result(status["workflow_id"], status=status, log=self.log.info)
        context["ti"].xcom_push(key="result", value=result)
        # the asset events of outlets carry the workflow (docs/observability.md)
        annotate_outlet_events(context, self.outlets, [status["workflow_id"]], status["status"])
        return str(status["workflow_id"])

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
