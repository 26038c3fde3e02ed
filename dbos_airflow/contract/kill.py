"""Whether a stopped task cancels its workflow (:func:`decide_on_kill`): a person's kill or the
task's own timeout does; Airflow replacing a try or moving a trigger does not.

Airflow calls ``on_kill`` in more cases than a person's kill (Airflow 3.3):

* **Sync task.** The task's supervisor SIGTERMs the task whenever a heartbeat is refused
  (``404``, ``409`` or ``410``). A person's "mark failed/success" or "clear" leaves the task
  instance row in ``failed``/``success``/``restarting`` (``409 not_running``). A scheduler that
  restarts and resets an orphaned try gives the row a **new id** and state ``None``, then
  schedules the next try (``404`` for the old id); a second process on the same try answers
  ``409 running_elsewhere``; a worker shutting down leaves it ``running``.
* **Deferred task.** The triggerer cancels "as a user action" (and so calls the trigger's
  ``on_kill``) every trigger no longer assigned to it: a person's kill (the task instance left
  ``deferred``) and a trigger reassigned to another triggerer (apache/airflow PR #73454: the
  task instance is still ``deferred``, or already resumed elsewhere).

So the task instance's state *now*, read through the task SDK (``GetTaskStates``: the same
call in a task process and in a triggerer), tells them apart. When it cannot be read, nothing is
cancelled (a workflow left running can be cancelled by hand; one cancelled wrongly cannot be
un-cancelled). The task's own ``execution_timeout`` does not come through here: the operator
sees its :class:`AirflowTaskTimeout` itself.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger(__name__)

# A sync try whose row is now in one of these was stopped by a person.
PERSON_STATES_SYNC = frozenset({"failed", "success", "restarting", "skipped", "removed", "upstream_failed"})
# A deferred try whose row is in one of these is still waiting (maybe on another triggerer) or
# has already resumed from its trigger's event: Airflow moved the trigger; nobody killed it.
STILL_OURS_DEFERRED = frozenset({"deferred", "scheduled", "queued", "running", "up_for_reschedule"})
# How long on_kill waits for the state. A task process must finish on_kill before its supervisor
# escalates SIGTERM to SIGKILL (5 s); a trigger's on_kill may take 30 s ([triggerer] on_kill_timeout),
# and a triggerer busy catching up (e.g. after a pause) answered only after several seconds.
LOOKUP_SECONDS = 3.0
TRIGGER_LOOKUP_SECONDS = 20.0
MISSING = "<no such task instance>"


def current_ti_state(ti: Any, timeout: float = LOOKUP_SECONDS) -> str | None:
    """The state of ``ti``'s row as the API server sees it now (``None`` is a state here).

    Returns :data:`MISSING` when the row is gone (a person deleted the run); raises
    ``LookupError`` when the state could not be read within ``timeout`` seconds. Runs the
    request on a helper thread: a SIGTERM handler may have interrupted the main thread inside
    another request to the supervisor.
    """
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    map_index = getattr(ti, "map_index", -1)
    map_index = -1 if map_index is None else int(map_index)
    out: dict[str, Any] = {}

    def ask() -> None:
        try:
            out["states"] = RuntimeTaskInstance.get_task_states(
                dag_id=ti.dag_id, map_index=map_index, task_ids=[ti.task_id], run_ids=[ti.run_id]
            )
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            out["error"] = exc

    thread = threading.Thread(target=ask, name="dbos-airflow-ti-state", daemon=True)
    thread.start()
    thread.join(timeout)
    if "states" not in out:
        raise LookupError(f"could not read the task instance's state: {out.get('error', 'no answer in time')}")
    row_key = ti.task_id if map_index < 0 else f"{ti.task_id}_{map_index}"
    by_task = out["states"].get(ti.run_id, {})
    if row_key not in by_task:
        return MISSING
    state = by_task[row_key]
    return None if state is None else str(getattr(state, "value", state))


def decide_on_kill(
    ti: Any, *, cancel_on_kill: bool, deferred: bool, own_timeout: bool = False
) -> tuple[bool, str | None]:
    """The rule: ``(cancel?, why)`` when a task's ``on_kill`` (sync) or its trigger's (deferred) runs.

    ``why`` is None when there is nothing to decide (``cancel_on_kill=False``: never cancel, say
    nothing). The task's own ``execution_timeout`` cancels; otherwise only a person's kill does
    (:func:`killed_by_person`), never Airflow replacing a try or moving a trigger.
    """
    if not cancel_on_kill:
        return False, None
    if own_timeout:
        return True, "its execution_timeout passed"
    return killed_by_person(ti, deferred=deferred)


def cancel_on_wait_timeout(*, cancel_on_kill: bool) -> bool:
    """A wait the task gave up on (its ``timeout``) cancels the workflow unless ``cancel_on_kill=False``."""
    return cancel_on_kill


def killed_by_person(ti: Any, *, deferred: bool) -> tuple[bool, str]:
    """``(cancel?, why)`` for an ``on_kill`` of ``ti``'s try (see the module docstring)."""
    if ti is None:
        return False, "no task instance to ask (not running under Airflow's task SDK)"
    try:
        state = current_ti_state(ti, TRIGGER_LOOKUP_SECONDS if deferred else LOOKUP_SECONDS)
    except (LookupError, ImportError) as exc:
        return False, f"{exc}; not cancelling"
    if state == MISSING:
        return True, "its task instance no longer exists"
    if deferred:
        if state in STILL_OURS_DEFERRED:
            return False, f"the task instance is {state}: the trigger was moved to another triggerer"
        return True, f"the task instance is now {state}"
    if state in PERSON_STATES_SYNC:
        return True, f"the task instance is now {state}"
    return False, f"the task instance is {state}: Airflow replaced this try (scheduler restart or lost heartbeat)"
