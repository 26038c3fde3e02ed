"""Operators that manage DBOS workflows: cancel, resume, fork. Thin over :class:`DBOSHook`.

Each is templated, mappable (``.partial(...).expand(workflow_id=...)``) and safe to retry or
clear: cancelling or resuming twice changes nothing the first call did not, and a fork task
forks at most once per task instance (its new workflow id is derived from the task instance,
so a retry finds the fork its first try made and re-attaches).
"""

from __future__ import annotations

import ast
import json
from typing import TYPE_CHECKING, Any

from dbos_orchestrator.exceptions import DBOSOptionsError
from dbos_orchestrator.messages import workflow_not_found_message
from dbos_orchestrator.operations.preflight import check_on_unknown
from dbos_orchestrator.status import DBOSWorkflowStatus

from dbos_airflow.contract.ids import derived_id
from dbos_airflow.contract.ownership import record_owner
from dbos_airflow.exceptions import DBOSWorkflowNotFoundError
from dbos_airflow.links import remember_workflow
from dbos_airflow.operators.base import DBOSBaseOperator, dbos_template_fields
from dbos_airflow.operators.lifecycle import DBOSLifecycleOperator

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

__all__ = [
    "DBOSCancelWorkflowOperator",
    "DBOSForkWorkflowOperator",
    "DBOSResumeWorkflowOperator",
    "DBOSSetWorkflowDelayOperator",
]


def workflow_ids_arg(value: Any) -> list[str]:
    """One id, a list of ids (e.g. a bulk enqueue's XCom), or such a list rendered as text."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                try:
                    value = ast.literal_eval(text)  # a Python list rendered by Jinja: "['a', 'b']"
                except (ValueError, SyntaxError):
                    raise DBOSOptionsError(f"workflow_id={value!r} is neither an id nor a list of ids") from None
        else:
            value = [text]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise DBOSOptionsError(f"workflow_id must be a workflow id or a list of them, got {value!r}")
    return list(dict.fromkeys(value))  # order kept, duplicates dropped


class _DBOSManyWorkflowsOperator(DBOSBaseOperator):
    """What cancel and resume share: one id or many, all of which must exist."""

    template_fields: Sequence[str] = dbos_template_fields("workflow_id")

    def __init__(self, *, workflow_id: str | Sequence[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.workflow_id = workflow_id

    def _statuses(self, context: Context) -> tuple[list[str], dict[str, DBOSWorkflowStatus]]:
        ids = workflow_ids_arg(self.workflow_id)
        remember_workflow(context, self.dbos_conn_id, ids[0] if len(ids) == 1 else None)  # the extra links
        found = self.hook.get_workflow_statuses(ids)
        missing = [w for w in ids if w not in found]
        if missing:
            target = self.hook.get_client().target
            raise DBOSWorkflowNotFoundError(
                "; ".join(workflow_not_found_message(w, target) for w in missing[:10])
                + (f" (and {len(missing) - 10} more)" if len(missing) > 10 else "")
                + "; nothing was changed"
            )
        return ids, {w: DBOSWorkflowStatus.parse(found[w]["status"]) for w in ids}

    def _result(self, ids: list[str]) -> str | list[str]:
        return ids[0] if isinstance(self.workflow_id, str) and not self.workflow_id.strip().startswith("[") else ids


class DBOSCancelWorkflowOperator(_DBOSManyWorkflowsOperator):
    """
    Cancel DBOS workflows (one id or a list, e.g. a bulk enqueue's ``output``).

    Workflows that already ended are left as they are (and logged); a workflow id that does not
    exist fails the task before anything is cancelled. Safe to retry: cancelling twice is a
    no-op. Returns the id(s) given.

    :param workflow_id: a workflow id, a list of them, or such a list rendered by a template.
    :param dbos_conn_id: the ``dbos`` connection.
    """

    def execute_dbos(self, context: Context) -> str | list[str]:
        ids, statuses = self._statuses(context)
        active = [w for w in ids if statuses[w].is_active()]
        for w in ids:
            if not statuses[w].is_active():
                self.log.info("DBOS workflow %s already ended %s; not cancelling it", w, statuses[w].value)
        if active:
            self.hook.cancel_workflows(active)
        self.log.info("Cancelled %d DBOS workflow(s) of %d", len(active), len(ids))
        return self._result(ids)


class DBOSResumeWorkflowOperator(_DBOSManyWorkflowsOperator):
    """
    Resume CANCELLED or MAX_RECOVERY_ATTEMPTS_EXCEEDED DBOS workflows where they stopped.

    Workflows that are active (e.g. resumed by a previous try of this task) or ended SUCCESS or
    ERROR (DBOS does not resume those: fork or rewind them instead) are left alone and logged,
    so a retry never enqueues a workflow twice. A missing id fails the task before anything is
    resumed. Returns the id(s) given.

    :param workflow_id: a workflow id, a list of them, or such a list rendered by a template.
    :param queue_name: queue to run them on (default: DBOS' internal queue).
    :param dbos_conn_id: the ``dbos`` connection.
    """

    template_fields: Sequence[str] = (*_DBOSManyWorkflowsOperator.template_fields, "queue_name")

    def __init__(self, *, queue_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.queue_name = queue_name

    def execute_dbos(self, context: Context) -> str | list[str]:
        ids, statuses = self._statuses(context)
        resumable = [w for w in ids if statuses[w].is_resumable()]
        for w in ids:
            if not statuses[w].is_resumable():
                self.log.info("DBOS workflow %s is %s; not resuming it", w, statuses[w].value)
        if resumable:
            self.hook.resume_workflows(resumable, queue_name=self.queue_name or None)
        self.log.info("Resumed %d DBOS workflow(s) of %d", len(resumable), len(ids))
        return self._result(ids)


class DBOSForkWorkflowOperator(DBOSLifecycleOperator):
    """
    Fork a DBOS workflow: a new workflow that reuses its steps before ``start_step`` and runs the
    rest again; optionally wait for it. Returns the new workflow's id (also XCom key
    ``workflow_id``; its output as key ``result`` when the task waits and it succeeds).

    The new id is ``dag_id:run_id:task_id:map_index`` unless ``fork_workflow_id`` is given, so a
    retried or cleared task finds the fork its earlier try made (DBOS records ``forked_from``)
    and re-attaches instead of forking again. If that fork ended in failure, ``retry_mode``
    decides as for :class:`~dbos_airflow.operators.dbos.DBOSEnqueueOperator`.

    :param workflow_id: the workflow to fork (templated).
    :param start_step: the first step to run again (``function_id`` of ``list_workflow_steps``;
        1 re-runs everything). Templated.
    :param application_version: run the fork on workers of this version (default: the latest).
    :param queue_name: queue to run the fork on (default: DBOS' internal queue).
    :param fork_workflow_id: explicit id for the fork (templated); overrides the derived one.
    :param on_unknown_queue: ``warn`` (default), ``fail`` or ``ignore`` a ``queue_name`` no worker
        registered, before forking (as for :class:`~dbos_airflow.operators.dbos.DBOSEnqueueOperator`).
    :param on_unknown_version: the same for an ``application_version`` no worker registered.
    :param retry_mode: ``resume``, ``restart`` or ``fail``: what a later try does with a fork
        that ended in ERROR, CANCELLED or MAX_RECOVERY_ATTEMPTS_EXCEEDED.

    ``wait_for_completion``, ``deferrable``, ``poll_interval``, ``timeout`` and
    ``cancel_on_kill`` wait as :class:`~dbos_airflow.operators.lifecycle.DBOSLifecycleOperator` says (the
    same trigger and failure mapping as the enqueue operator).
    """

    template_fields: Sequence[str] = dbos_template_fields(
        "workflow_id",
        "start_step",
        "application_version",
        "queue_name",
        "fork_workflow_id",
        "wait_for_completion",
        "timeout",
    )

    def __init__(
        self,
        *,
        workflow_id: str,
        start_step: int | str,
        application_version: str | None = None,
        queue_name: str | None = None,
        fork_workflow_id: str | None = None,
        on_unknown_queue: str = "warn",
        on_unknown_version: str = "warn",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.on_unknown_queue = check_on_unknown("on_unknown_queue", on_unknown_queue)
        self.on_unknown_version = check_on_unknown("on_unknown_version", on_unknown_version)
        self.workflow_id = workflow_id
        self.start_step = start_step
        self.application_version = application_version
        self.queue_name = queue_name
        self.fork_workflow_id = fork_workflow_id

    def _start_step(self) -> int:
        try:
            step = int(self.start_step)
        except (TypeError, ValueError):
            raise DBOSOptionsError(f"start_step={self.start_step!r} is not a step number") from None
        if step < 1:
            raise DBOSOptionsError(f"start_step={step} must be >= 1 (DBOS step numbers start at 1)")
        return step

    def awaited_workflow_id(self, context: Context) -> str:
        return self.fork_workflow_id or derived_id(context)

    def execute_dbos(self, context: Context) -> str:
        self._render_wait_settings()
        fork_id = self.awaited_workflow_id(context)
        self._workflow_id = fork_id
        self.hook.service().check_enqueue_target(
            self.queue_name or None,
            self.application_version or None,
            on_unknown_queue=self.on_unknown_queue,
            on_unknown_version=self.on_unknown_version,
        )
        made = self.hook.fork_workflow(
            self.workflow_id,
            self._start_step(),
            forked_workflow_id=fork_id,
            application_version=self.application_version or None,
            queue_name=self.queue_name or None,
        )
        record_owner(self.hook, fork_id, context["ti"], self.dbos_conn_id)  # on a retry too: docs/ui.md, Permissions
        if made:
            self.log.info("Forked DBOS workflow %s from step %s as %s", self.workflow_id, self.start_step, fork_id)
        else:
            self.reattach(self.hook.require_workflow(fork_id), self.queue_name or None)
        remember_workflow(context, self.dbos_conn_id, fork_id)  # XCom workflow_id, and the extra links
        return self.wait_for_workflow(context, fork_id)


class DBOSSetWorkflowDelayOperator(DBOSBaseOperator):
    """
    Move a DELAYED workflow's start (enqueued with ``delay_seconds``) to ``delay_seconds`` from now;
    0 starts it at once. A workflow no longer DELAYED is left as it is and logged (DBOS changes only
    DELAYED ones), so a retry changes nothing the first try did not. Returns whether it was DELAYED.

    :param workflow_id: the workflow (templated).
    :param delay_seconds: seconds from now, >= 0 (templated).
    :param dbos_conn_id: the ``dbos`` connection.
    """

    template_fields: Sequence[str] = dbos_template_fields("workflow_id", "delay_seconds")

    def __init__(self, *, workflow_id: str, delay_seconds: float | str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.workflow_id = workflow_id
        self.delay_seconds = delay_seconds

    def execute_dbos(self, context: Context) -> bool:
        delay = self.delay_seconds
        if isinstance(delay, str):
            try:
                delay = float(delay)
            except ValueError:
                raise DBOSOptionsError(f"delay_seconds={self.delay_seconds!r} is not a number of seconds") from None
        remember_workflow(context, self.dbos_conn_id, self.workflow_id)
        return self.hook.service().set_workflow_delay(self.workflow_id, delay)
