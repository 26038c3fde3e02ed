"""Approvals in Prefect (docs/approvals.md): the DBOS workflow asks, the flow run pauses for a person's
input, the answer reaches the workflow (``DBOS.recv(topic)``) once.

Call :func:`await_approval` (or :func:`aawait_approval`) in a flow (or a task of it):

1. the answer key is derived from the flow run and the call (:func:`prefect_dbos.ids.derived_key`,
   as the send task's); an answer already sent under it (a flow retry after the answer) is returned
   at once: no pause, nothing sent again;
2. it waits for the workflow's question event (the shared waiter);
3. it pauses the flow run with ``pause_flow_run(wait_for_input=DBOSApprovalInput)``: the run shows
   the question and a form in Prefect's UI ("Resume"), or is resumed through the API with
   ``run_input``. ``pause_flow_run`` keeps the process and its infrastructure while it waits;
   ``suspend_flow_run`` would free them but needs a deployment and persisted results, and cannot be
   called from a task, so it is not used (docs/approvals.md, "Prefect": long waits);
4. the answer is sent with :func:`dbos_orchestrator.approvals.deliver_answer`; ``cancel_on_reject``
   cancels the workflow after a rejection; a timeout sends ``timeout_answer`` (marked
   ``timed_out``) or fails with Prefect's ``FlowPauseTimeout``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from dbos_orchestrator.approvals import Answer, Question, deliver_answer, is_rejection
from dbos_orchestrator.exceptions import DBOSOptionsError
from prefect.input import RunInput

from prefect_dbos import operations
from prefect_dbos.ids import current_run, derived_key

if TYPE_CHECKING:
    from prefect_dbos.database import DBOSSystemDatabase

__all__ = ["APPROVE", "REJECT", "DBOSApprovalInput", "aawait_approval", "await_approval"]

APPROVE, REJECT = "Approve", "Reject"


class DBOSApprovalInput(RunInput):
    """The form a paused flow run shows: approve or reject, and a comment."""

    decision: Literal["Approve", "Reject"]
    comment: str = ""


def _description(question: Question, workflow_id: str) -> str:
    title = question.subject or f"A question from DBOS workflow {workflow_id}"
    return f"**{title}**\n\n{question.body or ''}".strip()


async def aawait_approval(
    database: DBOSSystemDatabase,
    workflow_id: str,
    *,
    question_event: str = "approval_request",
    topic: str | None = "approval",
    question_timeout: float | None = None,
    timeout: int = 3600,
    poll_interval: int = 10,
    timeout_answer: Literal["Approve", "Reject"] | None = None,
    cancel_on_reject: bool = False,
    key: str | None = None,
) -> dict[str, Any]:
    """Pause the flow run for a person's answer to the workflow's question; send it to the workflow once.

    Returns the answer the workflow received (``chosen_options``, ``params_input`` with the
    comment, ``responded_by`` (None: Prefect records no responder), ``responded_at``, ``timed_out``).

    :param database: the application's system database.
    :param workflow_id: the workflow that asks and receives.
    :param question_event: the event the workflow publishes its question in.
    :param topic: the topic the workflow receives the answer on.
    :param question_timeout: seconds to wait for the question (None: as long as it takes).
    :param timeout: seconds the flow run stays paused for the answer (``pause_flow_run``'s).
    :param poll_interval: seconds between the paused run's checks for the answer.
    :param timeout_answer: what to send when nobody answered in time (None: fail with
        ``FlowPauseTimeout`` and send nothing).
    :param cancel_on_reject: cancel the workflow after sending it a rejection.
    :param key: the call's own key within the flow run, instead of the derived one.
    """
    from prefect.exceptions import FlowPauseTimeout
    from prefect.flow_runs import apause_flow_run
    from prefect.logging import get_run_logger

    logger = get_run_logger()
    if timeout_answer not in (None, APPROVE, REJECT):
        raise DBOSOptionsError(f"timeout_answer must be {APPROVE!r}, {REJECT!r} or None, got {timeout_answer!r}")
    answer_key = derived_key("approval", workflow_id, topic, key=key, run=await asyncio.to_thread(current_run))
    reader = database.service().value_reader()
    sent, message = await asyncio.to_thread(reader.sent_message, workflow_id, answer_key)
    if sent:
        delivered = Answer.from_message(message)
        logger.info(
            "DBOS workflow %s already received its answer %s: not asking again", workflow_id, delivered.chosen_options
        )
        return delivered.to_message()
    value = await operations.event(database, workflow_id, question_event, logger=logger, timeout=question_timeout)
    question = Question.from_event(value, workflow_id=workflow_id, key=question_event)
    if question.options is not None and set(question.options) != {APPROVE, REJECT}:
        raise DBOSOptionsError(
            f"question event {question_event!r} of DBOS workflow {workflow_id!r} sets 'options' {question.options}; "
            f"the Prefect approval has the fixed options {[APPROVE, REJECT]}"
        )
    form = DBOSApprovalInput.with_initial_data(description=_description(question, workflow_id))
    logger.info("Pausing for an answer to DBOS workflow %s: %s", workflow_id, question.subject)
    try:
        response = await apause_flow_run(wait_for_input=form, timeout=timeout, poll_interval=poll_interval)
        answer = Answer(
            chosen_options=[response.decision],
            params_input={"comment": response.comment},
            responded_at=datetime.now(UTC).isoformat(),
        )
    except FlowPauseTimeout:
        if timeout_answer is None:
            raise
        answer = Answer(chosen_options=[timeout_answer], timed_out=True)
    client = database.get_client()

    def send(message: dict[str, Any]) -> None:
        client.send(workflow_id, message, topic, answer_key, serialization_type=database.serialization_type)

    delivered, ours = await asyncio.to_thread(deliver_answer, reader, workflow_id, answer_key, answer, send)
    logger.info(
        "%s the answer %s to DBOS workflow %s (topic %s, idempotency key %s)",
        "Sent" if ours else "Not sent (already delivered):",
        delivered.chosen_options,
        workflow_id,
        topic,
        answer_key,
    )
    if cancel_on_reject and is_rejection(delivered, (REJECT,)):
        logger.info("Rejected: cancelling DBOS workflow %s (cancel_on_reject)", workflow_id)
        await asyncio.to_thread(client.cancel_workflow, workflow_id)
    return delivered.to_message()


def await_approval(database: DBOSSystemDatabase, workflow_id: str, **kwargs: Any) -> dict[str, Any]:
    """The sync twin of :func:`aawait_approval` (same parameters)."""
    from prefect.utilities.asyncutils import run_coro_as_sync

    return run_coro_as_sync(aawait_approval(database, workflow_id, **kwargs))
