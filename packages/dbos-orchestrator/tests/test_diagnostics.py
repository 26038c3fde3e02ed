"""What a driver or serializer error means (dbos_orchestrator/diagnostics.py): the value, the database or the
schema named, never a password."""

from __future__ import annotations

import threading
from typing import Any

import sqlalchemy as sa
from dbos import WorkflowSerializationFormat
from dbos_orchestrator.diagnostics import ErrorDescriber, encoding_problem, explain_encoding, explain_message
from dbos_orchestrator.exceptions import DBOSConnectionError, DBOSSchemaMissingError, DBOSSerializationError

PORTABLE: Any = {"workflow_name": "wf", "serialization_type": WorkflowSerializationFormat.PORTABLE}
PICKLE: Any = {"workflow_name": "wf", "serialization_type": WorkflowSerializationFormat.NATIVE}


def test_encoding_problem_per_format() -> None:
    assert encoding_problem({"a": [1, "x", None]}, portable=True) is None
    assert (
        encoding_problem(b"raw", portable=True) == "TypeError: Object of type bytes is not portable JSON serializable"
    )
    assert encoding_problem(b"raw", portable=False) is None  # but pickles
    assert encoding_problem(threading.Lock(), portable=False) == "TypeError: cannot pickle '_thread.lock' object"


def test_the_first_argument_that_cannot_be_encoded_is_named() -> None:
    original = TypeError("raw")
    error = explain_encoding(original, PORTABLE, (1, b"raw"), {"k": 3})
    assert isinstance(error, DBOSSerializationError)
    assert str(error).startswith("workflow 'wf': args[1] cannot be encoded as portable JSON: ")
    named = explain_encoding(original, PICKLE, (1,), {"lock": threading.Lock()})
    assert str(named).startswith("workflow 'wf': kwargs['lock'] cannot be encoded as pickle: ")
    assert explain_encoding(original, PORTABLE, (1, "x"), {}) is original  # nothing to name: the error stays


def test_a_message_that_cannot_be_encoded_names_its_destination_and_topic() -> None:
    error = explain_message(
        TypeError("raw"), "w1", b"raw", ("orders",), {"serialization_type": PORTABLE["serialization_type"]}
    )
    assert str(error).startswith("the message to DBOS workflow w1 (topic 'orders') cannot be encoded as portable JSON")
    assert str(error).endswith("; nothing was sent")
    original = TypeError("raw")
    assert explain_message(original, "w1", {"ok": 1}, (), {"topic": "t"}) is original


def test_driver_errors_become_clear_password_free_errors_that_are_still_driver_errors() -> None:
    url = sa.make_url("postgresql://u:s3cret@db.example:6543/app_dbos_sys")
    describer = ErrorDescriber(url, "dbos")
    refused = sa.exc.OperationalError("connect", {}, Exception("password authentication failed: s3cret"))
    error = describer.describe(refused)
    assert isinstance(error, DBOSConnectionError) and isinstance(error, sa.exc.OperationalError)
    assert "db.example:6543/app_dbos_sys" in str(error) and "s3cret" not in str(error)
    missing = sa.exc.ProgrammingError("select", {}, Exception('relation "dbos.workflow_status" does not exist'))
    schema = describer.describe(missing)
    assert isinstance(schema, DBOSSchemaMissingError) and isinstance(schema, sa.exc.ProgrammingError)
    assert "no DBOS system tables in app_dbos_sys.dbos (at db.example:6543/app_dbos_sys)" in str(schema)
    assert describer.describe(ValueError("unrelated")) is None
    assert describer.describe(sa.exc.OperationalError("q", {}, Exception("deadlock")), connecting=False) is None


def test_a_sqlite_database_is_named_by_its_file() -> None:
    describer = ErrorDescriber(sa.make_url("sqlite:////tmp/x/dbos.sqlite"), None)
    error = describer.describe(sa.exc.OperationalError("q", {}, Exception("no such table: workflow_status")))
    assert isinstance(error, DBOSSchemaMissingError) and "no DBOS system tables in /tmp/x/dbos.sqlite:" in str(error)
