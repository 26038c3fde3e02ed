"""The DBOS view's input checks (dbos_airflow/plugin/inputs.py; docs/ui.md, "Bad input")."""

from __future__ import annotations

import pytest


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
