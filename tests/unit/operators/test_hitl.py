"""The approval operators' own rules (dbos_airflow/operators/hitl.py), without a database: how they are
built on the HITL operators, how a workflow's question fills the request, how an answer becomes the
message and back. Delivery is proven end to end in tests/integration/test_hitl.py."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from airflow.providers.standard.operators.hitl import ApprovalOperator, HITLOperator
from airflow.sdk import DAG
from dbos_orchestrator.approvals import Answer, Question
from dbos_orchestrator.exceptions import DBOSOptionsError

from dbos_airflow.operators.hitl import DBOSApprovalOperator, DBOSHITLOperator, _answer, _hitl_event


def approval(**kwargs: object) -> DBOSApprovalOperator:
    with DAG("t_hitl_unit", schedule=None):
        return DBOSApprovalOperator(task_id="approve", workflow_id="wf-1", **kwargs)  # type: ignore[arg-type]


def choice(**kwargs: object) -> DBOSHITLOperator:
    with DAG("t_hitl_unit", schedule=None):
        return DBOSHITLOperator(task_id="choose", workflow_id="wf-1", **kwargs)  # type: ignore[arg-type]


def test_they_are_the_hitl_operators_with_dbos_fields_templated() -> None:
    op = approval(question_event="approval_request", cancel_on_reject=True)
    assert isinstance(op, ApprovalOperator) and isinstance(choice(options=["a"]), HITLOperator)
    assert {"subject", "body", "workflow_id", "topic", "question_event", "dbos_conn_id"} <= set(op.template_fields)
    assert op.options == ["Approve", "Reject"] and op.cancel_on_reject and op.topic == "approval"
    assert op.subject == "A question from DBOS workflow wf-1"


def test_options_come_from_the_task_or_the_question_event() -> None:
    assert choice(question_event="q").options == []
    with pytest.raises(ValueError, match="options"):
        choice()
    with pytest.raises(ValueError, match="not allowed"):
        approval(options=["x"])


def test_the_question_fills_the_request() -> None:
    op = choice(question_event="q", subject="mine")
    op._apply(
        Question(
            subject="Which carrier?",
            body="*fast*",
            options=["DHL", "UPS"],
            multiple=True,
            defaults=["DHL"],
            params={"note": {"type": "string", "default": "", "description": "why"}, "qty": 2},
        )
    )
    assert (op.subject, op.body, op.options, op.multiple, op.defaults) == (
        "Which carrier?",
        "*fast*",
        ["DHL", "UPS"],
        True,
        ["DHL"],
    )
    assert op.serialized_params["note"]["schema"] == {"type": "string"}
    assert op.serialized_params["note"]["description"] == "why" and op.serialized_params["qty"]["value"] == 2
    kept = choice(question_event="q", subject="mine", options=["a", "b"])
    kept._apply(Question(body="only the body"))
    assert (kept.subject, kept.options) == ("mine", ["a", "b"])


@pytest.mark.parametrize(
    ("make", "question", "names"),
    [
        (lambda: approval(question_event="q"), Question(options=["Yes"]), "fixed options"),
        (lambda: choice(question_event="q"), Question(subject="no options"), "'options' is empty"),
        (lambda: choice(question_event="q"), Question(options=["a"], defaults=["b"]), "should be a subset"),
    ],
)
def test_a_question_that_does_not_fit_names_the_event(make: object, question: Question, names: str) -> None:
    with pytest.raises(DBOSOptionsError, match="question event 'q' of DBOS workflow 'wf-1'") as err:
        make()._apply(question)  # type: ignore[operator]
    assert names in str(err.value)


def test_an_answer_is_the_hitl_event_and_back() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    event = {
        "chosen_options": ["Approve"],
        "params_input": {"note": "ok"},
        "responded_at": at,
        "responded_by_user": {"id": "7", "name": "Ann"},
        "timedout": False,
    }
    answer = _answer(event)
    assert answer == Answer(["Approve"], {"note": "ok"}, {"id": "7", "name": "Ann"}, at.isoformat(), False)
    assert _hitl_event(answer) == event
    assert _answer({**event, "responded_by_user": None, "timedout": True}).timed_out
