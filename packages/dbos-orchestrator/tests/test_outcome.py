"""How a wait ends (dbos_orchestrator/outcome.py): a failed batch names how many failed and the first ids."""

from __future__ import annotations

import pytest


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
