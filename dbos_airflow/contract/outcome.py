"""How an ended DBOS workflow becomes a task result or a task failure (docs/architecture.md, "The two-engine contract").

The rule is the core's (:func:`dbos_orchestrator.outcome.workflow_result`, which prefect-dbos
uses too); this module binds it to Airflow: a failure raises
:class:`dbos_airflow.exceptions.DBOSWorkflowFailedError`, which also fails the task instance.
Shared by operators and sensors in sync and deferred mode, so both modes decide alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dbos_orchestrator import outcome as _core
from dbos_orchestrator.messages import clip
from dbos_orchestrator.status import FAILURE_STATUSES, SUCCESS_STATUSES, DBOSWorkflowStatus

from dbos_airflow.exceptions import DBOSWorkflowFailedError

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
) -> Any:
    """The output of the ended workflow, or :class:`DBOSWorkflowFailedError` naming its status, its
    own error and its id (:func:`dbos_orchestrator.outcome.workflow_result`).

    :param status: the workflow's status dict (the hook's ``require_workflow``).
    :param reader: the connection's safe value reader (the hook's ``value_reader()``).
    :param success_statuses: the statuses the task counts as success.
    :param failure_statuses: the statuses it counts as failure (besides every failure status).
    :param log: given, gets one line saying how the workflow ended.
    """
    return _core.workflow_result(
        status,
        reader,
        success_statuses=success_statuses,
        failure_statuses=failure_statuses,
        log=log,
        failed=DBOSWorkflowFailedError,
    )


FAILURES_NAMED = 5  # how many failed items a batch's failure names, each with its own error


def batch_result(
    counts: BatchCounts,
    failures: Sequence[tuple[int, str, str | None]],
    reader: ValueReader,
    *,
    fail_fast: bool = False,
    cancelled: int | None = None,
) -> None:
    """The failure policy of a batch (docs/fanout.md, "Failure policy"): nothing when every item
    succeeded, else an error naming how many failed, by status, and the first
    :data:`FAILURES_NAMED` ids with their own errors (``failures``: ``(index, id, status)`` in item
    order, at least that many). With ``fail_fast`` it may come before every item ended
    (``counts`` as seen then; ``cancelled``: how many still active were cancelled after).

    :raises DBOSWorkflowFailedError: an item ended in anything but success (or has no workflow).
    """
    from dbos_orchestrator.waiting.batch import NOT_FOUND

    if counts.failed == 0 and counts.done:
        return
    if counts.failed == 0:  # fail_fast never stops here; be explicit rather than succeed
        raise DBOSWorkflowFailedError(f"DBOS batch not done: {counts.pending:,} of {counts.total:,} still pending")
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
    raise DBOSWorkflowFailedError(
        f"{counts.failed:,} of {counts.total:,} DBOS workflows failed ({by_status}){when}; "
        f"first {len(named)}: " + "; ".join(named) + more
    )
