"""The service's batch operations (docs/batch.md): a batch's counts and items, the wait for it in a worker, which
item ended first (DBOS' ``wait_first``), and cancelling what is still active; mixed into
:class:`~dbos_orchestrator.service.DBOSService`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dbos_orchestrator.messages import PROGRESS_LOG_SECONDS, workflow_not_found_message

if TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Iterable

    from dbos_orchestrator.client import DBOSClient
    from dbos_orchestrator.exceptions import DBOSWorkflowNotFoundError
    from dbos_orchestrator.waiting.batch import BatchCounts, BatchSpec, BatchTracker

__all__ = ["FIRST_CANDIDATES", "BatchService"]

FIRST_CANDIDATES = 1000  # which ended first is chosen among at most this many ended items (list order)


class BatchService:
    """A batch of workflows awaited as one, over the service's ``client`` (an ``__init__``-less mixin)."""

    client: DBOSClient
    log: logging.Logger | logging.LoggerAdapter[Any] | Any
    not_found: type[DBOSWorkflowNotFoundError]

    def get_workflow_statuses(self, workflow_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        raise NotImplementedError  # DBOSService's

    def batch_counts(self, spec: BatchSpec) -> BatchCounts:
        """The batch's counts by status now (one statement)."""
        from dbos_orchestrator.waiting.batch import BatchTracker

        tracker = BatchTracker(spec)
        engine = self.client.system_database_engine
        postgres = engine.dialect.name == "postgresql"
        with engine.connect() as conn:
            return tracker.update(conn.execute(tracker.statement(postgres=postgres)).all(), postgres=postgres)

    def batch_items(
        self, spec: BatchSpec, *, statuses: Iterable[str] | None = None, start: int = 0, limit: int | None = None
    ) -> list[tuple[int, str, str | None]]:
        """``(index, workflow_id, status)`` of the batch's items in item order (see
        :func:`~dbos_orchestrator.waiting.batch.batch_items_statement`); status None: no such workflow."""
        from dbos_orchestrator.waiting.batch import batch_items_statement

        with self.client.system_database_engine.connect() as conn:
            if conn.dialect.name != "postgresql":
                return self._batch_items_generic(spec, statuses, start, limit)
            rows = conn.execute(batch_items_statement(spec, statuses=statuses, start=start, limit=limit)).all()
        return [(int(i), str(wid), None if status is None else str(status)) for i, wid, status in rows]

    def _batch_items_generic(
        self, spec: BatchSpec, statuses: Iterable[str] | None, start: int, limit: int | None
    ) -> list[tuple[int, str, str | None]]:
        from dbos_orchestrator.waiting.batch import NOT_FOUND

        ids = spec.workflow_ids(start)
        found = self.get_workflow_statuses(ids)
        wanted = None if statuses is None else set(statuses)
        out = []
        for k, wid in enumerate(ids):
            status = found[wid]["status"] if wid in found else None
            if wanted is None or (status or NOT_FOUND) in wanted:
                out.append((start + k, wid, status))
        return out if limit is None else out[:limit]

    def wait_for_batch(
        self,
        tracker: BatchTracker,
        *,
        timeout: float | None,
        poll_interval: float,
        fail_fast: bool = False,
        progress_every: float = PROGRESS_LOG_SECONDS,
        log: Callable[[str], Any] | None = None,
    ) -> BatchCounts:
        """Wait in this process for a batch: one statement per poll whatever its size
        (:func:`~dbos_orchestrator.waiting.batch.wait_for_batch`); a progress line every ``progress_every`` s."""
        from dbos_orchestrator.messages import batch_progress_message
        from dbos_orchestrator.waiting.batch import wait_for_batch

        say = log or self.log.info
        return wait_for_batch(
            self.client.system_database_engine,
            tracker,
            timeout=timeout,
            poll_interval=poll_interval,
            fail_fast=fail_fast,
            progress_every=progress_every,
            say=lambda counts, waited: say(batch_progress_message(counts.total, counts.by_status, waited)),
        )

    def first_ended(self, spec: BatchSpec, counts: BatchCounts) -> dict[str, Any] | None:
        """Which item of the batch ended first (DBOS' ``wait_first``): ``{"workflow_id", "index", "status"}``,
        the earliest ``updated_at`` among the ended ones (ties: list order); None while none ended. A listed
        id without a workflow raises :attr:`not_found` naming it (it would never end: a typo, or purged)."""
        if not counts.ended:
            return None
        ended = self.batch_items(spec, statuses=counts.ended_statuses(), limit=FIRST_CANDIDATES)
        missing = [wid for _, wid, status in ended if status is None]
        if missing:
            raise self.not_found(workflow_not_found_message(missing[0], self.client.target))
        rows = self.get_workflow_statuses([wid for _, wid, _ in ended])
        index, wid, status = min(ended, key=lambda item: (rows.get(item[1], {}).get("updated_at") or 0, item[0]))
        return {"workflow_id": wid, "index": index, "status": status}

    def cancel_batch(self, spec: BatchSpec, chunk: int = 1000) -> int:
        """Cancel the batch's workflows that are still active (ended ones are left); returns how many were."""
        from dbos_orchestrator.status import ACTIVE_STATUSES

        active = [wid for _, wid, _ in self.batch_items(spec, statuses=[s.value for s in ACTIVE_STATUSES])]
        for at in range(0, len(active), chunk):
            self.client.cancel_workflows(active[at : at + chunk])
        return len(active)
