"""The approval contract (dbos_airflow/contract/answers.py): a HITL response event is the answer a
workflow receives, and that answer replays as the same event; a question's params are form fields."""

from __future__ import annotations

from datetime import datetime, timezone

from dbos_orchestrator.approvals import Answer

from dbos_airflow.contract.answers import answer_from_event, event_from_answer, form_param


def test_an_answer_is_the_hitl_event_and_back() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    event = {
        "chosen_options": ["Approve"],
        "params_input": {"note": "ok"},
        "responded_at": at,
        "responded_by_user": {"id": "7", "name": "Ann"},
        "timedout": False,
    }
    answer = answer_from_event(event)
    assert answer == Answer(["Approve"], {"note": "ok"}, {"id": "7", "name": "Ann"}, at.isoformat(), False)
    assert event_from_answer(answer) == event
    assert answer_from_event({**event, "responded_by_user": None, "timedout": True}).timed_out


def test_a_question_param_is_a_schema_or_a_default() -> None:
    field = form_param({"type": "integer", "default": 2, "description": "how many", "minimum": 1})
    assert field.serialize()["value"] == 2 and field.serialize()["schema"] == {"type": "integer", "minimum": 1}
    assert field.serialize()["description"] == "how many" and form_param("x").serialize()["value"] == "x"
