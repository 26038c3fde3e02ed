"""A person's answer to a DBOS workflow's question, delivered to the workflow once (docs/approvals.md).

Both front ends use it: Airflow's HITL operators (``dbos_airflow.operators.hitl``) and prefect-dbos'
pause (``prefect_dbos.approvals``). The workflow asks by publishing a question event
(``DBOS.set_event("approval_request", {...})``, :class:`Question`) and receives the answer with
``DBOS.recv(topic)`` (:class:`Answer`, as a JSON object).

Exactly once: the answer is sent with an idempotency key the front end derives from its task
instance or flow run (never from a try), and :func:`deliver_answer` reads, before and after
sending, what DBOS holds under that key. A later try, clear or flow retry finds the answer the
workflow already got and returns it instead of sending another one (or, when two senders race,
DBOS keeps the first and both learn which one it was).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from dbos_orchestrator.exceptions import DBOSOptionsError

if TYPE_CHECKING:
    from collections.abc import Callable

    from dbos_orchestrator.store.values import ValueReader

__all__ = ["QUESTION_FIELDS", "Answer", "Question", "deliver_answer", "is_rejection"]

QUESTION_FIELDS = ("subject", "body", "options", "params", "defaults", "multiple")


def _texts(where: str, name: str, value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise DBOSOptionsError(f"{where}: {name!r} must be a non-empty list of non-empty texts, got {value!r}")
    if len(set(value)) != len(value):
        raise DBOSOptionsError(f"{where}: {name!r} lists an option twice: {value!r}")
    return list(value)


@dataclass(frozen=True)
class Question:
    """What a workflow asks, from its question event; a field it leaves out keeps the task's own.

    The event's value is a JSON object with any of :data:`QUESTION_FIELDS` (or a text: the subject).
    ``params`` maps a field name to its default value, or to a JSON-schema object (``type``,
    ``default``, ``description``, ``enum``, ...) describing the form field.
    """

    subject: str | None = None
    body: str | None = None
    options: list[str] | None = None
    params: dict[str, Any] | None = None
    defaults: list[str] | None = None
    multiple: bool | None = None

    @classmethod
    def from_event(cls, value: Any, *, workflow_id: str, key: str) -> Question:
        """The question in event ``key``'s value; :class:`DBOSOptionsError` naming the bad field."""
        where = f"question event {key!r} of DBOS workflow {workflow_id!r}"
        if isinstance(value, str):
            value = {"subject": value}
        if not isinstance(value, dict):
            raise DBOSOptionsError(
                f"{where} must be a JSON object with any of {list(QUESTION_FIELDS)} (or a text: the subject), "
                f"got {type(value).__name__}"
            )
        unknown = sorted(set(value) - set(QUESTION_FIELDS))
        if unknown:
            raise DBOSOptionsError(f"{where} has unknown field(s) {unknown}; known: {list(QUESTION_FIELDS)}")
        subject, body = value.get("subject"), value.get("body")
        if subject is not None and not (isinstance(subject, str) and subject.strip()):
            raise DBOSOptionsError(f"{where}: 'subject' must be a non-empty text, got {subject!r}")
        if body is not None and not isinstance(body, str):
            raise DBOSOptionsError(f"{where}: 'body' must be a text, got {type(body).__name__}")
        params = value.get("params")
        if params is not None and (not isinstance(params, dict) or not all(isinstance(k, str) for k in params)):
            raise DBOSOptionsError(f"{where}: 'params' must be an object of field name -> default or schema")
        multiple = value.get("multiple")
        if multiple is not None and not isinstance(multiple, bool):
            raise DBOSOptionsError(f"{where}: 'multiple' must be true or false, got {multiple!r}")
        options, defaults = value.get("options"), value.get("defaults")
        return cls(
            subject=subject,
            body=body,
            options=None if options is None else _texts(where, "options", options),
            params=params,
            defaults=None if defaults is None else _texts(where, "defaults", defaults),
            multiple=multiple,
        )

    def to_json(self) -> dict[str, Any]:
        """The fields the workflow set."""
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Answer:
    """The message the workflow receives (``DBOS.recv(topic)``), as a JSON object.

    :param chosen_options: the option(s) the person chose (or the defaults, on a timeout).
    :param params_input: the form fields the person entered.
    :param responded_by: who answered (``{"id", "name"}``; None when the defaults were taken).
    :param responded_at: when (ISO 8601), or None.
    :param timed_out: True when nobody answered in time and the defaults were taken.
    """

    chosen_options: list[str]
    params_input: dict[str, Any] = field(default_factory=dict)
    responded_by: dict[str, Any] | None = None
    responded_at: str | None = None
    timed_out: bool = False

    def to_message(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_message(cls, message: Any) -> Answer:
        """An answer sent earlier (read back from DBOS); :class:`DBOSOptionsError` if it is not one."""
        if not isinstance(message, dict) or not isinstance(message.get("chosen_options"), list):
            raise DBOSOptionsError(
                f"the message stored under this answer's idempotency key is not an answer: {message!r}"
            )
        return cls(
            chosen_options=list(message["chosen_options"]),
            params_input=dict(message.get("params_input") or {}),
            responded_by=message.get("responded_by"),
            responded_at=message.get("responded_at"),
            timed_out=bool(message.get("timed_out", False)),
        )


def is_rejection(answer: Answer, reject_options: tuple[str, ...]) -> bool:
    """Whether the person chose one of ``reject_options``."""
    return any(option in reject_options for option in answer.chosen_options)


def deliver_answer(
    reader: ValueReader,
    workflow_id: str,
    idempotency_key: str,
    answer: Answer,
    send: Callable[[dict[str, Any]], None],
) -> tuple[Answer, bool]:
    """Send ``answer`` to ``workflow_id`` unless an answer was sent under ``idempotency_key`` already.

    Returns ``(the answer the workflow has, whether it is this one)``: an answer found before
    sending is returned with False and nothing is sent; after sending, what DBOS kept under the
    key is read back (a concurrent sender may have won; DBOS drops the second message).

    :param send: sends a message with the key (the front end's ``client.send``).
    """
    sent, stored = reader.sent_message(workflow_id, idempotency_key)
    if sent:
        return Answer.from_message(stored), False
    message = answer.to_message()
    send(message)
    sent, stored = reader.sent_message(workflow_id, idempotency_key)
    if not sent:  # pragma: no cover - DBOS raised if the send failed
        raise DBOSOptionsError(f"the answer to DBOS workflow {workflow_id!r} was sent but is not stored")
    return Answer.from_message(stored), stored == message
