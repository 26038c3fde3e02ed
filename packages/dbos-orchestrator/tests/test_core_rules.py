"""The core's own rules, run in both front ends' virtualenvs (docs/architecture.md, "Layers").

`make test` runs this folder in the Airflow venv (with the provider's suite) and again in the
Prefect venv (before prefect-dbos' suite): whatever the core decides, it decides the same way
beside either orchestrator. Pure logic, no database.
"""

from __future__ import annotations

import base64
import json
import pickle
import subprocess
import sys

import pytest
from dbos import DBOSPortableJSONSerializer
from dbos_orchestrator.exceptions import DBOSOptionsError, DBOSUnsafeValueError
from dbos_orchestrator.forms import as_bool, as_json, as_timeout
from dbos_orchestrator.retry import Reattach, check_retry_mode, reattach, rerun_start_step
from dbos_orchestrator.serialization import check_serialization
from dbos_orchestrator.status import DBOSWorkflowStatus as S
from dbos_orchestrator.store.codec import decode_value, describe_stored_error


def test_importing_the_core_pulls_in_no_orchestrator() -> None:
    """Every module of the core imports in a fresh interpreter without Airflow, Prefect or the provider."""
    code = (
        "import importlib, pkgutil, sys, dbos_orchestrator\n"
        "for m in pkgutil.walk_packages(dbos_orchestrator.__path__, 'dbos_orchestrator.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(sorted({n.split('.')[0] for n in sys.modules} & {'airflow', 'prefect', 'dbos_airflow', 'prefect_dbos'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_statuses_fail_closed() -> None:
    assert S.parse("SUCCESS") is S.SUCCESS and S.SUCCESS.is_terminal() and not S.PENDING.is_terminal()
    for unknown in ("WHAT", None):
        with pytest.raises(ValueError, match="unknown DBOS workflow status"):
            S.parse(unknown)


@pytest.mark.parametrize(
    ("status", "mode", "action"),
    [
        (S.PENDING, "fail", Reattach.LEAVE_RUNNING),
        (S.ENQUEUED, "resume", Reattach.LEAVE_RUNNING),
        (S.SUCCESS, "restart", Reattach.LEAVE_ENDED),  # a success is never re-run
        (S.ERROR, "resume", Reattach.RESUME),
        (S.CANCELLED, "restart", Reattach.RESTART),
        (S.MAX_RECOVERY_ATTEMPTS_EXCEEDED, "fail", Reattach.FAIL),
    ],
)
def test_reattach_follows_retry_mode(status: S, mode: str, action: Reattach) -> None:
    """docs/architecture.md, "The two-engine contract": a retry re-attaches or re-runs by retry_mode."""
    assert reattach(status, mode) is action


def test_retry_mode_is_checked() -> None:
    assert check_retry_mode("resume") == "resume"
    with pytest.raises(DBOSOptionsError, match="retry_mode='again'; use one of resume, restart, fail"):
        check_retry_mode("again")


def test_rerun_starts_at_the_first_failed_or_unfinished_step() -> None:
    assert rerun_start_step([(1, True), (2, False), (3, False)], from_failed_step=True) == 2
    assert rerun_start_step([(1, True), (2, True)], from_failed_step=True) == 3
    assert rerun_start_step([], from_failed_step=True) == 1
    assert rerun_start_step([(1, True), (2, False)], from_failed_step=False) == 1


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


def test_a_failed_batch_names_how_many_and_the_first_ids_in_the_front_ends_error() -> None:
    """docs/batch.md, "Failure policy": one rule for the bulk task, the many-ids sensor and
    prefect-dbos' ``await_workflows``; each front end passes the error type that fails its tasks."""
    from dbos_orchestrator.exceptions import DBOSWorkflowFailedError
    from dbos_orchestrator.outcome import FAILURES_NAMED, batch_result
    from dbos_orchestrator.waiting.batch import BatchCounts

    class FrontEndError(DBOSWorkflowFailedError):
        pass

    counts = BatchCounts(7, {"SUCCESS": 1, "NOT_FOUND": 6})
    assert counts.failure_statuses() == ["NOT_FOUND"] and FAILURES_NAMED == 5
    missing = [(i, f"w{i}", None) for i in range(1, 7)]  # ids without a workflow: nothing to read
    with pytest.raises(FrontEndError) as failed:
        batch_result(counts, missing, None, failed=FrontEndError)  # type: ignore[arg-type]
    assert str(failed.value) == (
        "6 of 7 DBOS workflows failed (6 NOT_FOUND); first 5: "
        + "; ".join(f"item {i} w{i}: no such workflow" for i in range(1, 6))
        + " (and 1 more)"
    )
    batch_result(BatchCounts(2, {"SUCCESS": 2}), [], None)  # type: ignore[arg-type]  # all succeeded: nothing
