"""The owner record and the view's input checks (docs/ui.md, "Permissions" and "Bad input")."""

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


@pytest.mark.parametrize(
    ("check", "value", "field"),
    [
        ("since_hours", "nan", "since_hours"),
        ("since_hours", "inf", "since_hours"),
        ("since_hours", "1e300", "since_hours"),
        ("since_hours", "-1", "since_hours"),
        ("page", -1, "page"),
        ("page", 0, "page"),
        ("page", 10**20, "page"),
        ("map_index", "99999999999999999999", "map_index"),
        ("map_index", "-2", "map_index"),
        ("step", 0, "step"),
        ("step", 10**30, "step"),
    ],
)
def test_bad_values_name_their_field(check: str, value: object, field: str) -> None:
    from fastapi import HTTPException

    from dbos_airflow.plugin import inputs

    with pytest.raises(HTTPException) as raised:
        getattr(inputs, check)(value)
    assert raised.value.status_code == 400 and str(raised.value.detail).startswith(f"{field}: ")


@pytest.mark.parametrize("value", ["../d", "d/e", "..", "a\x00", "a\ud800", ""])
def test_ids_in_airflow_shape_only(value: str) -> None:
    from fastapi import HTTPException

    from dbos_airflow.plugin import inputs

    with pytest.raises(HTTPException, match="dag_id"):
        inputs.key("dag_id", value)


def test_good_values_pass() -> None:
    from dbos_airflow.plugin import inputs

    assert inputs.map_index("{MAP_INDEX}") == -1 and inputs.map_index("3") == 3
    assert inputs.since_hours("") is None and inputs.since_hours("1.5") == 1.5
    assert inputs.step(None) == 1 and inputs.page(2) == 2 and inputs.key("dag_id", "a.b-c_d") == "a.b-c_d"
