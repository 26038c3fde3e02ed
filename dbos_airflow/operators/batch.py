"""The wait for a batch of workflows in one task (docs/batch.md): bulk enqueue and the many-ids sensor.

:class:`DBOSBatchMixin` is to a batch what :class:`~dbos_airflow.operators.lifecycle.DBOSLifecycleOperator`
is to one workflow: wait in the worker or deferred (one :class:`~dbos_airflow.triggers.dbos.DBOSBatchTrigger`
for the whole batch), re-attach on a later try and re-run only the failed items by ``retry_mode``
(:mod:`dbos_orchestrator.retry`), the failure policy (:func:`dbos_orchestrator.outcome.batch_result`, through the
hook's service),
the summary and the optional results in XCom, cancelling on a kill (:mod:`dbos_airflow.contract.kill`).
It has no ``__init__``: the class it is mixed into sets the attributes listed below.
"""

from __future__ import annotations

import json
import time
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from airflow.sdk.exceptions import AirflowException
from dbos_orchestrator.exceptions import DBOSOptionsError
from dbos_orchestrator.messages import PROGRESS_LOG_SECONDS, batch_progress_message
from dbos_orchestrator.outcome import FAILURES_NAMED
from dbos_orchestrator.retry import Reattach, reattach
from dbos_orchestrator.status import DBOSWorkflowStatus

from dbos_airflow.contract.deferral import batch_ends_before_the_hold
from dbos_airflow.contract.events import TriggerEventKind
from dbos_airflow.contract.kill import cancel_on_wait_timeout, decide_on_kill
from dbos_airflow.operators.base import DBOSTaskMixin
from dbos_airflow.operators.lineage import MAX_IDS, annotate_outlet_events

if TYPE_CHECKING:
    from airflow.sdk import Context
    from dbos_orchestrator.waiting.batch import BatchCounts, BatchSpec

__all__ = ["MAX_RESULTS", "MAX_RESULTS_BYTES", "SUMMARY_KEY", "RESULTS_KEY", "DBOSBatchMixin"]

SUMMARY_KEY = "summary"  # XCom: counts by status, always (also when the task fails)
RESULTS_KEY = "results"  # XCom: the outputs in item order, with push_results=True
MAX_RESULTS = 1000  # push_results: at most this many items (XCom is not a data store)
MAX_RESULTS_BYTES = 1024 * 1024  # push_results: at most this much JSON


def check_push_results(push_results: bool, count: int) -> None:
    """Refuse ``push_results`` for a batch larger than :data:`MAX_RESULTS` before anything runs."""
    if push_results and count > MAX_RESULTS:
        raise DBOSOptionsError(
            f"push_results=True with {count:,} items: at most {MAX_RESULTS:,} outputs are pushed to XCom "
            "(XCom is not a data store); read the outputs downstream by id instead (docs/batch.md, Results)"
        )


class DBOSBatchMixin(DBOSTaskMixin):
    """
    Wait for every workflow of a batch (a bulk task's own or a list of ids) as **one** wait.

    Expects on the instance: ``deferrable``, ``poll_interval``, ``timeout``, ``fail_fast``,
    ``push_results``, ``cancel_on_kill`` (and, to re-run failed items, ``retry_mode``).
    """

    accepted_event_kinds: ClassVar[frozenset[TriggerEventKind]] = frozenset({TriggerEventKind.BATCH_ENDED})
    deferrable: bool
    poll_interval: float
    timeout: Any  # seconds or None (a sensor's is BaseSensorOperator's)
    fail_fast: bool
    push_results: bool
    cancel_on_kill: bool
    retry_mode: str = "resume"
    _batch: BatchSpec | None = None
    _batch_ti: Any = None

    # -- the wait ------------------------------------------------------------------------

    def wait_for_batch(self, context: Context, spec: BatchSpec) -> BatchCounts:
        """Wait (in the worker, or deferred) until the batch is done; finish or fail the task."""
        self._batch, self._batch_ti = spec, context["ti"]
        from dbos_orchestrator.waiting.batch import BatchTracker

        tracker = BatchTracker(spec)
        if self.deferrable:
            counts = self._defer_unless_batch_done(tracker)
        else:
            counts = self.hook.service().wait_for_batch(
                tracker,
                timeout=self.timeout,
                poll_interval=self.poll_interval,
                fail_fast=self.fail_fast,
                progress_every=PROGRESS_LOG_SECONDS,
            )
        return self.finish_batch(context, spec, counts)

    def _defer_unless_batch_done(self, tracker: Any) -> BatchCounts:
        """The batch's counts once it is done in the in-worker check (or, at its rate, soon after: rule 3),
        or when the task's own ``timeout`` ran out; else defer
        (:meth:`~dbos_airflow.operators.base.DBOSTaskMixin.defer_unless_known`)."""
        from dbos_airflow.triggers.dbos import DBOSBatchTrigger

        service = self.hook.service()
        spec = tracker.spec
        seen: list[tuple[float, BatchCounts]] = []
        said_staying = False

        def done() -> BatchCounts | None:
            counts = service.batch_counts(spec)
            seen.append((time.monotonic(), counts))
            return counts if counts.done or (self.fail_fast and counts.failed) else None

        def ends_before_the_hold() -> bool:
            nonlocal said_staying
            ends = self._ends_before_the_hold(seen)
            if ends and not said_staying:
                said_staying = True
                self.log.info(
                    "DBOS batch %s: %s; at its rate it ends before a deferral's event could: waiting in the worker",
                    spec.key,
                    batch_progress_message(seen[-1][1].total, seen[-1][1].by_status),
                )
            return ends

        return self.defer_unless_known(
            done,
            partial(
                DBOSBatchTrigger,
                workflow_id=spec.key,
                batch=spec.to_json(),
                fail_fast=self.fail_fast,
                dbos_conn_id=self.dbos_conn_id,
                cancel_on_kill=self.cancel_on_kill,
            ),
            timeout=self.timeout,
            on_timeout=lambda: service.batch_counts(spec),
            known=lambda counts: f"DBOS batch {spec.key} is done",
            keep_checking=ends_before_the_hold,
        )

    @staticmethod
    def _ends_before_the_hold(seen: list[tuple[float, BatchCounts]]) -> bool:
        """:func:`~dbos_airflow.contract.deferral.batch_ends_before_the_hold` at the rate seen so far."""
        (t0, first), (t1, last) = seen[0], seen[-1]
        rate = (last.ended - first.ended) / (t1 - t0) if t1 > t0 else 0.0
        return batch_ends_before_the_hold(last.pending, rate)

    def complete(self, context: Context, event: dict[str, Any]) -> Any:
        from dbos_orchestrator.waiting.batch import BatchSpec

        spec = BatchSpec.from_json(event["batch"])
        self._batch, self._batch_ti = spec, context["ti"]
        self.finish_batch(context, spec, self.hook.service().batch_counts(spec))
        return self.batch_return_value(spec)

    def on_wait_timeout(self, context: Context, event: dict[str, Any]) -> NoReturn:
        from dbos_orchestrator.waiting.batch import BatchSpec

        spec = BatchSpec.from_json(event["batch"])
        self._batch, self._batch_ti = spec, context["ti"]  # the summary is pushed on this path too
        self._give_up_batch(spec, self.hook.service().batch_counts(spec))

    def batch_return_value(self, spec: BatchSpec) -> Any:
        """What the task returns once the batch succeeded (the bulk operator: the ids)."""
        return spec.workflow_ids()

    # -- the end -------------------------------------------------------------------------

    def finish_batch(self, context: Context, spec: BatchSpec, counts: BatchCounts) -> BatchCounts:
        """Push the summary; fail by the failure policy; push the results when asked."""
        if not counts.done and not (self.fail_fast and counts.failed):
            self._give_up_batch(spec, counts)
        ti = context["ti"]
        ti.xcom_push(key=SUMMARY_KEY, value=counts.to_json())
        self.log.info("DBOS batch %s: %s", spec.key, batch_progress_message(counts.total, counts.by_status))
        if counts.failed:
            failures = self.hook.service().batch_items(spec, statuses=counts.failure_statuses(), limit=FAILURES_NAMED)
            cancelled = None
            if self.fail_fast and counts.pending and cancel_on_wait_timeout(cancel_on_kill=self.cancel_on_kill):
                cancelled = self.hook.service().cancel_batch(spec)
                self.log.info("fail_fast: cancelled the %d DBOS workflow(s) of the batch still active", cancelled)
                ti.xcom_push(key=SUMMARY_KEY, value=self.hook.service().batch_counts(spec).to_json())
            self.hook.service().batch_result(counts, failures, fail_fast=self.fail_fast, cancelled=cancelled)
        if self.push_results:
            ti.xcom_push(key=RESULTS_KEY, value=self._results(spec))
        outlets = getattr(self, "outlets", None)  # the operator's (this is a mixin)
        if outlets:  # docs/observability.md
            ids = spec.workflow_ids(0, MAX_IDS)
            annotate_outlet_events(context, outlets, ids, dict(counts.by_status), count=spec.count)
        return counts

    def _results(self, spec: BatchSpec) -> list[Any]:
        """The outputs in item order, through the connection's safe reader; size-checked."""
        if spec.count > MAX_RESULTS:
            check_push_results(True, spec.count)
        reader = self.hook.value_reader()
        results = [reader.output(wid) for wid in spec.workflow_ids()]
        size = len(json.dumps(results, default=str))
        if size > MAX_RESULTS_BYTES:
            raise DBOSOptionsError(
                f"push_results: the {spec.count:,} outputs take {size:,} bytes as JSON, more than the "
                f"{MAX_RESULTS_BYTES:,} allowed in XCom (docs/batch.md, Results); read them downstream by id"
            )
        return results

    def _give_up_batch(self, spec: BatchSpec, counts: BatchCounts) -> NoReturn:
        if self._batch_ti is not None:
            self._batch_ti.xcom_push(key=SUMMARY_KEY, value=counts.to_json())  # the summary always
        if cancel_on_wait_timeout(cancel_on_kill=self.cancel_on_kill):
            cancelled = self.hook.service().cancel_batch(spec)
            self.log.info("Cancelled %d active DBOS workflow(s) of batch %s", cancelled, spec.key)
        raise AirflowException(
            f"Gave up waiting after {self.timeout}s for DBOS batch {spec.key}: "
            + batch_progress_message(counts.total, counts.by_status)
        )

    # -- a later try ---------------------------------------------------------------------

    def reattach_batch(self, spec: BatchSpec, queue_name: str | None) -> int:
        """A later try found its batch: leave what runs or succeeded, re-run only the failed items
        by ``retry_mode`` (``fail``: fail now by the failure policy). Returns how many were re-run."""
        service = self.hook.service()
        counts = service.batch_counts(spec)
        if not counts.failed:
            self.log.info(
                "Re-attached to DBOS batch %s: %s", spec.key, batch_progress_message(counts.total, counts.by_status)
            )
            return 0
        failed = service.batch_items(spec, statuses=counts.failure_statuses())
        rerun = 0
        for _index, workflow_id, status in failed:
            if status is None:
                continue  # no such workflow: an explicit id nobody enqueued; the policy names it at the end
            action = reattach(DBOSWorkflowStatus.parse(status), self.retry_mode)
            if action is Reattach.FAIL:
                service.batch_result(counts, failed)
            if action in (Reattach.RESUME, Reattach.RESTART):
                service.rerun_workflow(workflow_id, from_failed_step=action is Reattach.RESUME, queue_name=queue_name)
                rerun += 1
        self.log.info(
            "Re-attached to DBOS batch %s: re-ran %d failed workflow(s) (retry_mode=%s); the other %d left as they are",
            spec.key,
            rerun,
            self.retry_mode,
            counts.total - rerun,
        )
        return rerun

    # -- kills ---------------------------------------------------------------------------

    def on_kill(self) -> None:
        """Cancel the batch's active workflows if a person stopped the task or its ``execution_timeout``
        passed; Airflow replacing the try cancels nothing (:mod:`dbos_airflow.contract.kill`)."""
        if self._batch is None:
            return
        cancel, why = decide_on_kill(
            self._batch_ti, cancel_on_kill=self.cancel_on_kill, deferred=False, own_timeout=self._own_timeout
        )
        if why is None:
            return
        if not cancel:
            self.log.info("Task stopped, DBOS batch %s left running: %s", self._batch.key, why)
            return
        cancelled = self.hook.service().cancel_batch(self._batch)
        self.log.info(
            "Task killed (%s): cancelled %d active DBOS workflow(s) of batch %s", why, cancelled, self._batch.key
        )
