"""When a deferrable DBOS task defers, and how soon after its deferral its trigger may fire.

Airflow 3.3 loses a try when a trigger fires before the scheduler has processed the executor's
report that the deferring process exited ("success"). The trigger puts the task instance back
to ``scheduled``, the scheduler queues it again under the same key (same try number), and when
it then reads the stale "success" of the deferring process it sees a *queued* task instance
that "finished": ``Executor ... reported that the task instance ... finished with state success,
but the task instance's state attribute is queued`` — the try is marked ``up_for_retry`` (or
``failed`` on the last try) although nothing failed. (Airflow 3.3.2 tolerates the stale report
only while the task instance is still ``scheduled``; apache/airflow #66374, #67287, #72716.)
A DBOS workflow that has already ended, or ends within moments (a no-op, a re-attach after the
workflow finished, a cached result), makes its trigger fire at once and walks straight into it.

So a deferrable DBOS task follows two rules, both written here:

1. **Never defer when the answer is already known.** Before deferring, the task checks in the
   worker for up to :data:`CHECK_IN_WORKER_SECONDS` (0.1 s, then doubling up to 1 s apart:
   about 8 status reads). A workflow that ended, or an event that is present, completes the
   task right there: the same result, XCom, failure mapping and log lines as after a deferral.
2. **A trigger holds its event until :data:`HOLD_EVENT_SECONDS` after the deferral**
   (``not_before`` in the trigger's kwargs, wall clock). A workflow that ends just after the task
   deferred resumes the task that much later, once the scheduler has long processed the
   deferring process's exit. Triggers stored without ``not_before`` (older versions) fire at once.

The figures come from measuring that window under a real scheduler (tests/stack/test_deferral_race.py;
docs/architecture.md, "Deferring"): from "Pausing task as DEFERRED" to the scheduler processing
the deferring process's exit took p50 0.6-1.2 s and at most 2.3 s on a quiet 2-core machine, p50
2.1 s and at most 6.3 s with two CPU-bound processes beside it, and at most 7.1 s with four. The
hold is twice the worst seen. Its cost: a workflow that ends within 15 s of the deferral resumes
its task 15 s after the deferral (a workflow that ends within 5 s costs nothing: no deferral).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

T = TypeVar("T")

CHECK_IN_WORKER_SECONDS = 5.0
HOLD_EVENT_SECONDS = 15.0
_FIRST_INTERVAL = 0.1
_MAX_INTERVAL = 1.0


def check_in_worker(check: Callable[[], T | None], *, seconds: float = CHECK_IN_WORKER_SECONDS) -> T | None:
    """Call ``check`` until it returns an answer (not None) or ``seconds`` pass; the answer or None.

    ``check`` runs at least once; exceptions it raises (a failed workflow, a missing one) end the
    wait and reach the caller, as they would after a deferral.
    """
    deadline = time.monotonic() + max(0.0, seconds)
    delay = _FIRST_INTERVAL
    while True:
        answer = check()
        now = time.monotonic()
        if answer is not None or now >= deadline:
            return answer
        time.sleep(min(delay, deadline - now))
        delay = min(delay * 2, _MAX_INTERVAL)


def batch_ends_before_the_hold(pending: int, ended_per_s: float) -> bool:
    """Rule 3 (batches, docs/batch.md "How the wait works"): a batch whose remaining items should
    end, at the rate they have been ending, before a deferral's :data:`HOLD_EVENT_SECONDS` would
    let its event through is waited for in the worker: deferring could only make it later."""
    return ended_per_s > 0 and pending / ended_per_s <= HOLD_EVENT_SECONDS


def not_before_after_deferral() -> float:
    """The ``not_before`` of a trigger created now: the earliest wall-clock time it may fire."""
    return time.time() + HOLD_EVENT_SECONDS


async def hold_until(not_before: float | None) -> None:
    """Sleep until ``not_before`` (wall clock); at once when it is None or has passed."""
    if not_before is not None:
        remaining = not_before - time.time()
        if remaining > 0:
            await asyncio.sleep(remaining)
