"""DAGs of the DBOS workflow view's browser tests (tests/browser/test_ui_workflow_view.py)."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from dbos_airflow.operators.dbos import DBOSEnqueueOperator

with DAG("dbos_ui_steps", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    DBOSEnqueueOperator(
        task_id="steps",
        workflow_name="wf_steps",
        queue_name="q",
        workflow_args=["{{ run_id }}"],
        wait_for_completion=True,
        poll_interval=0.2,
        timeout=60,
    )

with DAG("dbos_ui_wait", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    DBOSEnqueueOperator(
        task_id="wait",
        workflow_name="wf_sleep",
        queue_name="q",
        workflow_args=[600],
        wait_for_completion=True,
        poll_interval=0.2,
        timeout=120,
    )

with DAG("dbos_ui_private", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    # Never run: the permission test gives its bundle to a team some users are not in.
    DBOSEnqueueOperator(task_id="private", workflow_name="wf_noop", queue_name="q")

with DAG("dbos_ui_shapes", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    # Every way a task instance maps to its workflows: explicit templated id (on a connection with
    # console_url), mapped, bulk, a sensor on another task's workflow, a pickled workflow.
    from dbos_airflow.operators.bulk import DBOSBulkEnqueueOperator
    from dbos_airflow.sensors.dbos import DBOSWorkflowSensor

    explicit = DBOSEnqueueOperator(
        task_id="explicit",
        workflow_name="wf_double",
        queue_name="q",
        workflow_args=[21],
        workflow_id="ui-explicit-{{ run_id }}",
        wait_for_completion=True,
        poll_interval=0.2,
        dbos_conn_id="dbos_console",
    )
    explicit >> DBOSWorkflowSensor(
        task_id="sensor", workflow_id="{{ ti.xcom_pull(task_ids='explicit') }}", poke_interval=0.2, timeout=60
    )
    DBOSEnqueueOperator.partial(
        task_id="mapped", workflow_name="wf_double", queue_name="q", wait_for_completion=True, poll_interval=0.2
    ).expand(workflow_args=[[1], [2]])
    DBOSBulkEnqueueOperator(task_id="bulk", workflow_name="wf_double", queue_name="q", items=[[3], [4], [5]])
    DBOSEnqueueOperator(
        task_id="pickled",
        workflow_name="wf_echo",
        queue_name="q",
        workflow_args=[{"secret": 7}],
        serialization="pickle",
    )
