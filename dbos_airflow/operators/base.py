"""What every DBOS operator and sensor shares, written once (amazon's shape: a real base operator
plus an ``__init__``-less mixin).

* :class:`DBOSTaskMixin` (no ``__init__``; sensors use it too): the cached :attr:`hook`, the
  hook's client closed after ``execute``/``execute_complete`` (also when deferring: the
  triggerer has its own), bad input that would be just as bad on the next try (an unknown
  option, a non-JSON argument, an unencodable value) failing the task without retries, "check in
  the worker, then defer" (:meth:`~DBOSTaskMixin.defer_unless_known`, every waiting operator and
  sensor) and the ``execute_complete`` sequence after a deferral
  (:func:`~dbos_airflow.contract.events.event_outcome`);
* :class:`DBOSBaseOperator`: ``dbos_conn_id`` (templated: :func:`dbos_template_fields`) and
  ``serialization``, ``execute`` calling :meth:`~DBOSBaseOperator.execute_dbos`;
* :class:`~dbos_airflow.operators.lifecycle.DBOSLifecycleOperator` (its own module): the optional
  wait for a workflow the task started (enqueue, fork), in a worker slot or deferred,
  re-attaching by ``retry_mode`` and cancelling on a kill.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, TypeVar

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowTaskTimeout
from dbos_orchestrator.exceptions import DBOSOptionsError, DBOSSerializationError
from dbos_orchestrator.init_log import quiet_initialization
from dbos_orchestrator.serialization import check_serialization

from dbos_airflow.contract.deferral import CHECK_IN_WORKER_SECONDS, check_in_worker, not_before_after_deferral
from dbos_airflow.contract.events import TriggerEventKind, event_outcome
from dbos_airflow.hooks.dbos import DBOSHook
from dbos_airflow.links import DBOSConsoleLink, DBOSTraceLink, DBOSWorkflowLink
from dbos_airflow.operators.lineage import DBOSLineageMixin

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterator

    from airflow.sdk import BaseOperatorLink, Context
    from airflow.triggers.base import BaseTrigger

__all__ = ["UI_COLOR", "DBOSBaseOperator", "DBOSTaskMixin", "dbos_template_fields"]

T = TypeVar("T")

UI_COLOR = "#e8f0fe"
EXTRA_LINKS: Collection[BaseOperatorLink] = (DBOSWorkflowLink(), DBOSConsoleLink(), DBOSTraceLink())


def dbos_template_fields(*fields: str) -> tuple[str, ...]:
    """The templated fields of a DBOS task: ``dbos_conn_id`` and ``fields``."""
    return ("dbos_conn_id", *fields)


class DBOSTaskMixin(DBOSLineageMixin):
    """
    The DBOS side of an operator or sensor; put it after the Airflow base class
    (``class X(BaseSensorOperator, DBOSTaskMixin)``). It has no ``__init__``: the class it is
    mixed into sets ``dbos_conn_id``.

    Tasks that defer implement :meth:`awaited_workflow_id`, :meth:`complete`,
    :attr:`accepted_event_kinds` and :meth:`on_wait_timeout`.
    """

    dbos_conn_id: str
    expected_value: Any = None  # the event value an event sensor waits for
    accepted_event_kinds: ClassVar[frozenset[TriggerEventKind]] = frozenset()
    _own_timeout = False  # set when execute ended by the task's execution_timeout
    if TYPE_CHECKING:  # the Airflow base class's (BaseOperator / BaseSensorOperator)

        @property
        def log(self) -> Any: ...

        def defer(self, *, trigger: BaseTrigger, method_name: str, timeout: Any = None) -> NoReturn: ...

    @cached_property
    def hook(self) -> DBOSHook:
        return DBOSHook(self.dbos_conn_id)

    # -- check in the worker, then defer ---------------------------------------------------

    def defer_unless_known(
        self,
        check: Callable[[], T | None],
        make_trigger: Callable[..., BaseTrigger],
        *,
        timeout: float | None,
        on_timeout: Callable[[], T],
        known: Callable[[T], str] | None = None,
        keep_checking: Callable[[], bool] | None = None,
        method_name: str = "execute_complete",
    ) -> T:
        """Never defer when the outcome is known (:mod:`dbos_airflow.contract.deferral`; docs/architecture.md,
        "Deferring"): the one place every waiting operator and sensor decides between the worker and a trigger.

        ``check`` runs in the worker for up to ``CHECK_IN_WORKER_SECONDS`` (never past ``timeout``); its
        first answer (not None) is returned and the task finishes in the worker, as it would after a
        deferral. While ``keep_checking()`` says the answer comes before a deferral's event could (a batch
        ending at its rate, rule 3), it is checked once a second more. When the task's own ``timeout`` ran
        out in the worker, ``on_timeout()`` is returned (or raises). Otherwise the task defers to
        ``make_trigger(end_time=..., not_before=...)`` (the wall-clock deadline; the event held until
        ``not_before``, rule 2) and resumes in :meth:`execute_complete`.

        :param check: the answer, or None while there is none yet (it may raise: a failure, a missing id).
        :param make_trigger: the trigger, given ``end_time`` and ``not_before``.
        :param timeout: the task's own wait timeout in seconds (None: no deadline).
        :param on_timeout: what the task does when ``timeout`` ran out before deferring.
        :param known: given, names the answer for the log line "...: finishing in the worker, no deferral".
        :param keep_checking: given, whether to go on checking in the worker once the first checks found nothing.
        :param method_name: the method the task resumes in after the trigger fired.
        """
        started = time.time()
        budget = CHECK_IN_WORKER_SECONDS if timeout is None else min(CHECK_IN_WORKER_SECONDS, timeout)

        def timed_out() -> bool:
            return timeout is not None and time.time() - started >= timeout

        answer = check_in_worker(check, seconds=budget)
        while answer is None and keep_checking is not None and not timed_out() and keep_checking():
            time.sleep(1.0)
            answer = check()
        if answer is not None:
            if known is not None:
                self.log.info("%s: finishing in the worker, no deferral", known(answer))
            return answer
        if timed_out():
            return on_timeout()
        self.defer(
            trigger=make_trigger(
                end_time=None if timeout is None else started + timeout, not_before=not_before_after_deferral()
            ),
            method_name=method_name,
            timeout=None,
        )
        raise AssertionError("BaseOperator.defer() returned")  # it raises TaskDeferred

    # -- after a deferral ----------------------------------------------------------------

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        # The try's log already shows dbos' initialization line from before the deferral.
        with self._dbos_call(), quiet_initialization():
            event = event_outcome(
                event,
                expected_workflow_id=self.awaited_workflow_id(context),
                accepted=self.accepted_event_kinds,
                task=type(self).__name__,
                target=lambda: self.hook.get_client().target,
                expected_value=self.expected_value,
            )
            if event["kind"] is TriggerEventKind.TIMEOUT:
                self.on_wait_timeout(context, event)
            return self.complete(context, event)

    def awaited_workflow_id(self, context: Context) -> str:
        """The workflow this task deferred on; an event for another one is refused."""
        raise NotImplementedError

    def complete(self, context: Context, event: dict[str, Any]) -> Any:
        """The task's result for a validated event of one of :attr:`accepted_event_kinds`."""
        raise NotImplementedError

    def on_wait_timeout(self, context: Context, event: dict[str, Any]) -> NoReturn:
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


class DBOSBaseOperator(BaseOperator, DBOSTaskMixin):
    """
    Base of every DBOS operator: subclasses implement :meth:`execute_dbos` (instead of ``execute``).

    :param dbos_conn_id: the Airflow connection of type ``dbos`` (templated).
    :param serialization: how operators that write values (arguments, messages) encode them:
        ``portable`` (DBOS portable JSON, the default) or ``pickle``. Reading is governed by the
        connection's ``allow_pickle``, never by this.
    """

    ui_color = UI_COLOR
    operator_extra_links = EXTRA_LINKS

    def __init__(
        self, *, dbos_conn_id: str = DBOSHook.default_conn_name, serialization: str = "portable", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.dbos_conn_id = dbos_conn_id
        self.serialization = check_serialization(serialization)

    def execute(self, context: Context) -> Any:
        with self._dbos_call():
            return self.execute_dbos(context)

    def execute_dbos(self, context: Context) -> Any:
        raise NotImplementedError
