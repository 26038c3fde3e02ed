"""Templated and form values (dbos_orchestrator/forms.py): parsed, or rejected naming the field."""

from __future__ import annotations

import pytest
from dbos_orchestrator.exceptions import DBOSOptionsError
from dbos_orchestrator.forms import as_bool, as_json, as_timeout
from dbos_orchestrator.serialization import check_serialization


def test_templated_values() -> None:
    assert as_json("workflow_args", "[1, 2]", list) == [1, 2] and as_json("k", "", dict) == {}
    assert as_bool("wait", "on") is True and as_timeout("timeout", "None") is None
    with pytest.raises(DBOSOptionsError, match="workflow_args is not valid JSON"):
        as_json("workflow_args", "[1,", list)
    with pytest.raises(DBOSOptionsError, match="timeout=-1 must be a positive"):
        as_timeout("timeout", -1)


def test_form_values_name_the_field_they_reject() -> None:
    assert as_json("workflow_args", "[1, 2]", list) == [1, 2]
    assert as_bool("wait", "true") is True and as_timeout("timeout", "2.5") == 2.5
    for call, field in (
        (lambda: as_json("workflow_args", "[1,", list), "workflow_args"),
        (lambda: as_bool("wait", "maybe"), "wait"),
        (lambda: as_timeout("timeout", "-1"), "timeout"),
        (lambda: check_serialization("yaml"), "serialization"),
    ):
        with pytest.raises(DBOSOptionsError, match=field):
            call()
