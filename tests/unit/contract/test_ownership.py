"""The owner record (dbos_airflow/contract/ownership.py; docs/ui.md, "Permissions")."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from dbos_airflow.contract.ownership import OWNER_KEY, Owner, owner_attributes, owner_of, with_owner

TI = SimpleNamespace(dag_id="d", run_id="manual__x:y", task_id="t", map_index=None)


def test_record_round_trips_and_names_the_task_instance() -> None:
    attrs = owner_attributes(TI, "dbos_default")
    assert attrs == {
        OWNER_KEY: {"dag_id": "d", "run_id": "manual__x:y", "task_id": "t", "map_index": -1, "conn_id": "dbos_default"}
    }
    owner = owner_of(attrs)
    assert owner == Owner("d", "manual__x:y", "t", -1, "dbos_default")
    assert owner.is_task_instance("d", "manual__x:y", "t", -1) and not owner.is_task_instance("d", "x", "t", -1)


def test_a_caller_cannot_claim_another_owner() -> None:
    forged = {"workflow_name": "w", "queue_name": "q", "attributes": {"airflow": {"dag_id": "other"}, "mine": 1}}
    merged = with_owner(forged, TI, "c")
    assert merged["attributes"]["mine"] == 1 and owner_of(merged["attributes"]).dag_id == "d"


@pytest.mark.parametrize(
    "attributes",
    [
        None,
        [],
        {},
        {"airflow": "d"},
        {"airflow": {"dag_id": "d", "run_id": "r", "task_id": "t", "conn_id": "c"}},  # no map_index
        {"airflow": {"dag_id": "d", "run_id": "r", "task_id": "t", "conn_id": "c", "map_index": 2**40}},
        {"airflow": {"dag_id": "d", "run_id": "r", "task_id": "t", "conn_id": "c", "map_index": True}},
        {"airflow": {"dag_id": "", "run_id": "r", "task_id": "t", "conn_id": "c", "map_index": 0}},
    ],
)
def test_malformed_records_own_nothing(attributes: object) -> None:
    assert owner_of(attributes) is None
