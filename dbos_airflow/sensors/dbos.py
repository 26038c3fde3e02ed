"""Sensors that wait for a DBOS workflow to end or to publish an event (poke, reschedule, deferrable)."""

from __future__ import annotations

import time
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.configuration import conf
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout

from dbos_airflow.hooks.dbos import DBOSHook
from dbos_airflow.outcome import (
    FAILURE_STATUSES,
    SUCCESS_STATUSES,
    TIMEOUT,
    WORKFLOW_ENDED,
    DBOSTriggerEventError,
    event_result,
    raise_for_event,
    validate_trigger_event,
    workflow_result,
)
from dbos_airflow.status import DBOSWorkflowStatus
from dbos_airflow.triggers.dbos import DBOSEventTrigger, DBOSWorkflowTrigger

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context
    from airflow.triggers.base import BaseTrigger


class _DBOSSensor(BaseSensorOperator):
    """Shared by both sensors: the hook, deferral with a wall-clock deadline, timeout events."""

    def __init__(
        self,
        *,
        workflow_id: str,
        dbos_conn_id: str = DBOSHook.default_conn_name,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.workflow_id = workflow_id
        self.dbos_conn_id = dbos_conn_id
        self.deferrable = deferrable

    @cached_property
    def hook(self) -> DBOSHook:
        return DBOSHook(self.dbos_conn_id)

    def _trigger(self, end_time: float | None) -> BaseTrigger:
        raise NotImplementedError

    def execute(self, context: Context) -> Any:
        try:
            return self._execute(context)
        finally:
            self.hook.close()  # between pokes in reschedule mode, and before deferring

    def _execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        first = self.poke(context)  # already done: no need to occupy the triggerer
        if isinstance(first, PokeReturnValue) and first.is_done:
            return first.xcom_value
        end_time = time.time() + self.timeout if self.timeout is not None else None
        self.defer(trigger=self._trigger(end_time), method_name="execute_complete", timeout=None)

    def _validated(self, event: Any) -> dict[str, Any]:
        event = validate_trigger_event(event)
        if event["kind"] == TIMEOUT:
            raise AirflowSensorTimeout(
                f"Sensor timed out after {self.timeout}s waiting for DBOS workflow {event['workflow_id']}"
            )
        return event


class DBOSWorkflowSensor(_DBOSSensor):
    """
    Wait until a DBOS workflow ends; return its output (XCom) when it ends in a success status.

    :param workflow_id: the workflow to watch (templated; e.g. an enqueue task's XCom).
    :param success_statuses: statuses that make the sensor succeed.
    :param failure_statuses: statuses that fail the task with the workflow's own error.
    :param dbos_conn_id: the ``dbos`` connection.
    :param deferrable: wait in the triggerer instead of a worker slot.
    """

    template_fields: Sequence[str] = ("workflow_id",)
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        success_statuses: Sequence[str] = SUCCESS_STATUSES,
        failure_statuses: Sequence[str] = FAILURE_STATUSES,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        for s in (*success_statuses, *failure_statuses):
            DBOSWorkflowStatus.parse(s)
        self.success_statuses = tuple(success_statuses)
        self.failure_statuses = tuple(failure_statuses)

    def _trigger(self, end_time: float | None) -> BaseTrigger:
        return DBOSWorkflowTrigger(workflow_id=self.workflow_id, dbos_conn_id=self.dbos_conn_id, end_time=end_time)

    def poke(self, context: Context) -> PokeReturnValue | bool:
        status = DBOSWorkflowStatus.parse(self.hook.require_workflow(self.workflow_id)["status"])
        if status.is_active():
            self.log.info("DBOS workflow %s is %s", self.workflow_id, status.value)
            return False
        return PokeReturnValue(True, self._result())

    def _result(self) -> Any:
        return workflow_result(
            self.hook, self.workflow_id, success_statuses=self.success_statuses, failure_statuses=self.failure_statuses
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        event = self._validated(event)
        raise_for_event(event, self.hook)
        if event["kind"] != WORKFLOW_ENDED:
            raise DBOSTriggerEventError(f"Unexpected trigger event for a workflow wait: {event!r}")
        self.workflow_id = event["workflow_id"]
        return self._result()


class DBOSEventSensor(_DBOSSensor):
    """
    Wait until a DBOS workflow publishes event ``key`` (``DBOS.set_event``); return its value.

    Fails at once when the workflow does not exist, or when it ends without publishing the
    event (or, with ``expected_value``, without publishing that value).

    :param workflow_id: the workflow to watch (templated).
    :param key: the event key (templated).
    :param expected_value: succeed only when the event's value equals this (templated).
    :param dbos_conn_id: the ``dbos`` connection.
    :param deferrable: wait in the triggerer instead of a worker slot.
    """

    template_fields: Sequence[str] = ("workflow_id", "key", "expected_value")
    ui_color = "#e8f0fe"

    def __init__(self, *, key: str, expected_value: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.key = key
        self.expected_value = expected_value

    def _trigger(self, end_time: float | None) -> BaseTrigger:
        return DBOSEventTrigger(
            workflow_id=self.workflow_id,
            key=self.key,
            expected_value=self.expected_value,
            poll_interval=self.poke_interval,
            dbos_conn_id=self.dbos_conn_id,
            end_time=end_time,
        )

    def poke(self, context: Context) -> PokeReturnValue | bool:
        # Status first: a workflow seen terminal can publish nothing more after it.
        status = DBOSWorkflowStatus.parse(self.hook.require_workflow(self.workflow_id)["status"])
        value = self.hook.get_event(self.workflow_id, self.key, timeout_seconds=0)
        if value is not None and (self.expected_value is None or value == self.expected_value):
            return PokeReturnValue(True, value)
        if status.is_terminal():
            seen = "" if value is None else f" (it published {value!r}, not {self.expected_value!r})"
            raise AirflowException(
                f"DBOS workflow {self.workflow_id} ended {status.value} without publishing event {self.key!r}{seen}"
            )
        self.log.info("DBOS workflow %s (%s) has not published %r yet", self.workflow_id, status.value, self.key)
        return False

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        return event_result(self._validated(event), self.hook, self.expected_value)
