"""Bench-only instrumentation for P9: when the provider saw each completion, and when it yielded.

``StampedDBOSWorkflowTrigger`` is :class:`~dbos_airflow.triggers.dbos.DBOSWorkflowTrigger` whose
``run()`` appends ``yield <workflow_id> <time.time()>`` to ``$P9_STAMPS_FILE`` at the moment the
parent's ``run()`` yields its event, before Airflow's triggerer logs or queues it. Importing this
module in the triggerer also wraps the shared waiter's ``DBOSWaiter._resolve`` (called on the
polling thread with the waits a probe saw end) to append ``seen <workflow_id> <time>``, so our
part splits into "probe saw it" and "coroutine resumed and yielded". Each call is one
``os.write`` on an ``O_APPEND`` descriptor: atomic, whichever process or thread writes.

bench/p9_triggerer.py puts this folder on every component's ``PYTHONPATH`` (the triggerer imports
trigger classes by classpath and does not add the DAGs folder to ``sys.path``). Not a DAG file.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from dbos_airflow.triggers.dbos import DBOSWorkflowTrigger
from dbos_airflow.waiting import waiter as _waiter_module

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from airflow.triggers.base import TriggerEvent

    from dbos_airflow.waiting.waiter import Observation

_FD: int | None = None


def stamp(kind: str, *workflow_ids: str) -> None:
    """Append ``<kind> <workflow_id> <time.time()>`` per id to ``$P9_STAMPS_FILE``, in one write."""
    global _FD
    now = time.time()
    path = os.environ.get("P9_STAMPS_FILE")
    if not path:
        return
    if _FD is None:
        _FD = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(_FD, "".join(f"{kind} {w} {now:.6f}\n" for w in workflow_ids).encode())


_original_resolve = _waiter_module.DBOSWaiter._resolve


def _stamped_resolve(ready: list[tuple[_waiter_module._Wait, Observation]]) -> None:
    stamp("seen", *(wait.workflow_id for wait, _ in ready))
    _original_resolve(ready)


_waiter_module.DBOSWaiter._resolve = staticmethod(_stamped_resolve)  # type: ignore[method-assign]


class StampedDBOSWorkflowTrigger(DBOSWorkflowTrigger):
    """DBOSWorkflowTrigger that records the wall-clock time its event is yielded."""

    async def run(self) -> AsyncIterator[TriggerEvent]:
        async for event in super().run():
            stamp("yield", self.workflow_id)
            yield event
