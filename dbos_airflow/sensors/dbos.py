"""Sensors that wait for a DBOS workflow (or many, or the first of many) to end or to publish an event (poke,
reschedule, deferrable)."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.configuration import conf
from airflow.sdk.exceptions import AirflowSensorTimeout
from dbos_orchestrator.forms import as_json
from dbos_orchestrator.messages import batch_progress_message, first_ended_message
from dbos_orchestrator.serialization import check_serialization
from dbos_orchestrator.status import FAILURE_STATUSES, SUCCESS_STATUSES, DBOSWorkflowStatus

from dbos_airflow.contract.events import TriggerEventKind, poke_event
from dbos_airflow.hooks.dbos import DBOSHook
from dbos_airflow.links import remember_workflow
from dbos_airflow.operators.base import EXTRA_LINKS, UI_COLOR, DBOSTaskMixin, dbos_template_fields
from dbos_airflow.operators.batch import DBOSBatchMixin, check_push_results
from dbos_airflow.operators.streams import StreamLogger
from dbos_airflow.triggers.dbos import DBOSBatchTrigger, DBOSEventTrigger, DBOSWorkflowTrigger

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context
    from airflow.triggers.base import BaseTrigger
    from dbos_orchestrator.waiting.batch import BatchSpec


def _done(answer: PokeReturnValue | bool) -> PokeReturnValue | None:
    """A poke's answer when it says the sensor is done, else None (still waiting)."""
    return answer if isinstance(answer, PokeReturnValue) and answer.is_done else None


class _DBOSSensor(BaseSensorOperator, DBOSTaskMixin):
    """Shared by both sensors: deferral with a wall-clock deadline, the awaited id, timeout events.

    :param serialization: accepted like every DBOS task's (a sensor writes no value).
    """

    ui_color = UI_COLOR
    operator_extra_links = EXTRA_LINKS
    # The trigger of a deferred wait: built by _trigger with the arguments every sensor's trigger
    # takes, and the sensor's own from trigger_arguments().
    trigger_class: ClassVar[type[BaseTrigger]]

    def __init__(
        self,
        *,
        workflow_id: str,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        dbos_conn_id: str = DBOSHook.default_conn_name,
        serialization: str = "portable",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dbos_conn_id = dbos_conn_id
        self.serialization = check_serialization(serialization)
        self.workflow_id = workflow_id
        self.deferrable = deferrable

    def trigger_arguments(self) -> dict[str, Any]:
        """The sensor's own arguments to :attr:`trigger_class` (beside the workflow, connection and timing)."""
        return {}

    def _trigger(self, *, end_time: float | None, not_before: float) -> BaseTrigger:
        return self.trigger_class(
            workflow_id=self.workflow_id,
            dbos_conn_id=self.dbos_conn_id,
            end_time=end_time,
            not_before=not_before,
            **self.trigger_arguments(),
        )

    def execute(self, context: Context) -> Any:
        with self._dbos_call():
            return self._execute(context)

    def _execute(self, context: Context) -> Any:
        self._remember(context)
        if not self.deferrable:
            return super().execute(context)
        done = self.defer_unless_known(
            lambda: _done(self.poke(context)),
            self._trigger,
            timeout=self.timeout,
            on_timeout=lambda: self.on_wait_timeout(context, {"workflow_id": self.workflow_id}),
        )
        return done.xcom_value

    def _remember(self, context: Context) -> None:
        remember_workflow(context, self.dbos_conn_id, self.workflow_id)

    def awaited_workflow_id(self, context: Context) -> str:
        return self.workflow_id

    def on_wait_timeout(self, context: Context, event: dict[str, Any]) -> NoReturn:
        raise AirflowSensorTimeout(
            f"Sensor timed out after {self.timeout}s waiting for DBOS workflow {event['workflow_id']}"
        )


class DBOSWorkflowSensor(_DBOSSensor):
    """
    Wait until a DBOS workflow ends; return its output (XCom) when it ends in a success status.

    :param workflow_id: the workflow to watch (templated; e.g. an enqueue task's XCom).
    :param success_statuses: statuses that make the sensor succeed (names or
        :class:`~dbos_orchestrator.status.DBOSWorkflowStatus` members).
    :param failure_statuses: statuses that fail the task with the workflow's own error.
    :param dbos_conn_id: the ``dbos`` connection.
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param stream_to_log: a stream key of the workflow (``DBOS.write_stream``): each value is logged
        as it arrives while the sensor waits, poking or deferred (docs/streams.md).
    """

    template_fields: Sequence[str] = dbos_template_fields("workflow_id")
    accepted_event_kinds: ClassVar[frozenset[TriggerEventKind]] = frozenset({TriggerEventKind.WORKFLOW_ENDED})
    trigger_class = DBOSWorkflowTrigger

    def __init__(
        self,
        *,
        success_statuses: Sequence[str] = tuple(SUCCESS_STATUSES),
        failure_statuses: Sequence[str] = tuple(FAILURE_STATUSES),
        stream_to_log: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.stream_to_log = stream_to_log
        self._stream: StreamLogger | None = None
        self.success_statuses = DBOSWorkflowStatus.parse_all(success_statuses)
        self.failure_statuses = DBOSWorkflowStatus.parse_all(failure_statuses)

    def trigger_arguments(self) -> dict[str, Any]:
        return {
            "stream_to_log": self.stream_to_log,
            "stream_offset": 0 if self._stream is None else self._stream.hand_over(self.hook.value_reader()),
        }

    def poke(self, context: Context) -> PokeReturnValue | bool:
        if self.stream_to_log is not None:
            if self._stream is None:
                self._stream = StreamLogger(self.log, self.workflow_id, self.stream_to_log)
            self._stream.poll(self.hook.value_reader())
        status = self.hook.require_workflow(self.workflow_id)
        if DBOSWorkflowStatus.parse(status["status"]).is_active():
            self.log.info("DBOS workflow %s is %s", self.workflow_id, status["status"])
            return False
        if self._stream is not None:
            self._stream.poll(self.hook.value_reader())  # what it wrote last, before it ended
        return PokeReturnValue(True, self._result(status))

    def _result(self, status: dict[str, Any]) -> Any:
        """The ended workflow's output (``status`` as the poke read it, not read again), or its failure."""
        return self.hook.service().result(
            self.workflow_id,
            status=status,
            success_statuses=self.success_statuses,
            failure_statuses=self.failure_statuses,
            log=self.log.info,
        )

    def complete(self, context: Context, event: dict[str, Any]) -> Any:
        return self._result(self.hook.require_workflow(self.workflow_id))


class DBOSEventSensor(_DBOSSensor):
    """
    Wait until a DBOS workflow publishes event ``key`` (``DBOS.set_event``); return its value.

    Fails at once when the workflow does not exist, or when it ends without publishing the
    event (or, with ``expected_value``, without publishing that value). The value is read
    through the connection's safe reader: a pickled value fails the task unless the connection
    has ``allow_pickle``.

    :param workflow_id: the workflow to watch (templated).
    :param key: the event key (templated).
    :param expected_value: succeed only when the event's value equals this (templated).
    :param dbos_conn_id: the ``dbos`` connection.
    :param deferrable: wait in the triggerer instead of a worker slot.
    """

    template_fields: Sequence[str] = dbos_template_fields("workflow_id", "key", "expected_value")
    accepted_event_kinds: ClassVar[frozenset[TriggerEventKind]] = frozenset(
        {TriggerEventKind.EVENT_PUBLISHED, TriggerEventKind.ENDED_WITHOUT_EVENT}
    )
    trigger_class = DBOSEventTrigger

    def __init__(self, *, key: str, expected_value: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.key = key
        self.expected_value = expected_value

    def trigger_arguments(self) -> dict[str, Any]:
        return {"key": self.key, "expected_value": self.expected_value, "poll_interval": self.poke_interval}

    def poke(self, context: Context) -> PokeReturnValue | bool:
        published, value, status = poke_event(self.hook, self.workflow_id, self.key, self.expected_value)
        if published:
            return PokeReturnValue(True, value)
        self.log.info("DBOS workflow %s (%s) has not published %r yet", self.workflow_id, status.value, self.key)
        return False

    def complete(self, context: Context, event: dict[str, Any]) -> Any:
        return event["value"]  # event_published: ended_without_event already failed (contract.events)


class DBOSWorkflowsSensor(BaseSensorOperator, DBOSBatchMixin):
    """
    Wait until every DBOS workflow of a list has ended, as **one** wait (docs/batch.md, "Waiting
    for workflows another task started"): a batch another task started is awaited in one place.

    Each poke (and, deferred, each tick of the one :class:`~dbos_airflow.triggers.dbos.DBOSBatchTrigger`)
    is one statement whatever the list's length; the ids already seen ended are not asked again.
    Returns the counts by status (also XCom key ``summary``); fails by the same failure policy as
    the bulk operator: after all ended, if any failed or does not exist, naming how many and the
    first few ids with their own errors.

    :param workflow_ids: the workflows (templated; a JSON list or e.g. a bulk task's return value).
    :param fail_fast: fail at the first workflow that ended in anything but success.
    :param push_results: push the outputs in list order to XCom key ``results`` (at most 1,000).
    :param cancel_on_kill: with ``fail_fast``, cancel the workflows still active when one failed,
        and cancel them when a person kills the task (default False: they are not this task's).
    :param dbos_conn_id: the ``dbos`` connection.
    :param deferrable: wait in the triggerer instead of a worker slot.
    """

    ui_color = UI_COLOR
    operator_extra_links = EXTRA_LINKS
    template_fields: Sequence[str] = dbos_template_fields("workflow_ids")
    on_kill = DBOSBatchMixin.on_kill  # BaseOperator's would come first

    def __init__(
        self,
        *,
        workflow_ids: Sequence[str] | str,
        fail_fast: bool = False,
        push_results: bool = False,
        cancel_on_kill: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        dbos_conn_id: str = DBOSHook.default_conn_name,
        serialization: str = "portable",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dbos_conn_id = dbos_conn_id
        self.serialization = check_serialization(serialization)
        self.workflow_ids = workflow_ids
        self.fail_fast = fail_fast
        self.push_results = push_results
        self.cancel_on_kill = cancel_on_kill
        self.deferrable = deferrable
        self.poll_interval = self.poke_interval

    def _spec(self) -> BatchSpec:
        from dbos_orchestrator.waiting.batch import BatchSpec

        spec = BatchSpec.of_ids(as_json("workflow_ids", self.workflow_ids, list))
        check_push_results(self.push_results, spec.count)
        return spec

    def execute(self, context: Context) -> Any:
        with self._dbos_call():
            spec = self._spec()
            self._batch, self._batch_ti = spec, context["ti"]
            remember_workflow(context, self.dbos_conn_id)
            if not self.deferrable:
                return super().execute(context)
            done = self.defer_unless_known(
                lambda: _done(self.poke(context)),
                partial(
                    DBOSBatchTrigger,
                    workflow_id=spec.key,
                    batch=spec.to_json(),
                    fail_fast=self.fail_fast,
                    dbos_conn_id=self.dbos_conn_id,
                    cancel_on_kill=self.cancel_on_kill,
                ),
                timeout=self.timeout,
                on_timeout=lambda: self.on_wait_timeout(
                    context, {"workflow_id": spec.key, "counts": self.hook.service().batch_counts(spec).to_json()}
                ),
            )
            return done.xcom_value

    def poke(self, context: Context) -> PokeReturnValue | bool:
        spec = self._spec()
        counts = self.hook.service().batch_counts(spec)
        if counts.done or (self.fail_fast and counts.failed):
            return PokeReturnValue(True, self.finish_batch(context, spec, counts).to_json())
        self.log.info("DBOS workflows: %s", batch_progress_message(counts.total, counts.by_status))
        return False

    def awaited_workflow_id(self, context: Context) -> str:
        return self._spec().key

    def batch_return_value(self, spec: BatchSpec) -> Any:
        return self.hook.service().batch_counts(spec).to_json()

    def on_wait_timeout(self, context: Context, event: dict[str, Any]) -> NoReturn:
        raise AirflowSensorTimeout(
            f"Sensor timed out after {self.timeout}s waiting for DBOS batch {event['workflow_id']}: "
            + batch_progress_message(int(event["counts"]["total"]), event["counts"]["by_status"])
        )


class DBOSWaitFirstSensor(_DBOSSensor):
    """
    Wait until the **first** of several DBOS workflows ends (DBOS' ``wait_first``); return which:
    ``{"workflow_id", "index", "status"}`` (whatever its status: read its result downstream, e.g. with
    :class:`DBOSWorkflowSensor` on ``{{ ti.xcom_pull(task_ids='first')['workflow_id'] }}``). One statement
    per poke whatever the list's length; deferred, one :class:`~dbos_airflow.triggers.dbos.DBOSBatchTrigger`
    (``first=True``) on the shared waiter. A listed id with no workflow fails the task naming it.

    :param workflow_ids: the workflows (templated; a JSON list or e.g. a bulk task's return value).
    :param dbos_conn_id: the ``dbos`` connection.
    :param deferrable: wait in the triggerer instead of a worker slot.
    """

    template_fields: Sequence[str] = dbos_template_fields("workflow_ids")
    accepted_event_kinds: ClassVar[frozenset[TriggerEventKind]] = frozenset({TriggerEventKind.BATCH_ENDED})

    def __init__(self, *, workflow_ids: Sequence[str] | str, **kwargs: Any) -> None:
        super().__init__(workflow_id="", **kwargs)
        self.workflow_ids = workflow_ids

    def _spec(self) -> BatchSpec:
        from dbos_orchestrator.waiting.batch import BatchSpec

        return BatchSpec.of_ids(as_json("workflow_ids", self.workflow_ids, list))

    def _remember(self, context: Context) -> None:
        self.workflow_id = self._spec().key  # the wait's key: what the trigger's event names
        remember_workflow(context, self.dbos_conn_id)  # no single workflow to link

    def _trigger(self, *, end_time: float | None, not_before: float) -> BaseTrigger:
        spec = self._spec()
        return DBOSBatchTrigger(
            workflow_id=spec.key,
            batch=spec.to_json(),
            first=True,
            dbos_conn_id=self.dbos_conn_id,
            end_time=end_time,
            not_before=not_before,
        )

    def poke(self, context: Context) -> PokeReturnValue | bool:
        spec = self._spec()
        counts = self.hook.service().batch_counts(spec)
        if not counts.ended:
            self.log.info("DBOS workflows: none of %d ended yet (%s)", counts.total, dict(counts.by_status))
            return False
        return PokeReturnValue(True, self._first(spec, counts))

    def _first(self, spec: BatchSpec, counts: Any) -> dict[str, Any] | None:
        first = self.hook.service().first_ended(spec, counts)
        if first is not None:
            self.log.info("%s", first_ended_message(first, spec.count))
        return first

    def awaited_workflow_id(self, context: Context) -> str:
        return self._spec().key

    def complete(self, context: Context, event: dict[str, Any]) -> Any:
        spec = self._spec()
        return self._first(spec, self.hook.service().batch_counts(spec))

    def on_wait_timeout(self, context: Context, event: dict[str, Any]) -> NoReturn:
        spec = self._spec()
        counts = self.hook.service().batch_counts(spec)
        raise AirflowSensorTimeout(
            f"Sensor timed out after {self.timeout}s waiting for the first of {spec.count} DBOS workflows: "
            + batch_progress_message(counts.total, counts.by_status)
        )
