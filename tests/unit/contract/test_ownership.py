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


def test_a_batch_anchor_claims_only_its_own_dags_ids_and_is_one_of_them() -> None:
    """docs/batch.md, "Enqueue throughput and the owner record": the record on a batch's first item
    names the batch; it is believed only for ids of the owner's own DAG, and only on an item of the batch."""
    from dbos_airflow.contract.ownership import batch_of, has_record

    record = owner_attributes(TI, "dbos_default")
    extent = {"prefix": "d:manual__x:y:t:-1:", "count": 3, "created_at": 5}
    anchored = {OWNER_KEY: {**record[OWNER_KEY], "batch": extent}}
    claimed = batch_of("d:manual__x:y:t:-1:0", anchored)
    assert claimed is not None and claimed[0] == owner_of(record) and claimed[1].count == 3
    assert batch_of("d:manual__x:y:t:-1:3", anchored) is None  # the anchor is not one of the batch's ids
    assert batch_of("elsewhere", anchored) is None
    other_dag = {OWNER_KEY: {**record[OWNER_KEY], "batch": {**extent, "prefix": "e:manual__x:y:t:-1:"}}}
    assert batch_of("e:manual__x:y:t:-1:0", other_dag) is None  # another DAG's ids
    prefix_of_dag = {OWNER_KEY: {**record[OWNER_KEY], "batch": {**extent, "prefix": "dx:run:t:-1:"}}}
    assert batch_of("dx:run:t:-1:0", prefix_of_dag) is None  # "d" is not "dx": the colon ends the DAG id
    assert batch_of("d:manual__x:y:t:-1:0", record) is None  # no extent
    assert batch_of("d:manual__x:y:t:-1:0", {OWNER_KEY: {"batch": extent}}) is None  # no owner
    assert has_record(anchored) and has_record({OWNER_KEY: "junk"})
    assert not has_record(None) and not has_record({"other": 1})
