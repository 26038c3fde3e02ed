"""How an ended DBOS workflow becomes a task's result or its failure (docs/architecture.md, "The two-engine contract").

One rule for every front end and both modes of a wait (in the worker, deferred), failing
closed: an unknown status never becomes success. The caller reads (the service's
``require_workflow`` and ``value_reader``); this module decides. A front end passes the error
type that fails its tasks (``failed``); the sentences themselves are :mod:`dbos_orchestrator.messages`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dbos_orchestrator.exceptions import DBOSWorkflowFailedError
from dbos_orchestrator.messages import clip, ended_message
from dbos_orchestrator.status import FAILURE_STATUSES, SUCCESS_STATUSES, DBOSWorkflowStatus

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Sequence

    from dbos_orchestrator.store.values import ValueReader
    from dbos_orchestrator.waiting.batch import BatchCounts

__all__ = ["FAILURES_NAMED", "batch_result", "workflow_result"]


def workflow_result(
    status: dict[str, Any],
    reader: ValueReader,
    *,
    success_statuses: Collection[DBOSWorkflowStatus] = SUCCESS_STATUSES,
    failure_statuses: Collection[DBOSWorkflowStatus] = FAILURE_STATUSES,
    log: Callable[[str], Any] | None = None,
    failed: type[DBOSWorkflowFailedError] = DBOSWorkflowFailedError,
) -> Any:
    """The output of the ended workflow ``status`` describes, or an error naming its status, its own
    error and its id.

    :param status: the workflow's status dict (``require_workflow``: a missing id has already failed there).
    :param reader: the connection's safe value reader (``value_reader()``).
    :param success_statuses: the statuses counted as success (SUCCESS by default).
    :param failure_statuses: the statuses counted as failure (besides every failure status).
    :param log: given, gets one line saying how the workflow ended (:func:`ended_message`).
    :param failed: the error raised (a front end's subclass that also fails its tasks).
    :raises DBOSWorkflowFailedError: it ended in a failure status, or in one not counted as success.
    """
    workflow_id = status["workflow_id"]
    state = DBOSWorkflowStatus.parse(status["status"])
    if state in success_statuses:
        output = reader.output(workflow_id)
        if log is not None:
            log(ended_message(status, result=output))
        return output
    if state in failure_statuses or state.is_failure():
        error = reader.error_message(workflow_id)  # the output is not decoded: a failure is described
        if log is not None:
            log(ended_message(status, error=error))
        detail = f": {error}" if error else ""
        raise failed(f"DBOS workflow ended {state.value}{detail} (workflow {workflow_id})")
    if state.is_active():
        raise failed(f"DBOS workflow is still {state.value} (workflow {workflow_id})")
    raise failed(
        f"DBOS workflow ended {state.value}, which this task does not count as success (workflow {workflow_id})"
    )


FAILURES_NAMED = 5  # how many failed items a batch's failure names, each with its own error


def batch_result(
    counts: BatchCounts,
    failures: Sequence[tuple[int, str, str | None]],
    reader: ValueReader,
    *,
    fail_fast: bool = False,
    cancelled: int | None = None,
    failed: type[DBOSWorkflowFailedError] = DBOSWorkflowFailedError,
) -> None:
    """The failure policy of a batch (docs/batch.md, "Failure policy"): nothing when every item
    succeeded, else an error naming how many failed, by status, and the first
    :data:`FAILURES_NAMED` ids with their own errors (``failures``: ``(index, id, status)`` in item
    order, at least that many). With ``fail_fast`` it may come before every item ended
    (``counts`` as seen then; ``cancelled``: how many still active were cancelled after).

    :param failed: the error raised (a front end's subclass that also fails its tasks).
    :raises DBOSWorkflowFailedError: an item ended in anything but success (or has no workflow).
    """
    from dbos_orchestrator.waiting.batch import NOT_FOUND

    if counts.failed == 0 and counts.done:
        return
    if counts.failed == 0:  # fail_fast never stops here; be explicit rather than succeed
        raise failed(f"DBOS batch not done: {counts.pending:,} of {counts.total:,} still pending")
    ok = {s.value for s in SUCCESS_STATUSES}
    active = {s.value for s in DBOSWorkflowStatus if s.is_active()}
    by_status = ", ".join(
        f"{n:,} {s}" for s, n in sorted(counts.by_status.items()) if s not in ok and s not in active and n
    )
    named = []
    for index, workflow_id, status in failures[:FAILURES_NAMED]:
        if status is None or status == NOT_FOUND:
            named.append(f"item {index} {workflow_id}: no such workflow")
            continue
        error = reader.error_message(workflow_id)
        named.append(f"item {index} {workflow_id}: {status}{f': {clip(error)}' if error else ''}")
    more = f" (and {counts.failed - len(named):,} more)" if counts.failed > len(named) else ""
    when = ""
    if fail_fast and counts.pending:
        rest = (
            f"cancelled the {cancelled:,} still active" if cancelled is not None else f"{counts.pending:,} left running"
        )
        when = f" (fail_fast: stopped at the first failure; {rest})"
    raise failed(
        f"{counts.failed:,} of {counts.total:,} DBOS workflows failed ({by_status}){when}; "
        f"first {len(named)}: " + "; ".join(named) + more
    )
