"""The documented class-workflow form (README, "Examples"; docs/architecture.md: the DBOSClient row) on every enqueue path.

``workflow_name="scale", workflow_class_name="Calculator"`` reaches tests/dbos_app.py's
``@DBOS.dbos_class() class Calculator`` / ``@DBOS.workflow() def scale``, which dbos registers
as ``Calculator.scale``: through the client, the hook, DBOSEnqueueOperator,
DBOSBulkEnqueueOperator (DBOS' SQL function and the client path) and the UI form DAG.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest
from conftest import ROOT
from dbos_orchestrator.options import qualified_workflow_name
from fakes import FakeTI

from dbos_airflow.hooks.dbos import DBOSHook

if TYPE_CHECKING:
    from dbos_orchestrator.client import DBOSClient

CLASS_FORM: Any = {"queue_name": "q", "workflow_name": "scale", "workflow_class_name": "Calculator"}


def context(ti: FakeTI) -> Any:
    return {"ti": ti}


def results(hook: DBOSHook, ids: list[str], timeout: float = 30) -> list[Any]:
    """Outputs of the workflows, read safely, once they all succeeded (fails on ERROR)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        statuses = [hook.get_workflow_status(wid) for wid in ids]
        assert all(s is not None for s in statuses)
        names = {(s["name"], s["class_name"]) for s in statuses if s}
        assert names == {("Calculator.scale", "Calculator")}, names
        states = {s["status"] for s in statuses if s}
        assert "ERROR" not in states, [hook.get_workflow_status(w, load_output=True) for w in ids]
        if states == {"SUCCESS"}:
            return [hook.value_reader().output(wid) for wid in ids]
        time.sleep(0.1)
    raise AssertionError(f"not all of {ids} succeeded")


def test_qualified_workflow_name() -> None:
    assert qualified_workflow_name("scale", "Calculator") == "Calculator.scale"
    assert qualified_workflow_name("Calculator.scale", "Calculator") == "Calculator.scale"  # kept


@pytest.mark.parametrize(
    "options",
    [
        CLASS_FORM,
        {**CLASS_FORM, "workflow_name": "Calculator.scale"},  # already qualified
        {"queue_name": "q", "workflow_name": "scale", "class_name": "Calculator"},  # dbos' own key
    ],
    ids=["documented", "qualified", "dbos-key"],
)
def test_client_enqueues_the_class_form(client: DBOSClient, options: Any) -> None:
    assert client.enqueue(options, 4).get_result() == 40


def test_hook_enqueue_and_enqueue_many(dbos_conn: str) -> None:
    with DBOSHook(dbos_conn) as hook:
        single = hook.enqueue(CLASS_FORM.copy(), 2).workflow_id
        assert results(hook, [single]) == [20]
        for serialization in ("portable", "pickle"):  # DBOS' SQL function; dbos' enqueue_in_transaction
            ids = hook.enqueue_many(CLASS_FORM.copy(), [[1], [2], [3]], serialization=serialization)
            if serialization == "portable":
                assert results(hook, ids) == [10, 20, 30]
            else:  # pickled outputs are not read without allow_pickle: the statuses say enough
                assert results_statuses(hook, ids) == {"SUCCESS"}


def results_statuses(hook: DBOSHook, ids: list[str], timeout: float = 30) -> set[str]:
    deadline = time.monotonic() + timeout
    states: set[str] = set()
    while time.monotonic() < deadline:
        states = {s["status"] for s in (hook.get_workflow_status(w) for w in ids) if s}
        if not states & {"ENQUEUED", "PENDING", "DELAYED"}:
            return states
        time.sleep(0.1)
    return states


def test_enqueue_operator(dbos_conn: str) -> None:
    from dbos_airflow.operators.dbos import DBOSEnqueueOperator

    ti = FakeTI("enqueue")
    op = DBOSEnqueueOperator(
        task_id="enqueue",
        workflow_name="scale",
        workflow_class_name="Calculator",
        queue_name="q",
        workflow_args=[7],
        wait_for_completion=True,
        poll_interval=0.2,
        timeout=30,
    )
    op.execute(context(ti))
    assert ti.xcom["result"] == 70
    with DBOSHook(dbos_conn) as hook:
        status = hook.get_workflow_status(ti.xcom["workflow_id"])
    assert status is not None and (status["name"], status["class_name"]) == ("Calculator.scale", "Calculator")


@pytest.mark.parametrize("serialization", ["portable", "pickle"])
def test_bulk_enqueue_operator(dbos_conn: str, serialization: str) -> None:
    from dbos_airflow.operators.bulk import DBOSBulkEnqueueOperator

    op = DBOSBulkEnqueueOperator(
        task_id="bulk",
        workflow_name="scale",
        workflow_class_name="Calculator",
        queue_name="q",
        items=[[i] for i in range(5)],
        serialization=serialization,
    )
    ti = FakeTI("bulk")
    ids = op.execute(context(ti))
    assert ids == [f"unit:{ti.run_id}:bulk:-1:{i}" for i in range(5)]
    with DBOSHook(dbos_conn) as hook:
        if serialization == "portable":
            assert results(hook, ids) == [0, 10, 20, 30, 40]
        else:
            assert results_statuses(hook, ids) == {"SUCCESS"}
        # A retry of the same task instance: the same ids, nothing new (and no name mismatch).
        assert op.execute(context(ti)) == ids


def test_ui_form_dag_passes_the_class_through(dbos_conn: str, airflow_db: object) -> None:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    dag = DagBag(str(ROOT / "dags")).get_dag("dbos_run_workflow")
    for conf, expected in (
        ({"workflow_name": "scale", "workflow_class_name": "Calculator", "args": [5]}, 50),
        ({"workflow_name": "wf_double", "workflow_class_name": None, "args": [5]}, 10),  # empty form field
    ):
        # Every param is given: in one process a param of an earlier dag.test() run outlives it.
        dr = dag.test(
            run_conf={"queue_name": "q", "kwargs": {}, "workflow_id": None, "wait": True, "timeout": 30, **conf}
        )
        (ti,) = dr.get_task_instances()
        assert ti.state == "success", conf
        with create_session() as session:
            row = session.query(XComModel).filter_by(dag_id=dr.dag_id, run_id=dr.run_id, key="result").one()
        assert row.value == expected
