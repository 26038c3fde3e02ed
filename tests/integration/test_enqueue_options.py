"""Enqueue options the operators pass through (``duplication_policy``, identity, user attributes),
``send_bulk`` behind the send operator and ``set_workflow_delay``: ``dag.test()`` and the real worker."""

from __future__ import annotations

from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException
from conftest import ROOT, unique
from dbos_orchestrator.client import DBOSClient
from fakes import FakeTI
from test_operators import states, wait_status, xcoms


@pytest.fixture(scope="module")
def dagbag(dbos_conn: str, airflow_db: object) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "tests" / "dags" / "ops"))
    assert not bag.import_errors, bag.import_errors
    return bag


def test_return_existing_waits_on_the_first_and_identity_and_attributes_reach_dbos(
    dagbag: Any, client: DBOSClient
) -> None:
    dr = dagbag.get_dag("dbos_t_ops_options").test(run_conf={"dedup": unique("refresh")})
    assert states(dr) == {"first": "success", "second": "success", "whoami": "success"}
    (held,) = xcoms(dr, "first")
    assert xcoms(dr, "second") == [held]  # the second task attached to the first's workflow and waited on it
    assert xcoms(dr, "second", "result") == ["slept"]
    assert not client.list_workflows(workflow_ids=[f"dbos_t_ops_options:{dr.run_id}:second:-1"], load_input=False)
    # the triggering user (dag.test()'s) and the roles are what DBOS restores in the workflow
    assert xcoms(dr, "whoami", "result") == [{"user": "dag_test", "roles": ["reader", "ops"]}]
    (row,) = client.list_workflows(workflow_ids=xcoms(dr, "whoami"), load_input=False, load_output=False)
    assert row.authenticated_user == "dag_test" and row.authenticated_roles == ["reader", "ops"]
    owner = client.list_workflows(attributes={"team": "data"}, workflow_ids=xcoms(dr, "whoami"), load_input=False)
    assert len(owner) == 1  # the user's attribute is stored, and the owner record could not be overwritten:
    assert owner[0].workflow_id.startswith("dbos_t_ops_options:")
    from dbos_airflow.contract.ownership import OWNER_KEY

    stored = client.list_workflows(
        attributes={OWNER_KEY: {"task_id": "whoami", "run_id": dr.run_id}}, load_input=False, load_output=False
    )
    assert [w.workflow_id for w in stored] == xcoms(dr, "whoami")


def test_return_existing_without_a_deduplication_id_is_refused(dbos_conn: str) -> None:
    from dbos_airflow.operators.dbos import DBOSEnqueueOperator

    op = DBOSEnqueueOperator(task_id="t", workflow_name="wf_noop", queue_name="q", duplication_policy="return-existing")
    with pytest.raises(AirflowFailException, match="duplication_policy='return-existing' needs a deduplication_id"):
        op.execute({"ti": FakeTI()})
    with pytest.raises(AirflowFailException, match="authenticated_roles is not valid JSON"):
        DBOSEnqueueOperator(task_id="t", workflow_name="wf_noop", queue_name="q", authenticated_roles="admin").execute(
            {"ti": FakeTI()}
        )


def test_send_to_a_list_of_destinations_is_one_bulk_send_delivered_once_per_destination(
    dbos_conn: str, client: DBOSClient
) -> None:
    from dbos_airflow.operators.dbos import DBOSSendOperator

    topic = unique("topic")
    receivers = [
        client.enqueue({"queue_name": "q", "workflow_name": "wf_recv_all"}, topic, 3, 3, 300).workflow_id for _ in "ab"
    ]
    ti = FakeTI("send")
    op = DBOSSendOperator(task_id="send", destination_id=receivers, message={"n": 1}, topic=topic)
    key = op.execute({"ti": ti})
    assert op.execute({"ti": ti}) == key  # a retry: DBOS drops the repeated keys
    for wid in receivers:
        assert wait_status(client, wid, {"SUCCESS"}, timeout=60) == "SUCCESS"
        assert client.retrieve_workflow(wid).get_result() == [{"n": 1}]  # once, not twice


def test_set_workflow_delay_starts_a_delayed_workflow_and_leaves_others(dbos_conn: str, client: DBOSClient) -> None:
    from dbos_airflow.operators.manage import DBOSSetWorkflowDelayOperator

    wid = client.enqueue({"queue_name": "q", "workflow_name": "wf_double", "delay_seconds": 3600}, 4).workflow_id
    assert wait_status(client, wid, {"DELAYED"}) == "DELAYED"
    op = DBOSSetWorkflowDelayOperator(task_id="d", workflow_id=wid, delay_seconds="0")
    assert op.execute({"ti": FakeTI()}) is True
    assert wait_status(client, wid, {"SUCCESS"}, timeout=60) == "SUCCESS"
    assert op.execute({"ti": FakeTI()}) is False  # a retry: no longer DELAYED, nothing changed
    with pytest.raises(AirflowFailException, match="delay_seconds=-1.0 must be a number of seconds >= 0"):
        DBOSSetWorkflowDelayOperator(task_id="d", workflow_id=wid, delay_seconds=-1.0).execute({"ti": FakeTI()})


def test_queue_sensor_waits_for_the_backlog_to_drop(dbos_conn: str, client: DBOSClient) -> None:
    from airflow.sdk.exceptions import AirflowSensorTimeout

    from dbos_airflow.sensors.queues import DBOSQueueSensor

    queue = unique("backlog")
    client.register_queue(queue)  # nobody polls it: what is delayed there stays
    held = [client.enqueue({"queue_name": queue, "workflow_name": "wf_noop", "delay_seconds": 3600}).workflow_id]
    sensor = DBOSQueueSensor(task_id="s", queue_name=queue, max_backlog=0, poke_interval=0.2, timeout=1)
    with pytest.raises(AirflowSensorTimeout):
        sensor.execute({"ti": FakeTI("s")})
    client.cancel_workflows(held)
    assert DBOSQueueSensor(task_id="s", queue_name=queue, max_backlog="0", poke_interval=0.2, timeout=30).execute(
        {"ti": FakeTI("s")}
    ) == {"queue_name": queue, "backlog": {"DELAYED": 0, "ENQUEUED": 0, "PENDING": 0}}
    with pytest.raises(AirflowFailException, match="queue_name='ordres' is not a registered DBOS queue"):
        DBOSQueueSensor(task_id="s", queue_name="ordres", poke_interval=0.2, timeout=5).execute({"ti": FakeTI("s")})
    client.delete_queue(queue)


def test_the_enqueue_check_costs_one_read_per_process_and_window(dbos_conn: str, client: DBOSClient) -> None:
    """docs/operations.md, "Fail fast": 20 enqueue tasks in one process read the registered queues and
    versions once (the cache), not once per task; a retry that re-attaches reads nothing more."""
    import sqlalchemy as sa
    from dbos_orchestrator.operations.preflight import forget_targets

    from dbos_airflow.operators.dbos import DBOSEnqueueOperator

    reads: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        if "application_versions" in statement:
            reads.append(statement)

    forget_targets()
    sa.event.listen(sa.engine.Engine, "before_cursor_execute", count)
    try:
        tis = [FakeTI("enqueue") for _ in range(20)]
        for ti in tis:
            DBOSEnqueueOperator(task_id="enqueue", workflow_name="wf_noop", queue_name="q").execute({"ti": ti})
        assert len(reads) == 1
        DBOSEnqueueOperator(task_id="enqueue", workflow_name="wf_noop", queue_name="q").execute({"ti": tis[0]})
        assert len(reads) == 1  # the retry re-attached: no check
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", count)
