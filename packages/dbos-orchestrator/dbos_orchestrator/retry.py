"""What a later try does with the workflow an earlier try started (``retry_mode``).

docs/architecture.md, "Two engines, one contract": a task retried or cleared re-attaches to the
same workflow and never enqueues it twice; if that workflow failed, it runs again keeping the
steps that completed (``resume``, the default), from its first step (``restart``), or not at all
(``fail``: the task fails with the workflow's own error). A workflow that succeeded is never
re-run. One rule for every front end; the reads and writes it implies are the service's.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Literal

from dbos_orchestrator.exceptions import DBOSOptionsError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from dbos_orchestrator.status import DBOSWorkflowStatus

__all__ = ["RETRY_MODES", "Reattach", "RetryMode", "check_retry_mode", "reattach", "rerun_start_step"]

RETRY_MODES = ("resume", "restart", "fail")
# The type of a ``retry_mode`` parameter (Prefect validates flow parameters against it).
RetryMode = Literal["resume", "restart", "fail"]


class Reattach(str, Enum):
    """What a try that found its workflow already there does."""

    LEAVE_RUNNING = "leave_running"  # still active: wait for it like the first try would
    LEAVE_ENDED = "leave_ended"  # ended and not failed: its result stands
    FAIL = "fail"  # failed, retry_mode=fail: the task fails with the workflow's own error
    RESUME = "resume"  # failed: run it again from the first step that did not complete
    RESTART = "restart"  # failed: run it again from its first step


def check_retry_mode(retry_mode: str) -> str:
    """``retry_mode`` if it is one of :data:`RETRY_MODES`, else :class:`DBOSOptionsError`."""
    if retry_mode not in RETRY_MODES:
        raise DBOSOptionsError(f"retry_mode={retry_mode!r}; use one of {', '.join(RETRY_MODES)}")
    return retry_mode


def reattach(status: DBOSWorkflowStatus, retry_mode: str) -> Reattach:
    """The rule: a success is never re-run; a failure follows ``retry_mode``."""
    if status.is_active():
        return Reattach.LEAVE_RUNNING
    if not status.is_failure():
        return Reattach.LEAVE_ENDED
    return {"fail": Reattach.FAIL, "resume": Reattach.RESUME, "restart": Reattach.RESTART}[check_retry_mode(retry_mode)]


def rerun_start_step(step_outcomes: Iterable[tuple[int, bool]], *, from_failed_step: bool) -> int:
    """The step a re-run starts from: 1, or with ``from_failed_step`` the first step that failed
    (or, if none failed, the one after the last recorded: the step that never finished)."""
    if not from_failed_step:
        return 1
    steps = list(step_outcomes)
    failed = [step for step, ok in steps if not ok]
    return min(failed) if failed else max((step for step, _ in steps), default=0) + 1
