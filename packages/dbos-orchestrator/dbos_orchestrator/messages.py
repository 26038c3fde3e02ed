"""The sentences a wait says: progress, how a workflow ended, why a wait gave up, no such workflow.

Pure functions of status dicts (:func:`dbos_orchestrator.status.status_to_dict`) and values already
read: no I/O, no Airflow. Operators, sensors, triggers and the hook log and raise these; what an
ended workflow *means* for a task is :mod:`dbos_orchestrator.outcome`.
"""

from __future__ import annotations

import json
from typing import Any

from dbos_orchestrator.status import QUEUED_STATUSES, DBOSWorkflowStatus

RESULT_CHARS = 200
PROGRESS_LOG_SECONDS = 30.0  # a waiting task (sync or deferred) logs its progress this often


def shorten(value: Any, limit: int = RESULT_CHARS) -> str:
    """``value`` as one line of at most ``limit`` characters (JSON when it can be)."""
    import json

    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return clip(text, limit)


def clip(text: str, limit: int = RESULT_CHARS) -> str:
    """``text`` on one line, at most ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _step_text(last_step: tuple[int, str] | None) -> str:
    return "no step recorded yet" if last_step is None else f"last recorded step #{last_step[0]} {last_step[1]}"


def progress_message(workflow_id: str, status: Any, last_step: tuple[int, str] | None, waited: float) -> str:
    """One progress line of a wait: status, last recorded step, time waited, then the id."""
    state = "not found yet" if status is None else DBOSWorkflowStatus.parse(status).value
    return f"Waiting {waited:.0f}s: DBOS workflow is {state}; {_step_text(last_step)} (workflow {workflow_id})"


def ended_message(status: dict[str, Any], *, result: Any = None, error: str | None = None) -> str:
    """The last line of a wait: how the workflow ended, how long it took, its result or error."""
    state = DBOSWorkflowStatus.parse(status["status"])
    took = ""
    created, updated = status.get("created_at"), status.get("updated_at")
    if isinstance(created, (int, float)) and isinstance(updated, (int, float)) and updated >= created:
        took = f" in {(updated - created) / 1000:.1f} s"
    if state.is_success():
        tail = f"; result: {shorten(result)}"
    else:
        tail = f"; error: {clip(error)}" if error else ""
    return f"DBOS workflow ended {state.value}{took}{tail} (workflow {status['workflow_id']})"


def still_waiting_message(
    status: dict[str, Any], waited: float | None, last_step: tuple[int, str] | None = None
) -> str:
    """Why a wait ran out: what the workflow is doing, which causes the database rules out, then its id.

    DBOS records nothing when a worker dequeues a workflow whose name it has not registered (it
    logs "<name> is not a registered workflow function" and leaves it PENDING), so a misspelled
    name cannot fail faster; but the statuses and recorded steps tell the causes apart:

    * ENQUEUED/DELAYED: no worker dequeued it; its name has not been looked up yet;
    * PENDING with no step recorded: a worker claimed it and never recorded a step: most
      likely its name is not registered there (or its first step is still running);
    * PENDING with recorded steps: it is registered and running (e.g. waiting in DBOS.recv).
    """
    wid, state = status["workflow_id"], DBOSWorkflowStatus.parse(status["status"])
    after = f" after {waited:.0f}s" if waited is not None else ""
    name = status.get("name")
    if state in QUEUED_STATUSES:
        version = status.get("app_version")
        version_cause = f", or no running worker has app_version {version!r}" if version else ""
        cause = (
            f": no DBOS worker dequeued it from queue {status.get('queue_name')!r}. Likely causes: no worker is "
            f"running for that queue, or the queue name is wrong{version_cause}. (A misspelled workflow name is "
            f"not the cause yet: a worker looks the name up only once it dequeues the workflow; app_version: "
            f"{version or 'any version'})"
        )
    elif state is DBOSWorkflowStatus.PENDING and last_step is None:
        worker = f"worker {status['executor_id']!r}" if status.get("executor_id") else "a worker"
        cause = (
            f": {worker} claimed it but it never recorded a step. Most likely workflow {name!r} is not registered "
            f'in that application (its log says "{name} is not a registered workflow function"), or its first '
            "step is still running"
        )
    elif state is DBOSWorkflowStatus.PENDING:
        cause = (
            f" on executor {status.get('executor_id')!r}, {_step_text(last_step)}: workflow {name!r} is registered "
            "and running; it is waiting for something (a message, an event, a sleep) or a slow step"
        )
    else:
        cause = ""
    return f"Gave up waiting: DBOS workflow is still {state.value}{after}{cause} (workflow {wid})"


def event_missing_message(workflow_id: str, key: str, status: Any, value: Any = None, expected: Any = None) -> str:
    """Why an event wait failed: the workflow ended without publishing (the expected value of) ``key``."""
    state = DBOSWorkflowStatus.parse(status).value
    if value is not None and expected is not None:
        return (
            f"DBOS workflow ended {state} with event {key!r}={value!r}, not the expected {expected!r} "
            f"(workflow {workflow_id})"
        )
    return f"DBOS workflow ended {state} without publishing event {key!r} (workflow {workflow_id})"


def workflow_not_found_message(workflow_id: str, target: str) -> str:
    """The one wording of "no such workflow": the id and where it was looked for."""
    return f"no DBOS workflow with id {workflow_id!r} in {target}"


def batch_progress_message(total: int, by_status: dict[str, int], waited: float | None = None) -> str:
    """One line of a batch wait: ``6,210/10,000 ended: 6,190 SUCCESS, 20 ERROR; 3,790 pending``.

    ``by_status`` counts the batch's workflows by status (``NOT_FOUND`` for ids without a row).
    """
    active = {s.value for s in DBOSWorkflowStatus if s.is_active()}
    pending = sum(n for s, n in by_status.items() if s in active)
    ended = {s: n for s, n in by_status.items() if s not in active and n}
    order = sorted(ended, key=lambda s: (s != DBOSWorkflowStatus.SUCCESS.value, s))
    parts = ", ".join(f"{ended[s]:,} {s}" for s in order) or "none yet"
    after = f" after {waited:.0f}s" if waited is not None else ""
    return f"{total - pending:,}/{total:,} ended{after}: {parts}; {pending:,} pending"


def first_ended_message(first: dict[str, Any], count: int) -> str:
    """Which of ``count`` workflows ended first (``DBOSService.first_ended``'s answer)."""
    return f"DBOS workflow {first['workflow_id']} (item {first['index']} of {count}) ended first: {first['status']}"


def queue_progress_message(
    queue_name: str, backlog: dict[str, int], max_backlog: int, waited: float | None = None
) -> str:
    """One line of a queue back-pressure wait: ``DBOS queue orders holds 12 active workflow(s) (ENQUEUED 9,
    PENDING 3); waiting for <= 5``."""
    parts = ", ".join(f"{s} {n:,}" for s, n in sorted(backlog.items()) if n) or "none"
    after = f" after {waited:.0f}s" if waited is not None else ""
    total = sum(backlog.values())
    held = f"DBOS queue {queue_name} holds {total:,} active workflow(s) ({parts}){after}"
    return f"{held}; waiting for <= {max_backlog:,}"


STREAM_VALUE_CHARS = 1000  # a stream value longer than this is cut in the log, with a marker


def stream_value_line(key: str, offset: int, value: Any, limit: int = STREAM_VALUE_CHARS) -> str:
    """One log line per stream value: ``stream 'progress' #12: {...}``; a value whose text is
    longer than ``limit`` is cut and ends with ``… [cut: 12,345 chars]``."""
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    text = text.replace("\r", "\\r").replace("\n", "\\n")  # one line per value, always
    if len(text) > limit:
        text = f"{text[:limit]}… [cut: {len(text):,} chars]"
    return f"stream {key!r} #{offset}: {text}"


def stream_ended_message(workflow_id: str, key: str, values: int, closed: bool, status: Any) -> str:
    """The last line of a stream wait: how many values it read and why it stopped."""
    if closed:
        why = "the stream was closed"
    elif status is None:
        why = "the workflow does not exist"
    else:
        why = f"the workflow ended {DBOSWorkflowStatus.parse(status).value} without closing it"
    return f"DBOS stream {key!r}: {values:,} value(s) read; {why} (workflow {workflow_id})"
