"""DAGs of tests/integration/test_tls.py and test_pgbouncer.py: every kind of wait, on a connection named by params.

``dbos_tls_waits`` runs on the connection in its ``conn_id`` param: an enqueue waited for in the
worker, one waited for deferred (longer than the in-worker check, so it really defers), a bulk
enqueue with its batch wait, and a deferred event sensor on an event set 7 s later.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG

from dbos_airflow.operators.bulk import DBOSBulkEnqueueOperator
from dbos_airflow.operators.dbos import DBOSEnqueueOperator, DBOSSendOperator
from dbos_airflow.sensors.dbos import DBOSEventSensor, DBOSWorkflowSensor

COMMON: dict[str, Any] = {"schedule": None, "start_date": pendulum.datetime(2024, 1, 1, tz="UTC"), "catchup": False}
CONN = "{{ params.conn_id }}"

with DAG("dbos_tls_waits", params={"conn_id": "dbos_tls"}, **COMMON):
    DBOSEnqueueOperator(
        task_id="sync", workflow_name="wf_double", queue_name="q", workflow_args=[21], dbos_conn_id=CONN,
        wait_for_completion=True, poll_interval=0.2, timeout=60,
    )  # fmt: skip
    DBOSEnqueueOperator(
        task_id="deferred", workflow_name="wf_sleep", queue_name="q", workflow_args=[7], dbos_conn_id=CONN,
        wait_for_completion=True, deferrable=True, timeout=120,
    )  # fmt: skip
    DBOSBulkEnqueueOperator(
        task_id="bulk", workflow_name="wf_double", queue_name="q", items=[[i] for i in range(20)], dbos_conn_id=CONN,
        wait_for_completion=True, timeout=120,
    )  # fmt: skip
    setter = DBOSEnqueueOperator(
        task_id="setter", workflow_name="wf_set_event_later", queue_name="q", workflow_args=["k", "v", 7],
        dbos_conn_id=CONN,
    )  # fmt: skip
    DBOSEventSensor(
        task_id="event", workflow_id=setter.output, key="k", expected_value="v", deferrable=True, timeout=120,
        dbos_conn_id=CONN,
    )  # fmt: skip
    receiver = DBOSEnqueueOperator(
        task_id="receiver", workflow_name="wf_event_recv", queue_name="q", workflow_args=["go"], dbos_conn_id=CONN
    )
    sent = DBOSSendOperator(task_id="send", destination_id=receiver.output, message="ok", topic="go", dbos_conn_id=CONN)
    received = DBOSWorkflowSensor(
        task_id="received", workflow_id=receiver.output, poke_interval=0.3, timeout=60, dbos_conn_id=CONN
    )
    receiver >> sent >> received
