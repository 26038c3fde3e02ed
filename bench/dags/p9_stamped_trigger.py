"""Bench-only instrumentation for P9: when the provider saw each completion, and when it yielded.

``StampedDBOSWorkflowTrigger`` is :class:`~dbos_airflow.triggers.dbos.DBOSWorkflowTrigger` whose
``run()`` appends ``yield <workflow_id> <time.time()>`` to ``$P9_STAMPS_FILE`` at the moment the
parent's ``run()`` yields its event, before Airflow's triggerer logs or queues it. Importing this
module in the triggerer also wraps the shared waiter's ``DBOSWaiter._resolve`` (called on the
polling thread with the waits a probe saw end) to append ``seen <workflow_id> <time>``, so our
part splits into "probe saw it" and "coroutine resumed and yielded". Stamps are kept in memory and
appended by a thread every 0.5 s, each batch in one ``O_APPEND`` write (atomic across processes).

bench/p9_triggerer.py puts this folder on every component's ``PYTHONPATH`` (the triggerer imports
trigger classes by classpath and does not add the DAGs folder to ``sys.path``). Not a DAG file.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING

from dbos_orchestrator.waiting import waiter as _waiter_module

from dbos_airflow.triggers.dbos import DBOSWorkflowTrigger

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from airflow.triggers.base import TriggerEvent
    from dbos_orchestrator.waiting.waiter import Observation

_LINES: list[str] = []
_FLUSHER: threading.Thread | None = None
_FLUSHER_LOCK = threading.Lock()


def stamp(kind: str, *workflow_ids: str) -> None:
    """Record ``<kind> <workflow_id> <time.time()>`` per id; a thread appends them to ``$P9_STAMPS_FILE``.

    No system call on the caller's thread: an ``os.write`` on the triggerer's event loop would
    release and re-take the GIL once per yield, which under a burst (Airflow's logging threads
    competing for it) delays the very loop being measured.
    """
    now = time.time()
    if not os.environ.get("P9_STAMPS_FILE"):
        return
    _LINES.extend(f"{kind} {w} {now:.6f}\n" for w in workflow_ids)
    global _FLUSHER
    if _FLUSHER is None:
        with _FLUSHER_LOCK:
            if _FLUSHER is None:
                _FLUSHER = threading.Thread(target=_flush_forever, name="p9-stamps", daemon=True)
                _FLUSHER.start()
    if kind == "resumed":  # a task process: it exits right after, write now
        _flush()


def _flush() -> None:
    taken = len(_LINES)
    if not taken:
        return
    text = "".join(_LINES[:taken])
    del _LINES[:taken]
    fd = os.open(os.environ["P9_STAMPS_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _flush_forever() -> None:
    while True:
        time.sleep(0.5)
        _flush()


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
