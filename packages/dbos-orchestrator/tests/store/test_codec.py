"""Reading stored values safely (dbos_orchestrator/store/codec.py; README, "Security"): portable JSON is
decoded, pickles and other languages' formats are refused or described without being loaded.
"""

from __future__ import annotations

import base64
import json
import pickle
from typing import Any

import pytest
from dbos import DBOSPortableJSONSerializer
from dbos_orchestrator.exceptions import DBOSUnsafeValueError
from dbos_orchestrator.store.codec import Undecoded, decode_value, describe_stored_error, display_value


class _Boom:
    def __reduce__(self) -> Any:
        return (print, ("this must never run",))


def test_values_decode_portable_and_refuse_pickle() -> None:
    portable = DBOSPortableJSONSerializer().serialize({"a": [1, 2]})
    assert decode_value(portable, "portable_json", allow_pickle=False, workflow_id="w", what="output") == {"a": [1, 2]}
    pickled = base64.b64encode(pickle.dumps(_Boom())).decode()
    for tag in ("py_pickle", None):
        with pytest.raises(
            DBOSUnsafeValueError, match=r"output of DBOS workflow w: it is stored as 'py_pickle'.*allow_pickle"
        ):
            decode_value(pickled, tag, allow_pickle=False, workflow_id="w", what="output")
    assert display_value(pickled, "py_pickle", allow_pickle=False, workflow_id="w", what="output") == Undecoded(
        "py_pickle", "pickled, not decoded"
    )
    error = base64.b64encode(pickle.dumps(ValueError("bad input"))).decode()
    assert describe_stored_error(error, "py_pickle", allow_pickle=False, workflow_id="w") == "ValueError: bad input"


def test_typescript_superjson_errors_are_described_and_its_values_refused() -> None:
    """README, "Applications in other languages": a TypeScript app's own format is read as JSON, never run."""
    # As the TypeScript SDK 5.3 stores an error it could not store portably (tests/test_typescript_app.py).
    stored = (
        '{"json":{"name":"TypeError","message":"Value deserialization type py_pickle is not available",'
        '"stack":"TypeError: ...\\n    at deserializeValue (serialization.js:283:11)"},"__dbos_serializer":"superjson"}'
    )
    for tag in ("js_superjson", "py_pickle", None):
        assert (
            describe_stored_error(stored, tag, allow_pickle=False, workflow_id="w")
            == "TypeError: Value deserialization type py_pickle is not available"
        )
    bare = '{"json":{"name":"OrderRejectedError"},"__dbos_serializer":"superjson"}'
    assert describe_stored_error(bare, "js_superjson", allow_pickle=False, workflow_id="w") == "OrderRejectedError"
    assert describe_stored_error('{"json": 3}', "js_superjson", allow_pickle=False, workflow_id="w") == (
        "an error stored as 'js_superjson'"  # no SuperJSON marker: not guessed at
    )
    output = '{"json":{"doubled":8},"__dbos_serializer":"superjson"}'
    with pytest.raises(DBOSUnsafeValueError, match=r"stored as 'js_superjson'.*serialization: 'portable'"):
        decode_value(output, "js_superjson", allow_pickle=False, workflow_id="w", what="output")


def test_values_decode_portable_json_and_refuse_pickles() -> None:
    portable = DBOSPortableJSONSerializer().serialize({"a": 1})
    assert decode_value(portable, "portable_json", allow_pickle=False, workflow_id="w", what="output") == {"a": 1}
    pickled = base64.b64encode(pickle.dumps({"a": 1})).decode()
    with pytest.raises(DBOSUnsafeValueError, match="stored as 'py_pickle'"):
        decode_value(pickled, "py_pickle", allow_pickle=False, workflow_id="w", what="output")
    assert decode_value(pickled, "py_pickle", allow_pickle=True, workflow_id="w", what="output") == {"a": 1}


def test_a_refused_pickle_ends_with_the_front_ends_hint_and_the_core_names_no_front_end() -> None:
    pickled = base64.b64encode(pickle.dumps({"a": 1})).decode()
    with pytest.raises(DBOSUnsafeValueError) as neutral:
        decode_value(pickled, "py_pickle", allow_pickle=False, workflow_id="w", what="output")
    assert "allow_pickle" in str(neutral.value)
    assert not any(word in str(neutral.value) for word in ("Airflow", "connection", "Prefect", "block")), neutral.value
    with pytest.raises(DBOSUnsafeValueError) as hinted:
        decode_value(pickled, "py_pickle", allow_pickle=False, workflow_id="w", what="output", hint="flip X")
    assert str(hinted.value).endswith("is decoded by default; flip X"), hinted.value
    with pytest.raises(DBOSUnsafeValueError, match="cannot be decoded here"):
        decode_value("x", "other_tag", allow_pickle=False, workflow_id="w", what="output")


def test_a_pickled_error_is_described_without_loading_it() -> None:
    stored = base64.b64encode(pickle.dumps(ValueError("no stock for A-1"))).decode()
    described = describe_stored_error(stored, "py_pickle", allow_pickle=False, workflow_id="w")
    assert described is not None and "no stock for A-1" in described
    error = {"name": "OrderRejectedError", "message": "too big"}
    superjson = json.dumps({"json": error, "__dbos_serializer": "superjson"})
    assert describe_stored_error(superjson, "js_superjson", allow_pickle=False, workflow_id="w") == (
        "OrderRejectedError: too big"
    )
