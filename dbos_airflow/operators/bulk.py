"""DBOSBulkEnqueueOperator: enqueue many DBOS workflows in one transaction."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk.configuration import conf
from airflow.sdk.exceptions import AirflowSkipException
from dbos_orchestrator.exceptions import DBOSOptionsError
from dbos_orchestrator.forms import as_bool, as_json, as_timeout
from dbos_orchestrator.retry import check_retry_mode

from dbos_airflow.contract.ids import SEPARATOR, bulk_item_prefix, check_id_from
from dbos_airflow.links import remember_workflow
from dbos_airflow.operators.batch import DBOSBatchMixin, check_push_results
from dbos_airflow.operators.dbos import DBOSBaseEnqueueOperator, derived_work_id

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context


class DBOSBulkEnqueueOperator(DBOSBaseEnqueueOperator, DBOSBatchMixin):
    """
    Enqueue one DBOS workflow per item, all in one database transaction, and return their ids.

    Either every workflow is enqueued or none is. Item ``i`` without an explicit
    ``workflow_id`` gets ``dag_id:run_id:task_id:map_index:i``, the same on every try of the
    task instance: a retry after a crash enqueues nothing new and returns the same ids. In a
    run triggered by DBOS completion events, ``id_from="completion"`` makes that
    ``dag_id:task_id:<completion_key>:i`` instead (docs/events.md, "Exactly-once work
    downstream"): a completion delivered twice fans out once. The XCom return value is the
    list of workflow ids, in item order.

    With portable serialization (the default) on Postgres, the workflows are written by DBOS'
    own ``enqueue_workflow`` SQL function in one pipelined batch (tens of thousands per
    second); with ``serialization="pickle"`` or SQLite, by ``DBOSClient.enqueue_in_transaction``.

    With ``wait_for_completion=True`` the same task then waits for **all** of them as one wait
    (docs/batch.md): in the worker, or with ``deferrable=True`` as one trigger for the whole
    batch; either way one statement per poll whatever the batch's size, a progress line every
    ~30 s (``6,210/10,000 ended: 6,190 SUCCESS, 20 ERROR; 3,790 pending``) and one closing line.
    The ids are pushed (return value) before the wait; the counts by status always (XCom key
    ``summary``); the task fails after every item ended if any failed, naming how many and the
    first few ids with their own errors. A later try enqueues nothing again and re-runs only the
    failed items, by ``retry_mode``.

    :param items: one entry per workflow (templated; a JSON string is accepted; an empty list skips
        the task, as mapping over an empty list does): a dict with
        optional keys ``args`` (list), ``kwargs`` (dict) and ``workflow_id`` (str), or a list
        of positional arguments.
    :param wait_for_completion: wait until every workflow ended (templated).
    :param deferrable: wait in the triggerer (one :class:`~dbos_airflow.triggers.dbos.DBOSBatchTrigger`).
    :param poll_interval: longest pause between polls when waiting in a worker (seconds).
    :param timeout: seconds to wait before failing the task (None: as long as it takes; templated).
    :param fail_fast: fail at the first item that ended in anything but success (with
        ``cancel_on_kill``, cancelling the items still active) instead of after all ended.
    :param push_results: push the outputs in item order to XCom key ``results`` (read through the
        connection's safe reader; at most 1,000 items and 1 MiB of JSON: docs/batch.md, Results).
    :param cancel_on_kill: cancel the batch's active workflows when a person kills the task, its
        ``execution_timeout`` or its own ``timeout`` passes, or ``fail_fast`` stops it.
    :param retry_mode: what a later try does with items that ended in ERROR, CANCELLED or
        MAX_RECOVERY_ATTEMPTS_EXCEEDED: ``resume`` (keep completed steps), ``restart`` or ``fail``.
    :param id_from: what the items' derived ids come from: ``run`` (the task instance, default) or
        ``completion`` (the DBOS completion that triggered the run; see ``completion_key``).
    :param completion_key: with ``id_from="completion"``, which of the run's triggering completions
        this task instance fans out for (templated; needed when several triggered the run).

    The other parameters are those of :class:`~dbos_airflow.operators.dbos.DBOSBaseEnqueueOperator`.
    """

    template_fields: Sequence[str] = (
        *DBOSBaseEnqueueOperator.template_fields,
        "items",
        "wait_for_completion",
        "timeout",
        "completion_key",
    )
    template_fields_renderers = {"items": "json"}
    on_kill = DBOSBatchMixin.on_kill  # BaseOperator's would come first

    def __init__(
        self,
        *,
        items: Sequence[Any] | str,
        wait_for_completion: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 1.0,
        timeout: float | None = None,
        fail_fast: bool = False,
        push_results: bool = False,
        cancel_on_kill: bool = True,
        retry_mode: str = "resume",
        id_from: str = "run",
        completion_key: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if poll_interval <= 0:
            raise DBOSOptionsError(f"poll_interval={poll_interval!r} must be a positive number of seconds")
        self.items = items
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.fail_fast = fail_fast
        self.push_results = push_results
        self.cancel_on_kill = cancel_on_kill
        self.retry_mode = check_retry_mode(retry_mode)
        self.id_from = check_id_from(id_from)
        self.completion_key = completion_key

    def execute_dbos(self, context: Context) -> list[str]:
        from dbos_orchestrator.store.bulk_items import normalize_items
        from dbos_orchestrator.waiting.batch import BatchSpec

        from dbos_airflow.contract.ownership import OWNER_KEY, with_owner
        from dbos_airflow.operators.lineage import with_lineage

        self.wait_for_completion = as_bool("wait_for_completion", self.wait_for_completion)
        self.timeout = as_timeout("timeout", self.timeout)
        base = self.awaited_workflow_id(context)
        items = as_json("items", self.items, list)
        if not items:  # as Airflow does with a task mapped over an empty list
            raise AirflowSkipException("items is empty: no DBOS workflow to enqueue")
        if self.wait_for_completion:
            check_push_results(self.push_results, len(items))
        batch = normalize_items(items, id_prefix=bulk_item_prefix(base))  # bulk_item_id(base, index)
        self.check_target()  # a mistyped queue or version: warned (or refused) before anything is written
        options = with_owner(self._options(context, **self._identity(context)), context["ti"], self.dbos_conn_id)
        options = with_lineage(options, context["ti"])  # docs/observability.md, OpenLineage
        # The owner record once for the batch when it can (docs/batch.md, "Enqueue throughput and the owner record").
        ids = self.hook.enqueue_many(options, batch, serialization=self.serialization, record_once=OWNER_KEY)
        self.log.info("%d DBOS workflow(s) %s enqueued on %s", len(ids), self.workflow_name, self.queue_name)
        remember_workflow(context, self.dbos_conn_id)  # the ids are the return value
        if not self.wait_for_completion:
            return ids
        ti = context["ti"]
        ti.xcom_push(key="return_value", value=ids)  # before the wait (as the dbt Cloud provider does)
        # Derived ids are a prefix and a count: the wait's statement then lists no id at all.
        spec = BatchSpec.for_items(base, base + SEPARATOR, ids)
        if (ti.try_number or 1) > 1:
            self.reattach_batch(spec, self.queue_name)
        self.wait_for_batch(context, spec)
        return ids

    def awaited_workflow_id(self, context: Context) -> str:
        """The batch's key: the derived id by ``id_from`` (what its trigger's event names)."""
        return derived_work_id(context, self.id_from, self.completion_key, "workflow id")
