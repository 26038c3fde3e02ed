"""Pure logic: id derivation, option mapping, templated values, messages, value decoding."""

from __future__ import annotations

import base64
import pickle
from types import SimpleNamespace
from typing import Any

import pytest
from dbos import DBOSPortableJSONSerializer
from dbos_orchestrator.database_urls import hide_password, system_database_url_for, with_connect_timeout
from dbos_orchestrator.exceptions import DBOSOptionsError, DBOSUnsafeValueError
from dbos_orchestrator.forms import as_bool, as_json, as_timeout
from dbos_orchestrator.messages import event_missing_message, still_waiting_message
from dbos_orchestrator.options import qualified_workflow_name, to_dbos_options
from dbos_orchestrator.store.codec import Undecoded, decode_value, describe_stored_error, display_value

from dbos_airflow.contract.ids import bulk_item_id, derived_id
from dbos_airflow.hooks.connection import DBOSConnectionSettings


def test_derived_ids_have_no_try_number() -> None:
    ti = SimpleNamespace(dag_id="d", run_id="manual__1", task_id="t", map_index=-1, try_number=3)
    assert derived_id({"ti": ti}) == "d:manual__1:t:-1"
    assert bulk_item_id(derived_id({"ti": ti}), 7) == "d:manual__1:t:-1:7"


def test_documented_options_map_onto_dbos_options() -> None:
    mapped = to_dbos_options({"workflow_name": "monthly", "queue_name": "q", "workflow_class_name": "Reports"})
    assert mapped == {"workflow_name": "Reports.monthly", "queue_name": "q", "class_name": "Reports"}
    assert qualified_workflow_name("Reports.monthly", "Reports") == "Reports.monthly"
    with pytest.raises(DBOSOptionsError, match="unknown EnqueueOptions key.*'queue'"):
        to_dbos_options({"workflow_name": "w", "queue": "q"})
    with pytest.raises(DBOSOptionsError, match="missing required key.*queue_name"):
        to_dbos_options({"workflow_name": "w"})


def test_urls_derive_the_system_database_and_a_connect_timeout() -> None:
    assert system_database_url_for("postgresql://u:p@h:5/app") == "postgresql://u:p@h:5/app_dbos_sys"
    assert with_connect_timeout("postgresql://h/db", 2.5).endswith("connect_timeout=3")  # rounded up
    assert with_connect_timeout("sqlite:///x.sqlite") == "sqlite:///x.sqlite"
    assert hide_password("could not log in with s3cret", "s3cret") == "could not log in with ***"


def _conn(**fields: Any) -> Any:
    base = {"conn_id": "c", "host": "h", "port": None, "login": "u", "password": "pw", "schema": "db_dbos_sys"}
    return SimpleNamespace(**{**base, **fields}, extra_dejson=fields.pop("extra", {}))


def test_connection_settings_are_validated_by_name() -> None:
    settings = DBOSConnectionSettings.from_connection(_conn())
    assert settings.system_database_url.startswith("postgresql://u:pw@h:5432/db_dbos_sys")
    assert "pw" not in repr(settings) and settings.allow_pickle is False
    assert DBOSConnectionSettings.from_connection(_conn(extra={"allow_pickle": "true"})).allow_pickle
    with pytest.raises(DBOSOptionsError, match="unknown extra field.*allow_pickles"):
        DBOSConnectionSettings.from_connection(_conn(extra={"allow_pickles": True}))
    with pytest.raises(DBOSOptionsError, match="mysql.*must be a postgresql:// or sqlite:///"):
        DBOSConnectionSettings.from_connection(_conn(extra={"system_database_url": "mysql://h/db"}))


def test_templated_values() -> None:
    assert as_json("workflow_args", "[1, 2]", list) == [1, 2] and as_json("k", "", dict) == {}
    assert as_bool("wait", "on") is True and as_timeout("timeout", "None") is None
    with pytest.raises(DBOSOptionsError, match="workflow_args is not valid JSON"):
        as_json("workflow_args", "[1,", list)
    with pytest.raises(DBOSOptionsError, match="timeout=-1 must be a positive"):
        as_timeout("timeout", -1)


def test_wait_messages_lead_with_what_happened() -> None:
    status = {"workflow_id": "w1", "status": "ENQUEUED", "queue_name": "q", "app_version": None, "name": "wf"}
    message = still_waiting_message(status, 30)
    assert message.startswith("Gave up waiting: DBOS workflow is still ENQUEUED after 30s: no DBOS worker")
    assert "any version" in message and message.endswith("(workflow w1)") and "None" not in message
    assert event_missing_message("w1", "k", "SUCCESS") == (
        "DBOS workflow ended SUCCESS without publishing event 'k' (workflow w1)"
    )


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
