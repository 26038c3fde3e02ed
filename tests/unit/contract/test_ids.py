"""Work ids (dbos_airflow/contract/ids.py): derived from the task instance, never the try; for a DBOS completion,
from the completion (docs/events.md, "Exactly-once work downstream").

Pure logic, with a faked context: ``triggering_asset_events`` as Airflow 3.3 hands it to a task
(asset -> events whose ``extra["payload"]`` is the completion trigger's payload).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from dbos_orchestrator.exceptions import DBOSOptionsError

from dbos_airflow.contract.ids import (
    MAX_ID_BYTES,
    bulk_item_id,
    bulk_item_prefix,
    completion_id,
    completion_key,
    derived_id,
    triggering_completions,
    work_id,
)
from dbos_airflow.operators.dbos import DBOSEnqueueOperator, DBOSSendOperator


def test_derived_ids_have_no_try_number() -> None:
    ti = SimpleNamespace(dag_id="d", run_id="manual__1", task_id="t", map_index=-1, try_number=3)
    assert derived_id({"ti": ti}) == "d:manual__1:t:-1"
    assert bulk_item_id(derived_id({"ti": ti}), 7) == "d:manual__1:t:-1:7"
    assert bulk_item_prefix(derived_id({"ti": ti})) == "d:manual__1:t:-1:"  # what the operator's items' ids share


def event(key: str, **payload: Any) -> SimpleNamespace:
    workflow_id = key.split("@")[0]
    return SimpleNamespace(
        extra={"from_trigger": True, "payload": {"workflow_id": workflow_id, "completion_key": key, **payload}}
    )


def context(*events_by_asset: list[Any], run_id: str = "asset_triggered__1", map_index: int = -1) -> dict[str, Any]:
    ti = SimpleNamespace(dag_id="incident", run_id=run_id, task_id="open", map_index=map_index, try_number=1)
    return {"ti": ti, "triggering_asset_events": {f"asset{i}": evs for i, evs in enumerate(events_by_asset)}}


def test_completion_key_is_the_workflow_and_its_completed_at() -> None:
    assert completion_key("wf-1", 1733150000123) == "wf-1@1733150000123"


def test_the_id_has_no_run_id_and_no_map_index() -> None:
    """A duplicate of a completion in another run, at another index, gets the same id."""
    first = context([event("a@1"), event("b@2")], run_id="r1", map_index=1)
    again = context([event("c@3"), event("b@2")], run_id="r2", map_index=0)
    assert work_id(first, id_from="completion", key="b@2") == work_id(again, id_from="completion", key="b@2")
    assert work_id(first, id_from="completion", key="b@2") == "incident:open:b@2"
    assert work_id(context([event("b@2")]), id_from="completion") == "incident:open:b@2"
    # id_from="run" stays the task instance's id
    assert work_id(first, id_from="run") == derived_id(first) == "incident:r1:open:1"


def test_a_run_s_completions_count_once_in_order() -> None:
    dup = event("a@1", name="wf")
    ctx = context([dup, event("b@2")], [event("a@1")], [SimpleNamespace(extra={"from_rest_api": True})])
    assert [p["completion_key"] for p in triggering_completions(ctx["triggering_asset_events"])] == ["a@1", "b@2"]
    assert triggering_completions(None) == [] and triggering_completions({}) == []
    # one distinct completion (delivered twice into this run): no completion_key needed
    assert work_id(context([dup, event("a@1")]), id_from="completion") == "incident:open:a@1"


def test_errors_name_what_is_wrong() -> None:
    by_hand: dict[str, Any] = context()
    with pytest.raises(DBOSOptionsError, match="'incident' was not triggered by DBOS completion events.*id_from='run'"):
        work_id(by_hand, id_from="completion")
    other = context([SimpleNamespace(extra={})])
    with pytest.raises(DBOSOptionsError, match="not triggered by DBOS completion events"):
        work_id(other, id_from="completion", what="idempotency key")
    several = context([event("a@1"), event("b@2")])
    with pytest.raises(DBOSOptionsError, match="triggered by 2 DBOS completions \\(a@1, b@2\\).*completion_key"):
        work_id(several, id_from="completion")
    with pytest.raises(DBOSOptionsError, match="completion_key='z@9' is not one of the 2 DBOS completion"):
        work_id(several, id_from="completion", key="z@9")
    with pytest.raises(DBOSOptionsError, match="id_from='task' must be one of \\['run', 'completion'\\]"):
        work_id(several, id_from="task")


def test_ids_stay_within_what_dbos_can_index() -> None:
    long_key = "w" * 2000 + "@1"
    derived = completion_id("incident", "open", long_key)
    assert len(derived.encode()) <= MAX_ID_BYTES and derived.startswith("incident:open:sha256:")
    assert derived == completion_id("incident", "open", long_key)
    assert completion_id("incident", "open", "x@1") == "incident:open:x@1"


def test_operators_derive_their_ids_from_the_completion() -> None:
    ctx = context([event("a@1"), event("b@2")])
    enqueue = DBOSEnqueueOperator(
        task_id="open", workflow_name="wf", queue_name="q", id_from="completion", completion_key="b@2"
    )
    assert enqueue.awaited_workflow_id(ctx) == "incident:open:b@2"
    assert DBOSEnqueueOperator(task_id="t", workflow_name="wf", queue_name="q").awaited_workflow_id(ctx) == (
        "incident:asset_triggered__1:open:-1"
    )
    explicit = DBOSEnqueueOperator(
        task_id="t", workflow_name="w", queue_name="q", workflow_id="mine", id_from="completion"
    )
    assert explicit.awaited_workflow_id(ctx) == "mine"
    stray = DBOSEnqueueOperator(task_id="t", workflow_name="wf", queue_name="q", completion_key="a@1")
    with pytest.raises(DBOSOptionsError, match="completion_key='a@1' is used only with id_from='completion'"):
        stray.awaited_workflow_id(ctx)
    with pytest.raises(DBOSOptionsError, match="id_from='runs' must be one of"):
        DBOSSendOperator(task_id="s", destination_id="d", message=1, id_from="runs")
    assert (
        "completion_key" in DBOSSendOperator.template_fields and "completion_key" in DBOSEnqueueOperator.template_fields
    )
