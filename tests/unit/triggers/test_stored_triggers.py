"""Triggers stored by today's version resume after an upgrade (docs/architecture.md, "Layers").

Airflow stores a deferred task's trigger (and an asset watcher's) as its class path and kwargs,
and the triggerer rebuilds it with ``import_string(classpath)(**kwargs)``. These rows were
written by dbos-airflow 0.1.0; each must rebuild, serialize back to the same row, and keep the
watermark key already stored in ``asset_state_store``.
"""

from __future__ import annotations

from typing import Any

import pytest
from airflow.sdk.module_loading import import_string

STORED: list[tuple[str, dict[str, Any]]] = [
    (
        "dbos_airflow.triggers.dbos.DBOSWorkflowTrigger",
        {
            "workflow_id": "etl:manual__2026-01-01:enqueue:-1",
            "dbos_conn_id": "dbos_default",
            "end_time": 1767225600.0,
            "cancel_on_kill": True,
            "not_before": 1767225015.0,
        },
    ),
    (
        "dbos_airflow.triggers.dbos.DBOSEventTrigger",
        {
            "workflow_id": "order-42",
            "dbos_conn_id": "dbos_orders",
            "end_time": None,
            "cancel_on_kill": False,
            "not_before": None,
            "key": "approval",
            "expected_value": {"approved": True},
            "poll_interval": 2.0,
        },
    ),
    (
        "dbos_airflow.triggers.completed.DBOSWorkflowCompletedTrigger",
        {
            "workflow_name": ["refund_order"],
            "workflow_class_name": None,
            "queue_name": None,
            "statuses": ["ERROR"],
            "app_version": None,
            "dbos_conn_id": "dbos_default",
            "include_output": True,
            "start_lookback": 0.0,
            "lookback_without_state_store": 3600.0,
        },
    ),
]
# Stored before not_before existed (older rows): they rebuild too.
OLDER = [
    (
        "dbos_airflow.triggers.dbos.DBOSWorkflowTrigger",
        {"workflow_id": "w", "dbos_conn_id": "dbos_default", "end_time": None, "cancel_on_kill": True},
    )
]


@pytest.mark.parametrize(("classpath", "kwargs"), STORED, ids=[c.rsplit(".", 1)[1] for c, _ in STORED])
def test_stored_rows_rebuild_and_serialize_back_unchanged(classpath: str, kwargs: dict[str, Any]) -> None:
    trigger = import_string(classpath)(**kwargs)
    assert trigger.serialize() == (classpath, kwargs)


@pytest.mark.parametrize(("classpath", "kwargs"), OLDER)
def test_rows_stored_before_not_before_rebuild(classpath: str, kwargs: dict[str, Any]) -> None:
    trigger = import_string(classpath)(**kwargs)
    assert trigger.serialize() == (classpath, {**kwargs, "not_before": None})


def test_the_stored_watermark_key_is_unchanged() -> None:
    """The position an asset watcher stored under this key is where it resumes."""
    classpath, kwargs = STORED[2]
    assert import_string(classpath)(**kwargs).state_key == "dbos_completed:165625c950dcd265"
    assert import_string(classpath)().state_key == "dbos_completed:298adba407ac09d4"
