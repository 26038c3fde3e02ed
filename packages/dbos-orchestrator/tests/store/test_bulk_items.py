"""The items of a bulk enqueue (dbos_orchestrator/store/bulk_items.py): checked, named, encoded.

Writing them to Postgres (the range probe, the owner record, rollback) is in tests/test_bulk.py.
"""

from __future__ import annotations

import json

import pytest
from dbos import DBOSPortableJSONSerializer
from dbos_orchestrator.exceptions import DBOSOptionsError, DBOSSerializationError
from dbos_orchestrator.store.bulk_items import BulkItem, encode_row, normalize_items


def test_derived_ids_name_the_batch_by_its_prefix() -> None:
    batch = normalize_items([[1], {"args": [2], "kwargs": {"k": 3}}, ()], id_prefix="d:r:t:-1:")
    assert [item.workflow_id for item in batch] == ["d:r:t:-1:0", "d:r:t:-1:1", "d:r:t:-1:2"]
    assert batch[1] == BulkItem("d:r:t:-1:1", (2,), {"k": 3})
    assert batch.id_prefix == "d:r:t:-1:"


@pytest.mark.parametrize(
    ("items", "id_prefix"),
    [
        ([[1], {"workflow_id": "mine"}], "p:"),  # one id given: the ids are not <prefix><index>
        ([[1]], "p:"),  # a batch of one
        ([[1], [2]], "p1"),  # a prefix ending in a digit: p1 + 0 or p + 10?
        ([[1], [2]], None),  # random ids
    ],
)
def test_no_prefix_unless_every_id_is_prefix_and_index(items: list[object], id_prefix: str | None) -> None:
    assert normalize_items(items, id_prefix=id_prefix).id_prefix is None


def test_a_changed_batch_no_longer_claims_its_prefix() -> None:
    batch = normalize_items([[1], [2]], id_prefix="p:")
    batch.append(BulkItem("other", (), {}))
    assert batch.id_prefix is None


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([{"workflow_id": "a"}, {"workflow_id": "a"}], "item 1: workflow_id 'a' is also the id of item 0"),
        ([[1], {"workflow_id": "p:0"}], "item 1: workflow_id 'p:0' is also the id of item 0"),  # given = derived
        ([{"workflow_id": "p:1"}, [1]], "item 1: workflow_id 'p:1' is also the id of item 0"),
    ],
)
def test_one_id_twice_is_refused(items: list[object], message: str) -> None:
    with pytest.raises(DBOSOptionsError, match=message):
        normalize_items(items, id_prefix="p:")


def test_default_id_names_items_without_one() -> None:
    batch = normalize_items([[1], {"workflow_id": "x"}], lambda i: f"d-{i}")
    assert [item.workflow_id for item in batch] == ["d-0", "x"]
    with pytest.raises(DBOSOptionsError, match="item 1: workflow_id 'd-0' is also the id of item 0"):
        normalize_items([[1], {"workflow_id": "d-0"}], lambda i: f"d-{i}")


@pytest.mark.parametrize(
    "args",
    [
        (0, -(2**70), 'a"b\\c\u2028é', True, None, 1.5),
        ({"k": [1, "x"]}, [None, False]),
        (),
    ],
)
def test_an_item_is_encoded_as_dbos_portable_json(args: tuple[object, ...]) -> None:
    serializer = DBOSPortableJSONSerializer()
    row = json.loads(encode_row(0, BulkItem("id-0", args, {"k": "v"})))
    assert row == ["id-0", [json.loads(serializer.serialize(a)) for a in args], {"k": "v"}]


def test_an_argument_without_portable_json_is_named() -> None:
    with pytest.raises(DBOSSerializationError, match=r"item 3 \(w\): kwargs\['when'\] cannot be encoded"):
        encode_row(3, BulkItem("w", (1,), {"when": object()}))
