"""Which serialization writes a value (dbos_orchestrator/serialization.py; docs/architecture.md, "Serialization")."""

from __future__ import annotations

import pytest
from dbos import WorkflowSerializationFormat
from dbos_orchestrator.exceptions import DBOSOptionsError
from dbos_orchestrator.serialization import check_serialization, choose_format, serialization_format


def test_the_two_names_map_onto_dbos_formats() -> None:
    assert serialization_format("portable") is WorkflowSerializationFormat.PORTABLE
    assert serialization_format("pickle") is WorkflowSerializationFormat.NATIVE


def test_an_unknown_name_is_refused_naming_it_and_the_choices() -> None:
    with pytest.raises(DBOSOptionsError, match=r"serialization='json'; use one of \('portable', 'pickle'\)"):
        check_serialization("json")
    with pytest.raises(DBOSOptionsError, match="serialization='PORTABLE'"):  # names are exact
        serialization_format("PORTABLE")


def test_a_per_call_choice_overrides_the_connection_default() -> None:
    native, portable = WorkflowSerializationFormat.NATIVE, WorkflowSerializationFormat.PORTABLE
    assert choose_format(None, native) is native and choose_format("", portable) is portable
    assert choose_format("portable", native) is portable and choose_format("pickle", portable) is native
