"""A record kept once for a batch, on its anchor (dbos_orchestrator/store/batch_record.py)."""

from __future__ import annotations

import pytest
from dbos_orchestrator.store.batch_record import BatchExtent, extent_of, prefix_and_index

EXTENT = BatchExtent("dag:run:task:-1:", 3, 1_700_000_000_123)


@pytest.mark.parametrize(
    ("workflow_id", "split"),
    [
        ("dag:run:task:-1:0", ("dag:run:task:-1:", 0)),
        ("dag:run:task:-1:12", ("dag:run:task:-1:", 12)),
        ("a:007", ("a:00", 7)),  # not canonical: the zeros stay in the prefix, which no batch has
        ("12", None),  # nothing before the index
        ("a:b", None),
        ("a:" + "9" * 19, ("a:9", int("9" * 18))),  # at most 18 digits: a bigint
    ],
)
def test_prefix_and_index(workflow_id: str, split: tuple[str, int] | None) -> None:
    assert prefix_and_index(workflow_id) == split


def test_members_are_the_batch_ids_created_with_it_without_a_record_of_their_own() -> None:
    anchor = "dag:run:task:-1:0"
    t = EXTENT.created_at
    assert EXTENT.ids() == ["dag:run:task:-1:0", "dag:run:task:-1:1", "dag:run:task:-1:2"]
    assert EXTENT.ids(2) == EXTENT.ids()[:2]
    assert EXTENT.has_member(anchor, "dag:run:task:-1:2", t, own_record=False)
    assert EXTENT.has_member(anchor, anchor, t - 5, own_record=True)  # the anchor itself
    assert not EXTENT.has_member(anchor, "dag:run:task:-1:3", t, own_record=False)  # past the count
    assert not EXTENT.has_member(anchor, "dag:run:task:-1:01", t, own_record=False)  # not canonical
    assert not EXTENT.has_member(anchor, "dag:run:task:-1:2", t + 1, own_record=False)  # another transaction
    assert not EXTENT.has_member(anchor, "dag:run:task:-1:2", t, own_record=True)  # owned by its own record
    assert not EXTENT.has_member(anchor, "other:run:task:-1:2", t, own_record=False)
    assert not EXTENT.has_member("elsewhere:0", "dag:run:task:-1:2", t, own_record=False)  # anchor not in its batch
    assert EXTENT.index_of("dag:run:task:-1:2") == 2 and EXTENT.index_of("dag:run:task:-1:x") is None


@pytest.mark.parametrize(
    "record",
    [
        None,
        "batch",
        {},
        {"batch": None},
        {"batch": {"prefix": "", "count": 3, "created_at": 1}},
        {"batch": {"prefix": "p:", "count": 1, "created_at": 1}},  # a batch of one needs no extent
        {"batch": {"prefix": "p:", "count": 3.0, "created_at": 1}},
        {"batch": {"prefix": "p:", "count": True, "created_at": 1}},
        {"batch": {"prefix": "p:", "count": 3, "created_at": -1}},
        {"batch": {"prefix": "p:", "count": 3}},
    ],
)
def test_a_malformed_extent_is_none(record: object) -> None:
    assert extent_of(record) is None


def test_extent_round_trips() -> None:
    assert extent_of({"dag_id": "dag", "batch": EXTENT.as_json()}) == EXTENT
