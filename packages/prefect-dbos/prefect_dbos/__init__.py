"""prefect-dbos: Prefect tasks, flows and blocks for DBOS durable workflows.

The blocks are imported here so that Prefect's ``prefect.collections`` entry point registers
them; the contract (ids, retries, waiting, safe reading) comes from the shared core.
"""

from __future__ import annotations

from prefect_dbos.cancellation import cancel_dbos_workflows
from prefect_dbos.database import DBOSSystemDatabase
from prefect_dbos.flows import run_dbos_workflow_and_wait_for_completion
from prefect_dbos.jobs import DBOSWorkflow, DBOSWorkflowRun
from prefect_dbos.manage import (
    aawait_first_workflow,
    acancel_workflow,
    afork_workflow,
    aget_workflow_event,
    aget_workflow_status,
    aresume_workflow,
    asend_message,
    await_workflow_event,
    cancel_workflow,
    fork_workflow,
    get_workflow_event,
    get_workflow_status,
    resume_workflow,
    send_message,
    wait_for_first_workflow,
    wait_for_workflow_event,
)
from prefect_dbos.stream_tasks import aread_stream, read_stream
from prefect_dbos.tasks import (
    aenqueue_workflow,
    aenqueue_workflows,
    await_workflow,
    await_workflows,
    enqueue_workflow,
    enqueue_workflows,
    wait_for_workflow,
    wait_for_workflows,
)

__version__ = "0.1.0"

__all__ = [
    "DBOSSystemDatabase",
    "DBOSWorkflow",
    "DBOSWorkflowRun",
    "__version__",
    "aawait_first_workflow",
    "acancel_workflow",
    "aenqueue_workflow",
    "aenqueue_workflows",
    "afork_workflow",
    "aget_workflow_event",
    "aget_workflow_status",
    "aread_stream",
    "aresume_workflow",
    "asend_message",
    "await_workflow",
    "await_workflow_event",
    "await_workflows",
    "cancel_dbos_workflows",
    "cancel_workflow",
    "enqueue_workflow",
    "enqueue_workflows",
    "fork_workflow",
    "get_workflow_event",
    "get_workflow_status",
    "resume_workflow",
    "read_stream",
    "run_dbos_workflow_and_wait_for_completion",
    "send_message",
    "wait_for_first_workflow",
    "wait_for_workflow",
    "wait_for_workflows",
    "wait_for_workflow_event",
]
