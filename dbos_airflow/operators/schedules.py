"""Operators for DBOS' database-backed schedules (schedules as code): apply a set, pause and resume,
trigger now, backfill a window; each logs the schedules' next runs. Thin over
:mod:`dbos_orchestrator.operations.schedules` (docs/operations.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dbos_orchestrator.forms import as_json, as_text
from dbos_orchestrator.operations.schedules import (
    apply_schedules,
    backfill_schedule,
    next_runs,
    set_schedule_paused,
    trigger_schedule,
)

from dbos_airflow.contract.ids import derived_id
from dbos_airflow.operators.base import DBOSBaseOperator, dbos_template_fields

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

__all__ = [
    "DBOSApplySchedulesOperator",
    "DBOSBackfillScheduleOperator",
    "DBOSPauseScheduleOperator",
    "DBOSResumeScheduleOperator",
    "DBOSTriggerScheduleOperator",
]


class DBOSApplySchedulesOperator(DBOSBaseOperator):
    """
    Make DBOS hold exactly these schedules: create the new ones and update the changed ones in one
    transaction (paused ones stay paused), and with ``prune_prefix`` delete the schedules of that
    prefix that are no longer listed. Every definition is checked first (a bad cron, time zone or
    name fails the task naming the field, nothing written); applying twice changes nothing.
    Logs each schedule's next run; returns ``{"applied", "deleted", "schedules"}``.

    :param schedules: a list of ``{"schedule_name", "workflow_name", "schedule"}`` dicts (cron, 5 fields or 6 with
        seconds first), each optionally with ``workflow_class_name``, ``queue_name``, ``cron_timezone``,
        ``automatic_backfill``, ``context``, ``application_name`` (templated; JSON text accepted).
    :param prune_prefix: the names this DAG owns: schedules starting with it and not listed are deleted.
    :param dbos_conn_id: the ``dbos`` connection.
    """

    template_fields: Sequence[str] = dbos_template_fields("schedules", "prune_prefix")
    template_fields_renderers = {"schedules": "json"}

    def __init__(
        self, *, schedules: list[dict[str, Any]] | str, prune_prefix: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.schedules = schedules
        self.prune_prefix = prune_prefix

    def execute_dbos(self, context: Context) -> dict[str, Any]:
        schedules = as_json("schedules", self.schedules, list)
        done = apply_schedules(self.hook.get_client(), schedules, prune_prefix=as_text(self.prune_prefix) or None)
        self.log.info("Applied %d DBOS schedule(s); deleted %s", len(done["applied"]), done["deleted"] or "none")
        for line in next_runs(done["schedules"]):
            self.log.info("%s", line)
        return done


class _DBOSScheduleOperator(DBOSBaseOperator):
    template_fields: Sequence[str] = dbos_template_fields("schedule_name")

    def __init__(self, *, schedule_name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.schedule_name = schedule_name


class DBOSPauseScheduleOperator(_DBOSScheduleOperator):
    """
    Pause a DBOS schedule (idempotent); a missing schedule fails naming it. Returns the schedule.

    :param schedule_name: the schedule (templated).
    :param dbos_conn_id: the ``dbos`` connection.
    """

    paused = True

    def execute_dbos(self, context: Context) -> dict[str, Any]:
        row = set_schedule_paused(self.hook.get_client(), as_text(self.schedule_name), paused=self.paused)
        self.log.info("%s", next_runs([row])[0])
        return row


class DBOSResumeScheduleOperator(DBOSPauseScheduleOperator):
    """
    Resume a paused DBOS schedule (idempotent); logs its next run. Returns the schedule.

    :param schedule_name: the schedule (templated).
    :param dbos_conn_id: the ``dbos`` connection.
    """

    paused = False


class DBOSTriggerScheduleOperator(_DBOSScheduleOperator):
    """
    Run a schedule's workflow now, once per task instance: a retry finds the workflow its first try
    started (tagged with the task instance) and returns it. Returns the workflow id.

    A schedule with a stored ``context`` is refused unless the connection has ``allow_pickle``: dbos
    unpickles the context to trigger it.

    :param schedule_name: the schedule (templated).
    :param dbos_conn_id: the ``dbos`` connection.
    """

    def execute_dbos(self, context: Context) -> str:
        name = as_text(self.schedule_name)
        workflow_id = trigger_schedule(
            self.hook.get_client(), name, key=derived_id(context), allow_pickle=self.hook.settings.allow_pickle
        )
        self.log.info("Triggered DBOS schedule %s: workflow %s", name, workflow_id)
        return workflow_id


class DBOSBackfillScheduleOperator(_DBOSScheduleOperator):
    """
    Enqueue every run of a schedule strictly between ``start`` and ``end`` that did not run yet (DBOS'
    own ids per scheduled time: a retry or a second backfill enqueues nothing twice). Returns the ids.

    :param start: start of the window, exclusive (ISO text or date-time; naive is UTC; templated,
        e.g. ``"{{ data_interval_start }}"``).
    :param end: end of the window, exclusive; not in the future (templated).
    :param max_runs: refuse a window holding more runs than this (default 10,000).
    :param schedule_name: the schedule (templated).
    :param dbos_conn_id: the ``dbos`` connection.
    """

    template_fields: Sequence[str] = (*_DBOSScheduleOperator.template_fields, "start", "end")

    def __init__(self, *, start: Any, end: Any, max_runs: int = 10_000, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.start = start
        self.end = end
        self.max_runs = max_runs

    def execute_dbos(self, context: Context) -> list[str]:
        name = as_text(self.schedule_name)
        ids = backfill_schedule(
            self.hook.get_client(),
            name,
            self.start,
            self.end,
            allow_pickle=self.hook.settings.allow_pickle,
            max_runs=self.max_runs,
        )
        self.log.info("Backfilled DBOS schedule %s from %s to %s: %d run(s)", name, self.start, self.end, len(ids))
        return ids
