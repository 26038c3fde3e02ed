"""What every DBOS operator and sensor shares, written once (amazon's shape: a real base operator
plus an ``__init__``-less mixin).

* :class:`DBOSTaskMixin` (no ``__init__``; sensors use it too): the cached :attr:`hook`, the
  hook's client closed after ``execute``/``execute_complete`` (also when deferring: the
  triggerer has its own), bad input that would be just as bad on the next try (an unknown
  option, a non-JSON argument, an unencodable value) failing the task without retries, and the
  ``execute_complete`` sequence after a deferral (:func:`~dbos_airflow.contract.events.event_outcome`);
* :class:`DBOSBaseOperator`: ``dbos_conn_id`` (templated: :func:`dbos_template_fields`) and
  ``serialization``, ``execute`` calling :meth:`~DBOSBaseOperator.execute_dbos`;
* :class:`~dbos_airflow.operators.waiting.DBOSWaitingOperator` (its own module): the optional
  wait for a workflow the task started (enqueue, fork), in a worker slot or deferred,
  re-attaching by ``retry_mode`` and cancelling on a kill.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowTaskTimeout
from dbos_orchestrator.init_log import quiet_initialization

from dbos_airflow.contract.events import TriggerEventKind, event_outcome
from dbos_airflow.exceptions import DBOSOptionsError, DBOSSerializationError
from dbos_airflow.hooks.connection import check_serialization
from dbos_airflow.hooks.dbos import DBOSHook
from dbos_airflow.links import DBOSConsoleLink, DBOSTraceLink, DBOSWorkflowLink
from dbos_airflow.operators.lineage import DBOSLineageMixin

if TYPE_CHECKING:
    from collections.abc import Collection, Iterator

    from airflow.sdk import BaseOperatorLink, Context

__all__ = ["UI_COLOR", "DBOSBaseOperator", "DBOSTaskMixin", "dbos_template_fields"]

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

    @cached_property
    def hook(self) -> DBOSHook:
        return DBOSHook(self.dbos_conn_id)

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
