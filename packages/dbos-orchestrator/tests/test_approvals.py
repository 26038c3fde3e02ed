"""The question a workflow publishes and the answer it receives (dbos_orchestrator.approvals): pure
rules, run in both venvs. Delivery once is proven end to end (tests/integration/test_hitl.py,
packages/prefect-dbos/tests/test_approvals.py)."""

from __future__ import annotations

import pytest
from dbos_orchestrator.approvals import Answer, Question, is_rejection
from dbos_orchestrator.exceptions import DBOSOptionsError


def ask(value: object) -> Question:
    return Question.from_event(value, workflow_id="wf-1", key="approval_request")


def test_a_question_takes_the_fields_the_workflow_set() -> None:
    q = ask(
        {
            "subject": "Ship?",
            "body": "**now**",
            "options": ["Yes", "No"],
            "defaults": "No",
            "multiple": False,
            "params": {"note": {"type": "string"}, "qty": 3},
        }
    )
    assert q.options == ["Yes", "No"] and q.defaults == ["No"] and q.params == {"note": {"type": "string"}, "qty": 3}
    assert ask("Ship order 7?") == Question(subject="Ship order 7?")
    assert ask({}).to_json() == {}


@pytest.mark.parametrize(
    ("value", "names"),
    [
        (["a"], "JSON object"),
        ({"subjekt": "x"}, "unknown field(s) ['subjekt']"),
        ({"subject": ""}, "'subject'"),
        ({"body": 3}, "'body'"),
        ({"options": []}, "'options'"),
        ({"options": ["a", "a"]}, "lists an option twice"),
        ({"options": ["a", 2]}, "'options'"),
        ({"defaults": [""]}, "'defaults'"),
        ({"params": ["x"]}, "'params'"),
        ({"multiple": "yes"}, "'multiple'"),
    ],
)
def test_a_bad_question_is_refused_naming_the_field(value: object, names: str) -> None:
    with pytest.raises(DBOSOptionsError, match="question event 'approval_request' of DBOS workflow 'wf-1'") as err:
        ask(value)
    assert names in str(err.value)


def test_an_answer_is_the_message_and_back() -> None:
    a = Answer(["Reject"], {"note": "no"}, {"id": "u1", "name": "Ann"}, "2026-01-01T00:00:00+00:00")
    assert Answer.from_message(a.to_message()) == a
    assert a.to_message()["timed_out"] is False
    assert is_rejection(a, ("Reject",)) and not is_rejection(a, ())
    with pytest.raises(DBOSOptionsError, match="not an answer"):
        Answer.from_message({"approved": True})
