"""DAGs of the approval tests (tests/integration/test_hitl.py): the workflow asks, a person answers."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param, task

from dbos_airflow.operators.hitl import (
    DBOSApprovalOperator,
    DBOSHITLBranchOperator,
    DBOSHITLEntryOperator,
    DBOSHITLOperator,
)

COMMON = {"schedule": None, "start_date": pendulum.datetime(2026, 1, 1, tz="UTC"), "catchup": False}

with DAG("dbos_t_hitl_approval", params={"workflow_id": Param("", type="string")}, **COMMON):
    approve = DBOSApprovalOperator(
        task_id="approve",
        workflow_id="{{ params.workflow_id }}",
        question_event="approval_request",
        topic="approval",
        cancel_on_reject=True,
    )

    @task
    def after_approval() -> str:
        return "ran"

    approve >> after_approval()

with DAG(
    "dbos_t_hitl_choice",
    params={"workflow_id": Param("", type="string")},
    **COMMON,
):
    DBOSHITLOperator(
        task_id="choose",
        workflow_id="{{ params.workflow_id }}",
        question_event="approval_request",
        topic="choice",
        deferrable=True,
    )

with DAG("dbos_t_hitl_branch", params={"workflow_id": Param("", type="string")}, **COMMON):
    route = DBOSHITLBranchOperator(
        task_id="route",
        workflow_id="{{ params.workflow_id }}",
        question_event="approval_request",  # brings the options Ship/Hold
        topic="route",
        options_mapping={"Ship": "ship", "Hold": "hold"},
    )

    @task
    def ship() -> str:
        return "shipped"

    @task
    def hold() -> str:
        return "held"

    route >> [ship(), hold()]

with DAG("dbos_t_hitl_entry", params={"workflow_id": Param("", type="string")}, **COMMON):
    DBOSHITLEntryOperator(
        task_id="fill",
        workflow_id="{{ params.workflow_id }}",
        question_event="approval_request",  # brings the form (params)
        topic="address",
    )
