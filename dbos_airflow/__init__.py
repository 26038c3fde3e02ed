"""dbos-airflow: the Apache Airflow provider for DBOS durable workflows.

Public names are imported lazily so that ``import dbos_airflow`` (done by Airflow's
provider discovery) stays cheap and never touches a database.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "DBOSClient": "dbos_orchestrator.client",
    "EnqueueOptions": "dbos_orchestrator.options",
    "DBOSHook": "dbos_airflow.hooks.dbos",
    "DBOSEnqueueOperator": "dbos_airflow.operators.dbos",
    "DBOSSendOperator": "dbos_airflow.operators.dbos",
    "DBOSBulkEnqueueOperator": "dbos_airflow.operators.bulk",
    "DBOSCancelWorkflowOperator": "dbos_airflow.operators.manage",
    "DBOSResumeWorkflowOperator": "dbos_airflow.operators.manage",
    "DBOSForkWorkflowOperator": "dbos_airflow.operators.manage",
    "DBOSWorkflowSensor": "dbos_airflow.sensors.dbos",
    "DBOSEventSensor": "dbos_airflow.sensors.dbos",
    "DBOSWorkflowsSensor": "dbos_airflow.sensors.dbos",
    "DBOSWaitFirstSensor": "dbos_airflow.sensors.dbos",
    "DBOSQueueSensor": "dbos_airflow.sensors.queues",
    "DBOSStreamSensor": "dbos_airflow.sensors.streams",
    "DBOSStreamTrigger": "dbos_airflow.triggers.streams",
    "DBOSWorkflowTrigger": "dbos_airflow.triggers.dbos",
    "DBOSEventTrigger": "dbos_airflow.triggers.dbos",
    "DBOSBatchTrigger": "dbos_airflow.triggers.dbos",
    "DBOSQueueTrigger": "dbos_airflow.triggers.dbos",
    "DBOSWorkflowCompletedTrigger": "dbos_airflow.triggers.completed",
    "triggering_completions": "dbos_airflow.contract.ids",
    "DBOSWorkflowStatus": "dbos_orchestrator.status",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        import importlib

        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'dbos_airflow' has no attribute {name!r}")
