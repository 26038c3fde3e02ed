"""Approvals (docs/approvals.md): a person answers a DBOS workflow's question in Airflow's Required
Actions, and the workflow receives the answer with ``DBOS.recv(topic)`` exactly once.

Built on the standard provider's human-in-the-loop operators (subclasses; their request, UI, API,
waiting state and timeout are Airflow's own). What the DBOS side adds, in :class:`DBOSHITLMixin`:

* the question can come from the workflow: ``question_event`` names an event the workflow sets
  (``DBOS.set_event("approval_request", {"subject": ..., "body": ..., "params": ...})``); the task
  waits for it first, in the worker or deferred (``deferrable``, the rules of
  :mod:`~dbos_airflow.contract.deferral`), then asks in Airflow with those fields;
* the answer (chosen options, entered params, who answered and when, or the defaults on a
  timeout) is sent with an idempotency key derived from the task instance (the send operator's
  rule, :func:`~dbos_airflow.operators.dbos.derived_work_id`), through
  :func:`dbos_orchestrator.approvals.deliver_answer`: a retry, a clear or a killed worker finds the
  answer the workflow already has and returns it (no second message, no second question);
* ``cancel_on_reject`` cancels the workflow after sending a rejection;
* one twin per HITL operator: :class:`DBOSHITLOperator`, :class:`DBOSApprovalOperator`,
  :class:`DBOSHITLBranchOperator` (the person picks the branch), :class:`DBOSHITLEntryOperator` (the
  person fills in the workflow's form);
* XCom key :data:`HITL_XCOM_KEY` holds the question and the answer for the DBOS tab.

Airflow 3.3 parks the task in ``awaiting_input`` (no trigger): the answer resumes it in
``execute_complete`` on a fresh copy of the operator, so nothing set in ``execute`` survives; the
question is read again from its event there.
"""

from __future__ import annotations

import math
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from airflow.providers.standard.operators.hitl import (
    ApprovalOperator,
    HITLBranchOperator,
    HITLEntryOperator,
    HITLOperator,
)
from airflow.sdk.configuration import conf
from airflow.sdk.definitions.param import ParamsDict
from airflow.sdk.exceptions import AirflowException
from dbos_orchestrator.approvals import Answer, Question, deliver_answer, is_rejection
from dbos_orchestrator.exceptions import DBOSOptionsError
from dbos_orchestrator.forms import as_text
from dbos_orchestrator.serialization import check_serialization

from dbos_airflow.contract.answers import answer_from_event, event_from_answer, form_param
from dbos_airflow.contract.deferral import check_in_worker
from dbos_airflow.contract.events import TriggerEventKind, poke_event
from dbos_airflow.hooks.dbos import DBOSHook
from dbos_airflow.links import remember_workflow
from dbos_airflow.operators.base import EXTRA_LINKS, UI_COLOR, DBOSTaskMixin
from dbos_airflow.operators.dbos import derived_work_id
from dbos_airflow.triggers.dbos import DBOSEventTrigger

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

    # What the mixin is mixed into. HITLOperator's execute_complete is the one that runs after the
    # answer; DBOSTaskMixin's runs after the question's deferral (execute_question).
    class _Base(HITLOperator, DBOSTaskMixin):  # type: ignore[misc]
        pass

else:
    _Base = object

__all__ = [
    "HITL_XCOM_KEY",
    "DBOSApprovalOperator",
    "DBOSHITLBranchOperator",
    "DBOSHITLEntryOperator",
    "DBOSHITLMixin",
    "DBOSHITLOperator",
]

HITL_XCOM_KEY = "dbos_hitl"


class DBOSHITLMixin(_Base):
    """
    The DBOS side of a human-in-the-loop operator; put it first (``class X(DBOSHITLMixin,
    HITLOperator, DBOSTaskMixin)``).

    :param workflow_id: the workflow that asks and receives the answer (templated).
    :param topic: the topic the workflow receives the answer on (``DBOS.recv(topic)``; templated).
    :param question_event: the event the workflow publishes its question in (templated); None:
        the question is the task's own ``subject``/``body``/``options``/``params``.
    :param question_timeout: seconds to wait for the question event before failing the task
        (None: as long as it takes).
    :param deferrable: wait for the question event in the triggerer instead of a worker slot.
    :param subject: the question's headline (templated); the question event's ``subject`` wins.
    :param dbos_conn_id: the ``dbos`` connection (templated).
    :param serialization: ``portable`` (JSON, default) or ``pickle``, for the answer message.

    The other parameters (``options``, ``body``, ``defaults``, ``multiple``, ``params``,
    ``assigned_users``, ``response_timeout``, ``notifiers``) are the HITL operator's.
    """

    ui_color = UI_COLOR
    operator_extra_links = EXTRA_LINKS
    template_fields: Sequence[str] = (
        *HITLOperator.template_fields,
        "dbos_conn_id",
        "workflow_id",
        "topic",
        "question_event",
    )
    accepted_event_kinds: ClassVar[frozenset[TriggerEventKind]] = frozenset(
        {TriggerEventKind.EVENT_PUBLISHED, TriggerEventKind.ENDED_WITHOUT_EVENT}
    )
    # Options that mean "no": with cancel_on_reject, choosing one cancels the workflow.
    reject_options: ClassVar[tuple[str, ...]] = ()
    # The options are the operator's own (Approve/Reject, OK): a question event may not set them.
    fixed_options: ClassVar[bool] = False
    cancel_on_reject: bool = False

    def __init__(
        self,
        *,
        workflow_id: str,
        topic: str | None = "approval",
        question_event: str | None = None,
        question_timeout: float | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        subject: str | None = None,
        dbos_conn_id: str = DBOSHook.default_conn_name,
        serialization: str = "portable",
        **kwargs: Any,
    ) -> None:
        # validate_options reads it during the HITL __init__ (before BaseOperator can track attributes)
        object.__setattr__(self, "question_event", question_event)
        if subject is None:
            subject = f"A question from DBOS workflow {workflow_id}"
        if not self.fixed_options:
            kwargs.setdefault("options", [])  # the question event may bring them
        super().__init__(subject=subject, **kwargs)
        self.question_event = question_event
        self.workflow_id = workflow_id
        self.topic = topic
        self.question_timeout = question_timeout
        self.deferrable = deferrable
        self.dbos_conn_id = dbos_conn_id
        self.serialization = check_serialization(serialization)

    def validate_options(self) -> None:
        if not self.options and getattr(self, "question_event", None):
            return  # the question event brings them (checked when it is read)
        super().validate_options()

    # -- the question ------------------------------------------------------------------------

    def _apply(self, question: Question) -> None:
        """Fill the HITL request from the workflow's question and check it as the HITL operator does."""
        where = f"question event {self.question_event!r} of DBOS workflow {self.workflow_id!r}"
        if self.fixed_options and (question.options is not None or question.multiple is not None):
            raise DBOSOptionsError(
                f"{where} sets 'options'/'multiple', but {type(self).__name__} has the fixed options {self.options}"
            )
        if question.subject is not None:
            self.subject = question.subject
        if question.body is not None:
            self.body = question.body
        if question.options is not None:
            self.options = question.options
        if question.multiple is not None:
            self.multiple = question.multiple
        if question.defaults is not None:
            self.defaults = question.defaults
        if question.params is not None:
            self.params = ParamsDict({name: form_param(spec) for name, spec in question.params.items()})
        try:
            if not self.options:
                raise ValueError("'options' is empty: neither the task nor the question event gives options")
            self.validate_params()
            self.validate_defaults()
            self.validate_question()
        except ValueError as exc:
            raise DBOSOptionsError(f"{where}: {exc}") from None

    def validate_question(self) -> None:
        """What a subclass checks once the question filled the request (ValueError: it does not fit)."""

    def _read_question(self) -> Question:
        """The question the workflow published (it must be there: the task asked it already)."""
        assert self.question_event
        published, value, _ = poke_event(self.hook, self.workflow_id, self.question_event)
        if not published:
            raise DBOSOptionsError(f"DBOS workflow {self.workflow_id!r} has not published {self.question_event!r}")
        return Question.from_event(value, workflow_id=self.workflow_id, key=self.question_event)

    def _poke_question(self) -> Question | None:
        assert self.question_event
        published, value, status = poke_event(self.hook, self.workflow_id, self.question_event)
        if not published:
            self.log.info(
                "DBOS workflow %s (%s) has not asked yet (%r)", self.workflow_id, status.value, self.question_event
            )
            return None
        return Question.from_event(value, workflow_id=self.workflow_id, key=self.question_event)

    # -- execute: replay a delivered answer, or wait for the question, then ask ---------------

    def execute(self, context: Context) -> Any:
        with self._dbos_call():
            self.workflow_id = as_text(self.workflow_id)
            remember_workflow(context, self.dbos_conn_id, self.workflow_id)
            sent, message = self.hook.value_reader().sent_message(self.workflow_id, self._answer_key(context))
            if sent:
                answer = Answer.from_message(message)
                self.log.info(
                    "DBOS workflow %s already received its answer %s (this task instance sent it): not asking again",
                    self.workflow_id,
                    answer.chosen_options,
                )
                if self.question_event:
                    self._apply(self._read_question())
                return self._complete(context, event_from_answer(answer))
            if not self.question_event:
                return self._ask(context)
            timeout = None if self.question_timeout is None else float(self.question_timeout)
            if not self.deferrable:
                question = check_in_worker(self._poke_question, seconds=math.inf if timeout is None else timeout)
                return self._ask(context, question) if question is not None else self._question_timed_out()
            question = self.defer_unless_known(
                self._poke_question,
                partial(
                    DBOSEventTrigger,
                    workflow_id=self.workflow_id,
                    key=self.question_event,
                    dbos_conn_id=self.dbos_conn_id,
                ),
                timeout=timeout,
                on_timeout=self._question_timed_out,
                method_name="execute_question",
            )
            return self._ask(context, question)

    def execute_question(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Resumed when the question event's trigger fired: ask (DBOSTaskMixin validates the event)."""
        return DBOSTaskMixin.execute_complete(self, context, event)

    def awaited_workflow_id(self, context: Context) -> str:
        return str(as_text(self.workflow_id))

    def complete(self, context: Context, event: dict[str, Any]) -> Any:
        assert self.question_event
        question = Question.from_event(event["value"], workflow_id=self.workflow_id, key=self.question_event)
        return self._ask(context, question)

    def on_wait_timeout(self, context: Context, event: dict[str, Any]) -> NoReturn:
        self._question_timed_out()

    def _question_timed_out(self) -> NoReturn:
        raise AirflowException(
            f"DBOS workflow {self.workflow_id} did not publish its question {self.question_event!r} "
            f"within question_timeout={self.question_timeout}s"
        )

    def _ask(self, context: Context, question: Question | None = None) -> Any:
        if question is not None:
            self._apply(question)
        self.log.info("Asking in Airflow's Required Actions for DBOS workflow %s: %s", self.workflow_id, self.subject)
        return super().execute(context)  # the HITL request; Airflow 3.3 parks the task in awaiting_input

    # -- the answer ---------------------------------------------------------------------------

    def _answer_key(self, context: Context) -> str:
        return derived_work_id(context, "run", None, "idempotency key")

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        if event is None:
            raise AirflowException("the human-in-the-loop answer arrived without an event")
        with self._dbos_call():
            self.workflow_id = as_text(self.workflow_id)
            if self.question_event:
                self._apply(self._read_question())
            return self._complete(context, event)

    def _complete(self, context: Context, event: dict[str, Any]) -> Any:
        if "error" in event:  # a timeout without defaults: the HITL operator fails; nothing is sent
            return super().execute_complete(context, event)
        self.validate_chosen_options(event["chosen_options"])
        self.validate_params_input(event["params_input"] or {})
        key = self._answer_key(context)
        answer = answer_from_event(event)

        def send(message: dict[str, Any]) -> None:
            self.hook.send(self.workflow_id, message, self.topic, key, serialization=self.serialization)

        delivered, ours = deliver_answer(self.hook.value_reader(), self.workflow_id, key, answer, send)
        if ours:
            self.log.info(
                "Sent the answer %s to DBOS workflow %s (topic %s, idempotency key %s)",
                delivered.chosen_options,
                self.workflow_id,
                self.topic,
                key,
            )
        else:
            self.log.info(
                "DBOS workflow %s already had its answer %s: nothing sent", self.workflow_id, delivered.chosen_options
            )
        context["ti"].xcom_push(
            key=HITL_XCOM_KEY,
            value={
                "workflow_id": self.workflow_id,
                "topic": self.topic,
                "idempotency_key": key,
                "question": {
                    "subject": self.subject,
                    "body": self.body,
                    "options": list(self.options),
                    "params": sorted(self.params),
                },
                "answer": delivered.to_message(),
            },
        )
        if self.cancel_on_reject and is_rejection(delivered, self.reject_options):
            self.log.info("Rejected: cancelling DBOS workflow %s (cancel_on_reject)", self.workflow_id)
            self.hook.cancel_workflow(self.workflow_id)
        # The HITL operator's own completion (skip, branch, fail_on_reject, the XCom return value),
        # with the answer the workflow has.
        return super().execute_complete(context, event_from_answer(delivered))


class DBOSHITLOperator(DBOSHITLMixin, HITLOperator, DBOSTaskMixin):
    """
    Ask a person a DBOS workflow's question in Airflow's Required Actions; send the answer to the
    workflow once. Returns (XCom) what :class:`~airflow.providers.standard.operators.hitl.HITLOperator`
    returns.

    ``options`` may be left out when the question event gives them. Parameters: those of
    :class:`DBOSHITLMixin` and of the HITL operator.
    """

    def __init__(self, **kwargs: Any) -> None:  # Airflow's metaclass wraps the class's own __init__
        super().__init__(**kwargs)


class DBOSApprovalOperator(DBOSHITLMixin, ApprovalOperator, DBOSTaskMixin):
    """
    Ask a person to approve or reject (the fixed options ``Approve``/``Reject``) for a DBOS
    workflow; send the answer to the workflow once. On ``Reject`` the approval operator skips the
    downstream tasks (or fails, ``fail_on_reject``).

    :param cancel_on_reject: cancel the workflow after sending it a rejection (default False: the
        workflow receives the ``Reject`` answer and decides).

    The other parameters: those of :class:`DBOSHITLMixin` and of
    :class:`~airflow.providers.standard.operators.hitl.ApprovalOperator`.
    """

    reject_options: ClassVar[tuple[str, ...]] = (ApprovalOperator.REJECT,)
    fixed_options: ClassVar[bool] = True

    def __init__(self, *, cancel_on_reject: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cancel_on_reject = cancel_on_reject


class DBOSHITLBranchOperator(DBOSHITLMixin, HITLBranchOperator, DBOSTaskMixin):
    """
    Let a person choose the branch a DAG takes for a DBOS workflow's question; send the choice to the
    workflow once. The chosen option(s) run the downstream task(s) of the same name, or the ones
    ``options_mapping`` maps them to (Airflow's
    :class:`~airflow.providers.standard.operators.hitl.HITLBranchOperator`); the others are skipped.

    ``options`` may be left out when the question event gives them; ``options_mapping`` is then
    checked against them when the question arrives. Parameters: those of :class:`DBOSHITLMixin` and
    of the HITL branch operator.
    """

    def __init__(self, **kwargs: Any) -> None:  # Airflow's metaclass wraps the class's own __init__
        super().__init__(**kwargs)

    def validate_options_mapping(self) -> None:
        if not self.options and getattr(self, "question_event", None):
            return  # the question event brings the options (checked in validate_question)
        super().validate_options_mapping()

    def validate_question(self) -> None:
        super().validate_options_mapping()


class DBOSHITLEntryOperator(DBOSHITLMixin, HITLEntryOperator, DBOSTaskMixin):
    """
    Ask a person to fill in a DBOS workflow's form (its question event's ``params``) in Required
    Actions; send the entered values (``params_input``) to the workflow once. The one option is
    ``OK`` (Airflow's :class:`~airflow.providers.standard.operators.hitl.HITLEntryOperator`), also
    the default: on a ``response_timeout`` the workflow receives the params' defaults (``timed_out``).

    Parameters: those of :class:`DBOSHITLMixin` and of the HITL entry operator.
    """

    fixed_options: ClassVar[bool] = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
