"""A sensor for back-pressure before a big fan-out: wait until a DBOS queue's backlog is small."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from dbos_orchestrator.exceptions import DBOSOptionsError
from dbos_orchestrator.forms import as_text
from dbos_orchestrator.operations.queues import BACKLOG_STATUSES, queue_backlog, read_queues

from dbos_airflow.hooks.dbos import DBOSHook
from dbos_airflow.operators.base import UI_COLOR, DBOSTaskMixin, dbos_template_fields

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

__all__ = ["DBOSQueueSensor"]


class DBOSQueueSensor(BaseSensorOperator, DBOSTaskMixin):
    """
    Wait until a DBOS queue's backlog (its ENQUEUED, DELAYED and PENDING workflows) is at most
    ``max_backlog``; pushes the counts by status (its return value). One statement per poke. Use
    ``mode="reschedule"`` to free the worker slot between pokes (this sensor does not defer yet).

    :param queue_name: the queue (templated); an unregistered one fails naming the registered ones.
    :param max_backlog: the most active workflows the queue may hold, >= 0 (templated).
    :param dbos_conn_id: the ``dbos`` connection.
    """

    ui_color = UI_COLOR
    template_fields: Sequence[str] = dbos_template_fields("queue_name", "max_backlog")

    def __init__(
        self,
        *,
        queue_name: str,
        max_backlog: int | str = 0,
        dbos_conn_id: str = DBOSHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.queue_name = queue_name
        self.max_backlog = max_backlog
        self.dbos_conn_id = dbos_conn_id

    def poke(self, context: Context) -> PokeReturnValue:
        with self._dbos_call():
            name = as_text(self.queue_name)
            try:
                limit = int(self.max_backlog)
            except (TypeError, ValueError):
                limit = -1
            if limit < 0:
                raise DBOSOptionsError(f"max_backlog={self.max_backlog!r} must be a whole number >= 0")
            client = self.hook.get_client()
            if not read_queues(client, [name]):
                known = ", ".join(q["name"] for q in read_queues(client)) or "none"
                raise DBOSOptionsError(f"queue_name={name!r} is not a registered DBOS queue; registered: {known}")
            counts = queue_backlog(client, [name]).get(name, dict.fromkeys(BACKLOG_STATUSES, 0))
            total = sum(counts.values())
            self.log.info("DBOS queue %s holds %d active workflow(s) %s; waiting for <= %d", name, total, counts, limit)
            return PokeReturnValue(is_done=total <= limit, xcom_value={"queue_name": name, "backlog": counts})
