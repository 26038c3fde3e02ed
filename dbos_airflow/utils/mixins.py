"""What every DBOS operator and sensor shares, written once.

* ``dbos_conn_id`` (templated: :func:`dbos_template_fields`), the cached :attr:`hook`, and the
  hook's client closed after ``execute``/``execute_complete`` (also when deferring: the
  triggerer has its own);
* bad input that would be just as bad on the next try (an unknown option, a non-JSON
  argument, an unencodable value) fails the task without retries;
* the ``execute_complete`` sequence after a deferral: validate the trigger event against the
  awaited workflow (fail closed), then timeout / not found / wait error, then the subclass's
  :meth:`~DBOSOperatorMixin.complete`;
* :class:`DBOSWaitMixin`: the optional wait for a workflow the task started (enqueue, fork),
  in a worker slot or deferred, with one failure mapping.
"""

from __future__ import annotations

import inspect
import time
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from airflow.sdk.configuration import conf
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowTaskTimeout

from dbos_airflow.client import quiet_initialization
from dbos_airflow.exceptions import (
    DBOSOptionsError,
    DBOSSerializationError,
    DBOSTriggerEventError,
    DBOSWorkflowNotFoundError,
)
from dbos_airflow.hooks.connection import check_serialization
from dbos_airflow.hooks.dbos import DBOSHook
from dbos_airflow.links import DBOSConsoleLink, DBOSWorkflowLink
from dbos_airflow.messages import still_waiting_message, workflow_not_found_message
from dbos_airflow.outcome import workflow_result
from dbos_airflow.status import DBOSWorkflowStatus
from dbos_airflow.utils.deferral import CHECK_IN_WORKER_SECONDS, check_in_worker, not_before_after_deferral
from dbos_airflow.utils.templating import as_bool, as_timeout
from dbos_airflow.waiting.events import TriggerEventKind, validate_trigger_event

if TYPE_CHECKING:
    from collections.abc import Collection, Iterator

    from airflow.sdk import BaseOperatorLink, Context

UI_COLOR = "#e8f0fe"
RETRY_MODES = ("resume", "restart", "fail")


def dbos_template_fields(*fields: str) -> tuple[str, ...]:
    """The templated fields of a DBOS task: ``dbos_conn_id`` and ``fields``."""
    return ("dbos_conn_id", *fields)


class DBOSOperatorMixin:
    """
    Base of every DBOS operator and sensor; put it first: ``class X(DBOSOperatorMixin, BaseOperator)``.

    Subclasses implement :meth:`execute_dbos` (instead of ``execute``) and, when they defer,
    :meth:`awaited_workflow_id`, :meth:`complete`, :attr:`accepted_event_kinds` and
    :meth:`on_wait_timeout`.

    :param dbos_conn_id: the Airflow connection of type ``dbos`` (templated).
    :param serialization: how operators that write values (arguments, messages) encode them:
        ``portable`` (DBOS portable JSON, the default) or ``pickle``. Reading is governed by the
        connection's ``allow_pickle``, never by this.
    """

    ui_color = UI_COLOR
    operator_extra_links: Collection[BaseOperatorLink] = (DBOSWorkflowLink(), DBOSConsoleLink())
    accepted_event_kinds: ClassVar[frozenset[TriggerEventKind]] = frozenset()
    _own_timeout = False  # set when execute ended by the task's execution_timeout

    def __init__(
        self, *, dbos_conn_id: str = DBOSHook.default_conn_name, serialization: str = "portable", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.dbos_conn_id = dbos_conn_id
        self.serialization = check_serialization(serialization)

    @cached_property
    def hook(self) -> DBOSHook:
        return DBOSHook(self.dbos_conn_id)

    # -- execute -------------------------------------------------------------------------

    def execute(self, context: Context) -> Any:
        with self._dbos_call():
            return self.execute_dbos(context)

    def execute_dbos(self, context: Context) -> Any:
        raise NotImplementedError

    # -- after a deferral ----------------------------------------------------------------

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        # The try's log already shows dbos' initialization line from before the deferral.
        with self._dbos_call(), quiet_initialization():
            event = validate_trigger_event(event, self.awaited_workflow_id(context))
            kind, workflow_id = event["kind"], event["workflow_id"]
            if kind is TriggerEventKind.TIMEOUT:
                self.on_wait_timeout(event)
            if kind is TriggerEventKind.NOT_FOUND:
                raise DBOSWorkflowNotFoundError(workflow_not_found_message(workflow_id, self.hook.get_client().target))
            if kind is TriggerEventKind.ERROR:
                raise DBOSTriggerEventError(
                    f"Waiting for DBOS workflow failed: {event['message']} (workflow {workflow_id})"
                )
            if kind not in self.accepted_event_kinds:
                raise DBOSTriggerEventError(
                    f"{type(self).__name__} cannot complete on a {kind.value!r} event: {event!r}"
                )
            return self.complete(context, event)

    def awaited_workflow_id(self, context: Context) -> str:
        """The workflow this task deferred on; an event for another one is refused."""
        raise NotImplementedError

    def complete(self, context: Context, event: dict[str, Any]) -> Any:
        """The task's result for a validated event of one of :attr:`accepted_event_kinds`."""
        raise NotImplementedError

    def on_wait_timeout(self, event: dict[str, Any]) -> NoReturn:
        """Fail the task because the trigger's deadline passed."""
        raise NotImplementedError

    # -- shared plumbing -----------------------------------------------------------------

    @contextmanager
    def _dbos_call(self) -> Iterator[None]:
        """Close the hook's client afterwards; bad input fails the task without retries."""
        try:
            yield
        except AirflowTaskTimeout:
            self._own_timeout = True  # on_kill comes next: the task's own execution_timeout
            raise
        except (DBOSOptionsError, DBOSSerializationError) as exc:
            # The same input fails the same way on every try.
            raise AirflowFailException(str(exc)) from exc
        finally:
            self.hook.close()


class DBOSWaitMixin(DBOSOperatorMixin):
    """
    Wait (optionally) for the workflow the task started, and fail the task if it fails.

    Shared by the operators that start a workflow (enqueue, fork): call :meth:`wait_for_workflow`
    with its id at the end of ``execute_dbos``. When it succeeds its output is pushed to XCom as
    key ``result``; ERROR, CANCELLED and MAX_RECOVERY_ATTEMPTS_EXCEEDED fail the task with the
    workflow's own error (:mod:`dbos_airflow.outcome`), in a worker slot and deferred alike.

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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if poll_interval <= 0:
            raise DBOSOptionsError(f"poll_interval={poll_interval!r} must be a positive number of seconds")
        if retry_mode not in RETRY_MODES:
            raise DBOSOptionsError(f"retry_mode={retry_mode!r}; use one of {', '.join(RETRY_MODES)}")
        self.retry_mode = retry_mode
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.cancel_on_kill = cancel_on_kill
        self._workflow_id: str | None = None
        self._ti: Any = None  # the running task instance, asked by on_kill who stopped the task

    def reattach(self, status: dict[str, Any], queue_name: str | None) -> None:
        """A later try found the workflow it started: leave it, or run it again if it failed.

        Follows :attr:`retry_mode`; a success is never re-run.
        """
        workflow_id, state = status["workflow_id"], DBOSWorkflowStatus.parse(status["status"])
        log = self.log  # type: ignore[attr-defined]
        if state.is_active():
            log.info("Re-attached to DBOS workflow %s, which is %s", workflow_id, state.value)
        elif not state.is_failure():
            log.info("DBOS workflow %s already ended %s; not running it again", workflow_id, state.value)
        elif self.retry_mode == "fail":
            workflow_result(status, self.hook.value_reader())  # raises with the workflow's own error
        else:
            log.info("DBOS workflow %s ended %s; retry_mode=%s", workflow_id, state.value, self.retry_mode)
            self.hook.rerun_workflow(workflow_id, from_failed_step=self.retry_mode == "resume", queue_name=queue_name)

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
        if self.deferrable:
            status = self._defer_unless_ended(workflow_id)
        else:
            status = self.hook.wait_for_status(workflow_id, timeout=self.timeout, poll_interval=self.poll_interval)
        if DBOSWorkflowStatus.parse(status["status"]).is_active():
            self._give_up(status)
        return self._succeed(context, workflow_id)

    def _defer_unless_ended(self, workflow_id: str) -> dict[str, Any]:
        """Defer, unless the workflow ends within the in-worker check (:mod:`~dbos_airflow.utils.deferral`).

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
            self.log.info(  # type: ignore[attr-defined]
                "DBOS workflow %s is %s: finishing in the worker, no deferral", workflow_id, seen["status"]
            )
            return seen
        if self.timeout is not None and time.time() - started >= self.timeout:
            return seen
        self.defer(  # type: ignore[attr-defined]
            trigger=DBOSWorkflowTrigger(
                workflow_id=workflow_id,
                dbos_conn_id=self.dbos_conn_id,
                end_time=None if self.timeout is None else started + self.timeout,
                cancel_on_kill=self.cancel_on_kill,
                not_before=not_before_after_deferral(),
            ),
            method_name="execute_complete",
            timeout=None,
        )
        raise AssertionError("BaseOperator.defer() returned")  # it raises TaskDeferred

    def complete(self, context: Context, event: dict[str, Any]) -> str:
        self._workflow_id = event["workflow_id"]
        return self._succeed(context, event["workflow_id"])

    def on_wait_timeout(self, event: dict[str, Any]) -> NoReturn:
        self._render_wait_settings()
        self._give_up(self.hook.require_workflow(event["workflow_id"]))

    def _succeed(self, context: Context, workflow_id: str) -> str:
        result = workflow_result(
            self.hook.require_workflow(workflow_id),
            self.hook.value_reader(),
            log=self.log.info,  # type: ignore[attr-defined]
        )
        context["ti"].xcom_push(key="result", value=result)
        return workflow_id

    def _give_up(self, status: dict[str, Any]) -> NoReturn:
        if self.cancel_on_kill:
            self.hook.cancel_workflow(status["workflow_id"])
            self.log.info("Cancelled DBOS workflow %s", status["workflow_id"])  # type: ignore[attr-defined]
        last_step = self.hook.value_reader().last_step(status["workflow_id"])
        raise AirflowException(still_waiting_message(status, self.timeout, last_step))

    def on_kill(self) -> None:
        """Cancel the workflow if a person stopped the task or its ``execution_timeout`` passed.

        Airflow also calls this when it replaces a try (a restarted scheduler resetting an
        orphaned try, a lost heartbeat, a worker shutting down): then the workflow is left
        running for the next try to re-attach to (see :mod:`dbos_airflow.utils.kills`).
        """
        from dbos_airflow.utils.kills import killed_by_person

        if not (self.cancel_on_kill and self._workflow_id):
            return
        log = self.log  # type: ignore[attr-defined]
        if self._own_timeout:
            cancel, why = True, "its execution_timeout passed"
        else:
            cancel, why = killed_by_person(self._ti, deferred=False)
        if not cancel:
            log.info("Task stopped, DBOS workflow %s left running: %s", self._workflow_id, why)
            return
        log.info("Task killed (%s): cancelling DBOS workflow %s", why, self._workflow_id)
        self.hook.cancel_workflow(self._workflow_id)


def _declare_mapping_params(*mixins: type) -> None:
    """Let ``.partial()``/``.expand()`` accept the mixins' own parameters.

    Airflow validates mapping keyword arguments against the parameter names its operator
    metaclass records on each ``__init__`` of the operator's MRO; a mixin is not made by that
    metaclass, so its names are recorded here the same way.
    """
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    for mixin in mixins:
        init: Any = mixin.__dict__["__init__"]
        params = inspect.signature(init).parameters.values()
        init._BaseOperatorMeta__param_names = {p.name for p in params if p.name != "self" and p.kind not in variadic}


_declare_mapping_params(DBOSOperatorMixin, DBOSWaitMixin)
