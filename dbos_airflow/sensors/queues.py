"""A sensor for back-pressure before a big fan-out: wait until a DBOS queue's backlog is small (or until
a worker dequeues from it)."""

from __future__ import annotations

import time
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.configuration import conf
from airflow.sdk.exceptions import AirflowSensorTimeout
from dbos_orchestrator.forms import as_text
from dbos_orchestrator.messages import queue_progress_message
from dbos_orchestrator.operations.queues import QueueBacklog

from dbos_airflow.contract.events import TriggerEventKind
from dbos_airflow.hooks.dbos import DBOSHook
from dbos_airflow.operators.base import UI_COLOR, DBOSTaskMixin, dbos_template_fields
from dbos_airflow.triggers.dbos import DBOSQueueTrigger

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

__all__ = ["DBOSQueueSensor"]


class DBOSQueueSensor(BaseSensorOperator, DBOSTaskMixin):
    """
    Wait until a DBOS queue's backlog (its ENQUEUED, DELAYED and PENDING workflows) is at most
    ``max_backlog`` (with ``until_dequeued``, or until a worker dequeued one of its workflows since the
    sensor's first poke); returns ``{"queue_name", "backlog"}`` (the counts by status; with
    ``until_dequeued`` also ``"dequeued"``, how many were started since). One statement per
    poke (an instance's first also checks that the queue is registered); deferred, one
    :class:`~dbos_airflow.triggers.dbos.DBOSQueueTrigger` on the shared waiter (one statement per tick
    for the wait, however many tasks wait).

    :param queue_name: the queue (templated); an unregistered one fails naming the registered ones.
    :param max_backlog: the most active workflows the queue may hold, >= 0 (templated).
    :param until_dequeued: also done as soon as a worker dequeues (starts) a workflow of the queue after
        the sensor's first poke (in reschedule mode: its first reschedule), read from DBOS' ``started_at``
        (the database's clock: keep the Airflow workers' clocks in sync with it).
    :param dbos_conn_id: the ``dbos`` connection.
    :param deferrable: wait in the triggerer instead of a worker slot.
    """

    ui_color = UI_COLOR
    template_fields: Sequence[str] = dbos_template_fields("queue_name", "max_backlog")
    accepted_event_kinds: ClassVar[frozenset[TriggerEventKind]] = frozenset({TriggerEventKind.QUEUE_BELOW})

    def __init__(
        self,
        *,
        queue_name: str,
        max_backlog: int | str = 0,
        until_dequeued: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        dbos_conn_id: str = DBOSHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.queue_name = queue_name
        self.max_backlog = max_backlog
        self.until_dequeued = until_dequeued
        self.deferrable = deferrable
        self.dbos_conn_id = dbos_conn_id
        self._backlog: QueueBacklog | None = None

    def backlog(self, context: Context | None = None) -> QueueBacklog:
        """The wait (its fields checked, naming them), kept across this instance's pokes."""
        if self._backlog is None:
            since = self._waiting_since_ms(context) if self.until_dequeued else None
            self._backlog = QueueBacklog(as_text(self.queue_name), self.max_backlog, since)
        return self._backlog

    def _waiting_since_ms(self, context: Context | None) -> int:
        """When the wait began (epoch ms): now, or in reschedule mode the task's first reschedule."""
        if self.reschedule and context is not None:
            first = context["ti"].get_first_reschedule_date(context)
            if first is not None:
                return int(first.timestamp() * 1000)
        return int(time.time() * 1000)

    def execute(self, context: Context) -> Any:
        with self._dbos_call():
            backlog = self.backlog(context)
            if not self.deferrable:
                return super().execute(context)
            return self.defer_unless_known(
                lambda: self._check(),
                partial(
                    DBOSQueueTrigger,
                    workflow_id=backlog.key,
                    queue_name=backlog.queue_name,
                    max_backlog=backlog.max_backlog,
                    dequeued_since_ms=backlog.dequeued_since_ms,
                    dbos_conn_id=self.dbos_conn_id,
                ),
                timeout=self.timeout,
                on_timeout=lambda: self.on_wait_timeout(context, {"backlog": backlog.counts}),
            )

    def _check(self) -> dict[str, Any] | None:
        """The sensor's answer when the backlog is small enough now (one statement), else None."""
        backlog = self.backlog()
        done = backlog.check(self.hook.get_client())
        self.log.info("%s", queue_progress_message(backlog.queue_name, backlog.counts, backlog.max_backlog))
        return self._answer(backlog.counts, backlog.dequeued) if done else None

    def _answer(self, counts: dict[str, int], dequeued: int | None) -> dict[str, Any]:
        answer: dict[str, Any] = {"queue_name": self.backlog().queue_name, "backlog": counts}
        if self.until_dequeued:
            answer["dequeued"] = dequeued or 0
        return answer

    def poke(self, context: Context) -> PokeReturnValue:
        self.backlog(context)
        answer = self._check()
        return PokeReturnValue(is_done=answer is not None, xcom_value=answer)

    def awaited_workflow_id(self, context: Context) -> str:
        return self.backlog(context).key

    def complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        dequeued = event.get("dequeued")
        if dequeued:
            self.log.info(
                "DBOS queue %s: %s workflow(s) dequeued since the wait began: done", event["queue_name"], dequeued
            )
        else:
            self.log.info("DBOS queue %s holds %s: done", event["queue_name"], event["backlog"])
        return self._answer(event["backlog"], dequeued)

    def on_wait_timeout(self, context: Context, event: dict[str, Any]) -> NoReturn:
        backlog = self.backlog()
        raise AirflowSensorTimeout(
            f"Sensor timed out after {self.timeout}s: "
            + queue_progress_message(backlog.queue_name, event.get("backlog") or backlog.counts, backlog.max_backlog)
        )
