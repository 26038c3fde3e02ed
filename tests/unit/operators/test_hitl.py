"""The approval operators' own rules (dbos_airflow/operators/hitl.py), without a database: how they are
built on the HITL operators, how a workflow's question fills the request, how an answer becomes the
message and back. Delivery is proven end to end in tests/integration/test_hitl.py."""

from __future__ import annotations

from functools import partial
from typing import Any, TypeVar

import pytest
from airflow.providers.standard.operators.hitl import (
    ApprovalOperator,
    HITLBranchOperator,
    HITLEntryOperator,
    HITLOperator,
)
from airflow.sdk import DAG
from dbos_orchestrator.approvals import Question
from dbos_orchestrator.exceptions import DBOSOptionsError

from dbos_airflow.operators.hitl import (
    DBOSApprovalOperator,
    DBOSHITLBranchOperator,
    DBOSHITLEntryOperator,
    DBOSHITLMixin,
    DBOSHITLOperator,
)

Op = TypeVar("Op", bound=DBOSHITLMixin)


def _build(cls: type[Op], **kwargs: Any) -> Op:
    """The operator in a DAG, for workflow ``wf-1``."""
    with DAG("t_hitl_unit", schedule=None):
        return cls(task_id="t", workflow_id="wf-1", **kwargs)


approval = partial(_build, DBOSApprovalOperator)
choice = partial(_build, DBOSHITLOperator)
branch = partial(_build, DBOSHITLBranchOperator)
entry = partial(_build, DBOSHITLEntryOperator)


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


def test_the_branch_twin_checks_its_mapping_against_the_options_it_gets() -> None:
    op = branch(question_event="q", options_mapping={"Ship": "ship_it", "Hold": "hold_it"})
    assert isinstance(op, HITLBranchOperator) and op.options == []  # the question brings them
    op._apply(Question(subject="Ship or hold?", options=["Ship", "Hold", "Ask"]))
    assert op.options == ["Ship", "Hold", "Ask"]
    with pytest.raises(DBOSOptionsError, match=r"question event 'q' .*not in `options`: \['Hold'\]"):
        branch(question_event="q", options_mapping={"Ship": "a", "Hold": "b"})._apply(Question(options=["Ship"]))
    with pytest.raises(ValueError, match="not in `options`"):  # options of its own: checked at once
        branch(options=["Ship"], options_mapping={"Hold": "b"})


def test_the_entry_twin_asks_for_the_workflows_form_with_the_one_option_ok() -> None:
    op = entry(question_event="q")
    assert isinstance(op, HITLEntryOperator) and (op.options, op.defaults) == (["OK"], ["OK"])
    op._apply(Question(subject="Delivery address?", params={"street": {"type": "string", "default": "Main 1"}}))
    assert op.subject == "Delivery address?" and op.serialized_params["street"]["value"] == "Main 1"
    with pytest.raises(DBOSOptionsError, match="fixed options"):
        entry(question_event="q")._apply(Question(options=["Yes", "No"]))
