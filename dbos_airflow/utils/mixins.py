"""What every DBOS operator and sensor shares, written once.

* ``dbos_conn_id`` (templated: :func:`dbos_template_fields`), the cached :attr:`hook`, and the
  hook's client closed after ``execute``/``execute_complete`` (also when deferring: the
  triggerer has its own);
* bad input that would be just as bad on the next try (an unknown option, a non-JSON
  argument, an unencodable value) fails the task without retries;
* the ``execute_complete`` sequence after a deferral: validate the trigger event against the
  awaited workflow (fail closed), then timeout / not found / wait error, then the subclass's
  :meth:`~DBOSOperatorMixin.complete`.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from airflow.sdk.exceptions import AirflowFailException, AirflowTaskTimeout

from dbos_airflow.client import quiet_initialization
from dbos_airflow.exceptions import (
    DBOSOptionsError,
    DBOSSerializationError,
    DBOSTriggerEventError,
    DBOSWorkflowNotFoundError,
    workflow_not_found_message,
)
from dbos_airflow.hooks.connection import check_serialization
from dbos_airflow.hooks.dbos import DBOSHook
from dbos_airflow.links import DBOSConsoleLink, DBOSWorkflowLink
from dbos_airflow.waiting.events import TriggerEventKind, validate_trigger_event

if TYPE_CHECKING:
    from collections.abc import Collection, Iterator

    from airflow.sdk import BaseOperatorLink, Context

UI_COLOR = "#e8f0fe"


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
