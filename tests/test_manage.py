"""Cancel, resume and fork operators end to end: ``dag.test()``, the real worker, real Postgres."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import unique
from dbos_orchestrator.client import DBOSClient
from dbos_orchestrator.exceptions import DBOSOptionsError
from test_operators import FakeTI, run_dag, states, wait_status, xcoms

from dbos_airflow.operators.manage import DBOSForkWorkflowOperator, workflow_ids_arg


@pytest.fixture(scope="module")
def dagbag(dbos_conn: str, airflow_db: object) -> Any:
    from airflow.dag_processing.dagbag import DagBag
    from conftest import ROOT

    bag = DagBag(dag_folder=str(ROOT / "tests" / "dags" / "manage"))
    assert not bag.import_errors, bag.import_errors
    return bag


def forks_of(client: DBOSClient, original: str) -> list[Any]:
    return client.list_workflows(forked_from=original, load_input=False, load_output=False)


@pytest.mark.parametrize("dag_id", ["dbos_t_fork_retry", "dbos_t_fork_retry_deferrable"])
def test_retried_fork_task_reattaches_instead_of_forking_again(dagbag: Any, client: DBOSClient, dag_id: str) -> None:
    original = client.enqueue({"queue_name": "q", "workflow_name": "wf_double"}, 21).workflow_id
    assert wait_status(client, original, {"SUCCESS"}) == "SUCCESS"
    dr = run_dag(dagbag, dag_id, {"original": original, "step": 1})
    assert states(dr) == {"fork": "success"}
    fork_id = f"{dag_id}:{dr.run_id}:fork:-1"
    (fork,) = forks_of(client, original)  # two tries, one fork
    assert fork.workflow_id == fork_id and fork.status == "SUCCESS"
    assert xcoms(dr, "fork") == [fork_id] and xcoms(dr, "fork", "result") == [42]


def test_fork_of_a_failed_fork_reruns_it_and_of_a_missing_workflow_fails(dbos_conn: str, client: DBOSClient) -> None:
    from dbos_airflow.exceptions import DBOSWorkflowNotFoundError

    original = client.enqueue({"queue_name": "q", "workflow_name": "wf_fail"}, "boom").workflow_id
    assert wait_status(client, original, {"ERROR"}) == "ERROR"
    ti = FakeTI("fork")
    op = DBOSForkWorkflowOperator(
        task_id="fork",
        workflow_id=original,
        start_step=1,
        queue_name="q",
        wait_for_completion=True,
        poll_interval=0.2,
        timeout=30,
    )
    with pytest.raises(Exception, match="boom"):  # the fork fails like its original: the task fails with its error
        op.execute({"ti": ti})  # type: ignore[arg-type]
    with pytest.raises(Exception, match="boom"):  # a retry re-runs the same fork (retry_mode=resume), not a new one
        op.execute({"ti": ti})  # type: ignore[arg-type]
    assert [f.workflow_id for f in forks_of(client, original)] == [f"unit:{ti.run_id}:fork:-1"]
    missing = DBOSForkWorkflowOperator(task_id="fork2", workflow_id=unique("nope"), start_step=1)
    with pytest.raises(DBOSWorkflowNotFoundError, match="no DBOS workflow with id"):
        missing.execute({"ti": FakeTI("fork2")})  # type: ignore[arg-type]


def test_fork_id_taken_by_another_workflow_is_refused(dbos_conn: str, client: DBOSClient) -> None:
    original = client.enqueue({"queue_name": "q", "workflow_name": "wf_double"}, 1).workflow_id
    other = client.enqueue({"queue_name": "q", "workflow_name": "wf_double"}, 2).workflow_id
    op = DBOSForkWorkflowOperator(task_id="f", workflow_id=original, start_step=1, fork_workflow_id=other)
    with pytest.raises(Exception, match="is not a fork of"):
        op.execute({"ti": FakeTI("f")})  # type: ignore[arg-type]


def test_cancel_then_resume_a_bulk_enqueue_twice_each(dagbag: Any, client: DBOSClient) -> None:
    dr = run_dag(dagbag, "dbos_t_cancel_resume")
    assert set(states(dr).values()) == {"success"}, states(dr)
    (ids,) = xcoms(dr, "bulk")
    assert len(ids) == 3
    assert xcoms(dr, "cancel") == [ids] and xcoms(dr, "cancel_again") == [ids] and xcoms(dr, "resume") == [ids]
    assert xcoms(dr, "done") == [2, 4, 6]  # resumed once each on q, and ran
    rows = client.list_workflows(workflow_ids=ids, load_input=False, load_output=False)
    assert {r.status for r in rows} == {"SUCCESS"}


def test_cancel_mapped_over_a_bulk_enqueue(dagbag: Any, client: DBOSClient) -> None:
    dr = run_dag(dagbag, "dbos_t_cancel_mapped")
    assert set(states(dr).values()) == {"success"}, states(dr)
    (ids,) = xcoms(dr, "bulk")
    assert xcoms(dr, "cancel") == ids  # one mapped task per id, each returning its id
    rows = client.list_workflows(workflow_ids=ids, load_input=False, load_output=False)
    assert {r.status for r in rows} == {"CANCELLED"}


def test_cancel_of_a_missing_workflow_fails_naming_it(dagbag: Any, client: DBOSClient) -> None:
    real = client.enqueue({"queue_name": "q_manage_nobody", "workflow_name": "wf_double"}, 1).workflow_id
    missing = unique("missing")
    dr = run_dag(dagbag, "dbos_t_cancel_missing", {"ids": [real, missing]})
    assert states(dr) == {"cancel": "failed"}
    (row,) = client.list_workflows(workflow_ids=[real], load_input=False, load_output=False)
    assert row.status == "ENQUEUED"  # nothing was changed
    client.cancel_workflow(real)


def test_workflow_ids_arg() -> None:
    assert workflow_ids_arg("a") == ["a"]
    assert workflow_ids_arg(["a", "b", "a"]) == ["a", "b"]
    assert workflow_ids_arg('["a", "b"]') == ["a", "b"]
    assert workflow_ids_arg("['a', 'b']") == ["a", "b"]
    for bad in ("[1, 2]", [1], "[oops", None):
        with pytest.raises(DBOSOptionsError):
            workflow_ids_arg(bad)
